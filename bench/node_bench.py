"""A node's start and memory at scale (issue 17, target 7): how soon a node that starts
answers its first search, and how much memory each gunicorn worker holds, at
``--count`` listings (default 1,000,000).

Run from the project root::

    .venv/bin/python -m bench.node_bench --count 1000000 --starts 5

The node is gunicorn as ``make serve-prod`` starts it (``gunicorn.conf.py``: the app
preloaded in the master, the workers forked) and, for comparison, plain gunicorn whose
workers each import and make the app, with ``--workers`` processes on the benchmark database of
``bench.common`` with its search index on local disk (as a node has after a restart, a
deploy onto a disk that kept ``INDEX_DIR``, or a copy of another node's index: building
one from the database is ``referral reindex``, measured in the search benchmark).

Each start: the clock starts just before gunicorn is started; a client asks for a
structured search every 20 ms until one answers 200 (*first search*), then a name
search (the text index's first use) is timed; then every worker
answers searches of 50 different places (each loads its table and renders listings),
and each process's resident memory (RSS) and proportional share (PSS: pages shared
between the workers after the fork counted once in total) are read from ``/proc``.
Reported: first search median and maximum over the starts, memory per process; each
variant started in turn in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from bench.common import bench_app, data_dir, database_url, index_current
from bench.http_bench import _paths

HOST, PORT = "127.0.0.1", 8766
EMPTY_CONFIG = os.path.join(tempfile.gettempdir(), "node-bench-no-settings.py")
#: A free-text name search (the text index's first use in the process).
NAME_SEARCH = "/api/v1/providers/search?q=garcia&telehealth=true&state=CA"


def _ask(path: str, timeout: float = 60) -> int:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{PORT}{path}", timeout=timeout) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


#: What is read of each process, in MB: resident memory, its anonymous part (the heap:
#: tables, caches) and its file-backed part (mapped files: the SQLite memory map, numpy
#: arrays loaded from the index), and PSS (shared pages divided among their sharers).
MEMORY_FIELDS = {"rss": ("status", "VmRSS:"), "anon": ("status", "RssAnon:"),
                 "file": ("status", "RssFile:"), "pss": ("smaps_rollup", "Pss:")}


def _memory(pid: int) -> dict:
    """``MEMORY_FIELDS`` of one process in MB (``/proc/PID/status``, ``smaps_rollup``)."""
    found = {}
    for key, (name, field) in MEMORY_FIELDS.items():
        with open(f"/proc/{pid}/{name}") as handle:
            for line in handle:
                if line.startswith(field):
                    found[key] = int(line.split()[1]) / 1024
                    break
    return found


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def start_once(environment: dict, workers: int, paths: list[str], preload: bool) -> dict:
    """One start of the node: seconds to the first search, then memory per process.
    ``preload``: as ``make serve-prod`` starts it (``gunicorn.conf.py``: the app made once
    in the master, the workers forked); else plain gunicorn, each worker importing and
    making the app itself (the settings before this benchmark's change)."""
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    environment = {**environment, "BIND_HOST": HOST, "PORT": str(PORT),
                   "WEB_CONCURRENCY": str(workers)}
    # (gunicorn reads ./gunicorn.conf.py unless given another file: an empty one here)
    command = ([gunicorn, "-c", "gunicorn.conf.py", "--log-level", "warning"] if preload
               else [gunicorn, "-c", EMPTY_CONFIG, "-w", str(workers), "-b", f"{HOST}:{PORT}",
                     "--log-level", "warning", "referral:create_app()"])
    started = time.monotonic()
    server = subprocess.Popen(command, env=environment, start_new_session=True,
                              stdout=subprocess.DEVNULL)
    try:
        while _ask(paths[0], timeout=60) != 200:
            if server.poll() is not None or time.monotonic() - started > 300:
                raise RuntimeError("the server stopped, or answered no search within 300 s")
            time.sleep(0.02)
        first = time.monotonic() - started
        before_name = time.monotonic()
        if _ask(NAME_SEARCH) != 200:
            raise RuntimeError("the name search failed")
        first_name = time.monotonic() - before_name

        def warm() -> None:
            for path in paths[:50]:
                _ask(path)

        clients = [threading.Thread(target=warm) for _ in range(workers * 2)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        memory = {"master": _memory(server.pid)}
        for number, child in enumerate(_children(server.pid)):
            memory[f"worker {number + 1}"] = _memory(child)
        return {"first_search_s": first, "first_name_search_s": first_name, "memory": memory}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    """Start the node ``--starts`` times; print the figures for bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--variants", nargs="+", choices=["preload", "per-worker"],
                        default=["preload", "per-worker"],
                        help="gunicorn.conf.py (app preloaded, workers forked), and plain "
                             "gunicorn with each worker making the app")
    args = parser.parse_args()
    app = bench_app(args.count)
    index_current(app)
    directory = data_dir(args.count)
    environment = {**os.environ, "REFERRAL_INSTANCE_PATH": directory,
                   "DATABASE_URL": database_url(args.count),
                   "INDEX_DIR": os.path.join(directory, "index"), "RATE_LIMITS": "0"}
    open(EMPTY_CONFIG, "w").close()
    paths = _paths(50)
    runs: dict[str, list] = {variant: [] for variant in args.variants}
    for number in range(args.starts):
        for variant in args.variants:  # alternating, in the same run
            load = os.getloadavg()[0]
            run = start_once(environment, args.workers, paths, variant == "preload")
            runs[variant].append(run)
            print(f"{variant} start {number + 1}: first search after "
                  f"{run['first_search_s']:.2f} s, then a first name search "
                  f"{run['first_name_search_s'] * 1000:.0f} ms (load {load:.1f}); " + ", ".join(
                      f"{name} RSS {m['rss']:.0f} MB (anon {m['anon']:.0f}, file "
                      f"{m['file']:.0f}) PSS {m['pss']:.0f} MB"
                      for name, m in run["memory"].items()), flush=True)
    print("\n| variant | first search p50 | slowest | first name search p50 |")
    print("|---|---|---|---|")
    for variant, done in runs.items():
        firsts = [run["first_search_s"] for run in done]
        names = [run["first_name_search_s"] * 1000 for run in done]
        print(f"| {variant} | {statistics.median(firsts):.2f} s | {max(firsts):.2f} s | "
              f"{statistics.median(names):.0f} ms |")
    print("\n| variant | process | RSS MB | anonymous | file-backed | PSS MB |")
    print("|---|---|---|---|---|---|")
    for variant, done in runs.items():
        for name in done[-1]["memory"]:
            figures = {key: statistics.median(run["memory"][name][key] for run in done
                                              if name in run["memory"])
                       for key in MEMORY_FIELDS}
            print(f"| {variant} | {name} | {figures['rss']:.0f} | {figures['anon']:.0f} | "
                  f"{figures['file']:.0f} | {figures['pss']:.0f} |")

if __name__ == "__main__":
    main()
