"""HTTP search throughput: gunicorn with N worker processes, wrk as the load, loopback only.

Run from the project root (needs ``wrk``: ``apt-get install wrk``, and the bench extra)::

    .venv/bin/python -m bench.http_bench --count 100000 --workers 2 --duration 30
    .venv/bin/python -m bench.http_bench --count 100000 --database postgres \
        --writes-per-second 5
    .venv/bin/python -m bench.http_bench --count 100000 --writes-per-second 0 5 \
        --before <commit>   # that commit's server and this tree's, alternating

With ``--writes-per-second`` a clinic updates its listings through the same server
while the searches run (PATCH of the wait time), and those writes are counted too.

Besides wrk's figures, each run gives the CPU time per search of the server (master and
workers, from ``/proc``) and of wrk: on a machine shared with other work, throughput
moves with the load, CPU per search much less.

The load cycles through the structured + distance searches of ``bench.common``
(a different ZIP, modality, fee and insurance each time). The server and the
load share this machine's cores, as they would in a one-box deployment.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from bench.common import bench_app, data_dir, database_url, index_current, structured_queries

HOST, PORT = "127.0.0.1", 8765


def _paths(count: int) -> list[str]:
    paths = []
    for query in structured_queries(count, seed=21):
        pairs = [(key, value) for key, values in query.items()
                 for value in (values if isinstance(values, list) else [values])]
        paths.append("/api/v1/providers/search?" + urllib.parse.urlencode(pairs))
    return paths


def _lua(paths: list[str]) -> str:
    quoted = ",\n".join(json.dumps(path) for path in paths)
    return ("local paths = {\n" + quoted + "\n}\nlocal i = math.random(#paths)\n"
            "request = function()\n  i = i % #paths + 1\n"
            "  return wrk.format(\"GET\", paths[i])\nend\n")


def _wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not answer in time")


def _parse_wrk(output: str) -> dict:
    result = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])}
    for label, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output,
                                         re.M):
        factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        result[f"p{label}_ms"] = round(float(value) * factor, 2)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:(.*)", output)
    result["non_2xx"] = int(errors[1]) if errors else 0
    result["socket_errors"] = socket_errors[1].strip() if socket_errors else ""
    result["requests"] = int(re.search(r"(\d+) requests in", output)[1])
    return result


def _writer_credentials(app) -> tuple[str, list[int]]:
    """A token of the first demo clinic and the ids of its listings."""
    from sqlalchemy import select

    from referral.auth import issue_token
    from referral.extensions import db
    from referral.models import Clinic, Provider

    with app.app_context():
        clinic = db.session.scalars(select(Clinic).order_by(Clinic.id)).first()
        _, token = issue_token(clinic, label="benchmark writer")
        db.session.commit()
        ids = list(db.session.scalars(select(Provider.id).where(Provider.clinic_id == clinic.id)))
    return token, ids


def _write_load(token, ids, per_second, stop, writes) -> None:
    """Clinic updates at a steady rate through the server, until ``stop``."""
    rng = random.Random(3)
    while not stop.is_set():
        started = time.monotonic()
        request = urllib.request.Request(
            f"http://{HOST}:{PORT}/api/v1/providers/{rng.choice(ids)}",
            data=json.dumps({"wait_days": rng.randint(0, 60)}).encode(), method="PATCH",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                ok = response.status == 200
        except OSError:
            ok = False
        writes["done"] += 1
        writes["errors"] += not ok
        writes["seconds"].append(time.monotonic() - started)
        stop.wait(max(0.0, 1.0 / per_second - (time.monotonic() - started)))


def _warm_up(paths: list[str], workers: int) -> None:
    """Every path a few times from ``workers`` clients at once, so that each worker has
    loaded its table and rendered the listings the load will ask for (steady state)."""
    def fetch(chunk):
        for path in chunk:
            urllib.request.urlopen(f"http://{HOST}:{PORT}{path}", timeout=60).read()

    threads = [threading.Thread(target=fetch, args=(paths * 2,)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) used so far by process group ``group``: the gunicorn
    master (its own and that of the workers it replaced and reaped) and its live workers."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime are fields 14 and 15
            total += int(fields[11]) + int(fields[12])
            if int(name) == group:  # reaped children's: cutime and cstime (16 and 17)
                total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def _export(ref: str) -> str:
    """The project's source at git ``ref``, exported to a temporary directory."""
    directory = tempfile.mkdtemp(prefix="http-bench-code-")
    archive = subprocess.run(["git", "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def run(args, environment: dict, code: str | None, writes_per_second: float,
        token: str, listing_ids: list[int]) -> dict:
    """One measured run: a fresh gunicorn (from ``code``, default this tree) under wrk,
    with a clinic writing ``writes_per_second`` meanwhile."""
    if code is not None:  # the exported tree comes first on the path
        environment = {**environment, "PYTHONPATH": code}
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-w", str(args.workers),
         "-b", f"{HOST}:{PORT}", "--log-level", "warning", "referral:create_app()"],
        env=environment, start_new_session=True, cwd=code or os.getcwd(),
        stdout=subprocess.DEVNULL)  # the access log
    try:
        paths = _paths(500)
        _wait_ready(f"http://{HOST}:{PORT}{paths[0]}")
        _warm_up(paths, args.workers)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(_lua(paths))
        command = ["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s",
                   "--latency", "-s", script.name, f"http://{HOST}:{PORT}"]
        writes: dict = {"done": 0, "errors": 0, "seconds": []}
        stop = threading.Event()
        writer = threading.Thread(target=_write_load, daemon=True, args=(
            token, listing_ids, writes_per_second, stop, writes))
        if writes_per_second:
            writer.start()
        load_before = os.getloadavg()[0]
        server_cpu = _group_cpu_seconds(server.pid)
        load_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        load_cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = _group_cpu_seconds(server.pid) - server_cpu
        load_after = os.getloadavg()[0]
        stop.set()
        if writes_per_second:
            writer.join(timeout=30)
        os.unlink(script.name)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    seconds = sorted(writes["seconds"]) or [0.0]
    print(output, flush=True)
    parsed = _parse_wrk(output)
    wrk_cpu = (load_cpu_after.ru_utime + load_cpu_after.ru_stime
               - load_cpu.ru_utime - load_cpu.ru_stime)
    return {"code": code or "this tree", "writes_per_second": writes_per_second,
            "writes": writes["done"], "write_errors": writes["errors"],
            "write_p50_ms": round(seconds[len(seconds) // 2] * 1000, 1),
            "write_p99_ms": round(seconds[min(len(seconds) - 1,
                                              round(0.99 * len(seconds)))] * 1000, 1),
            "load_average_1min": [load_before, load_after],
            # CPU per answered request, whatever else the machine was doing: the server's
            # (master, workers, their applier threads) and wrk's own.
            "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, parsed["requests"]), 3),
            "wrk_cpu_ms_per_request": round(1000 * wrk_cpu / max(1, parsed["requests"]), 3),
            **parsed}


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP search throughput")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--writes-per-second", type=float, nargs="+", default=[0.0],
                        help="one run per rate (0: searches only)")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="also run the server from this commit (exported), alternating "
                             "with this tree, for a before/after in one run")
    parser.add_argument("--no-listing-cache", action="store_true",
                        help="render every result from the database (SEARCH_LISTING_CACHE=0)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    app = bench_app(args.count, args.database)
    index_current(app)
    token, listing_ids = _writer_credentials(app)
    directory = data_dir(args.count, args.database)
    environment = {**os.environ, "REFERRAL_INSTANCE_PATH": directory,
                   "DATABASE_URL": database_url(args.count, args.database),
                   "INDEX_DIR": os.path.join(directory, "index"),
                   "SEARCH_LISTING_CACHE": "0" if args.no_listing_cache else "1",
                   "RATE_LIMITS": "0"}  # one client address would hit the per-client limit
    codes = [None] if not args.before else [_export(args.before), None]
    runs = []
    try:
        for rate in args.writes_per_second:
            for code in codes:
                runs.append(run(args, environment, code, rate, token, listing_ids))
    finally:
        for code in codes:
            if code is not None:
                shutil.rmtree(code, ignore_errors=True)
    report = {"count": args.count, "database": args.database, "workers": args.workers,
              "connections": args.connections, "listing_cache": not args.no_listing_cache,
              "duration_s": args.duration, "before": args.before, "runs": runs}
    print(json.dumps(report, indent=1))
    print("| code | writes/s | searches/s | p50 | p90 | p99 | errors | writes | write p50 | "
          "write p99 | server CPU / search | wrk CPU / search | load |")
    for r in runs:
        code = f"before ({args.before})" if r["code"] != "this tree" else "after (this tree)"
        print(f"| {code} | {r['writes_per_second']:g} | {r['requests_per_second']:.1f} | "
              f"{r.get('p50_ms')} ms | {r.get('p90_ms')} ms | {r.get('p99_ms')} ms | "
              f"{r['non_2xx']} {r['socket_errors']} | {r['writes']} ({r['write_errors']} failed) "
              f"| {r['write_p50_ms']} ms | {r['write_p99_ms']} ms | "
              f"{r['server_cpu_ms_per_request']:.2f} ms | {r['wrk_cpu_ms_per_request']:.2f} ms | "
              f"{r['load_average_1min'][0]:.1f}-{r['load_average_1min'][1]:.1f} |")


if __name__ == "__main__":
    main()
