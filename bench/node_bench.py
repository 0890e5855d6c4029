"""A node's start and memory at scale (issue 17, target 7): how soon a node that starts
answers its first search, and how much memory each gunicorn worker holds, at
``--count`` listings (default 1,000,000).

Run from the project root::

    .venv/bin/python -m bench.node_bench --count 1000000 --starts 5

The node is gunicorn with ``--workers`` processes on the benchmark database of
``bench.common`` with its search index on local disk (as a node has after a restart, a
deploy onto a disk that kept ``INDEX_DIR``, or a copy of another node's index: building
one from the database is ``referral reindex``, measured in the search benchmark).

Each start: the clock starts just before gunicorn is started; a client asks for a
structured search every 20 ms until one answers 200 (*first search*); then every worker
answers searches of 50 different places (each loads its table and renders listings),
and each process's resident memory (RSS) and proportional share (PSS: pages shared
between the workers after the fork counted once in total) are read from ``/proc``.
Reported: first search median and maximum over the starts, memory per process.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from bench.common import bench_app, data_dir, database_url
from bench.http_bench import _paths

HOST, PORT = "127.0.0.1", 8766


def _ask(path: str, timeout: float = 60) -> int:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{PORT}{path}", timeout=timeout) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _memory(pid: int) -> dict:
    """RSS and PSS of one process in MB (``/proc/PID/status``, ``smaps_rollup``)."""
    found = {}
    for name, field in (("status", "VmRSS:"), ("smaps_rollup", "Pss:")):
        with open(f"/proc/{pid}/{name}") as handle:
            for line in handle:
                if line.startswith(field):
                    found[field.rstrip(":").lower().replace("vm", "")] = int(line.split()[1]) / 1024
                    break
    return found


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def start_once(environment: dict, workers: int, paths: list[str]) -> dict:
    """One start of the node: seconds to the first search, then memory per process."""
    started = time.monotonic()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-w", str(workers),
         "-b", f"{HOST}:{PORT}", "--log-level", "warning", "referral:create_app()"],
        env=environment, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        while _ask(paths[0], timeout=60) != 200:
            if time.monotonic() - started > 300:
                raise RuntimeError("no search answered within 300 s")
            time.sleep(0.02)
        first = time.monotonic() - started

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
        return {"first_search_s": first, "memory": memory}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    """Start the node ``--starts`` times; print the figures for bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    app = bench_app(args.count)
    from referral.extensions import db
    from referral.services import search_service

    state = search_service(app).state
    with app.app_context(), db.engine.connect() as connection:
        if state.text.current_name() is None:
            state.rebuild(connection)
        else:
            state.sync_text(connection, allow_rebuild=True)
    directory = data_dir(args.count)
    environment = {**os.environ, "REFERRAL_INSTANCE_PATH": directory,
                   "DATABASE_URL": database_url(args.count),
                   "INDEX_DIR": os.path.join(directory, "index"), "RATE_LIMITS": "0"}
    paths = _paths(50)
    runs = []
    for number in range(args.starts):
        load = os.getloadavg()[0]
        run = start_once(environment, args.workers, paths)
        runs.append(run)
        print(f"start {number + 1}: first search after {run['first_search_s']:.2f} s "
              f"(load {load:.1f}); " + ", ".join(
                  f"{name} RSS {m['rss']:.0f} MB PSS {m['pss']:.0f} MB"
                  for name, m in run["memory"].items()), flush=True)
    firsts = [run["first_search_s"] for run in runs]
    print(f"\nfirst search: median {statistics.median(firsts):.2f} s, "
          f"slowest {max(firsts):.2f} s over {len(firsts)} starts")
    print("\n| process | RSS MB (median of starts) | PSS MB |")
    print("|---|---|---|")
    for name in runs[-1]["memory"]:
        rss = statistics.median(run["memory"][name]["rss"] for run in runs if name in run["memory"])
        pss = statistics.median(run["memory"][name]["pss"] for run in runs if name in run["memory"])
        print(f"| {name} | {rss:.0f} | {pss:.0f} |")


if __name__ == "__main__":
    main()
