"""Full reindex benchmark (issue 17, target 5): ``SearchState.rebuild`` on the benchmark
database, the code path of ``referral reindex``.

Run from the project root, e.g.::

    flock /work/cpu.lock .venv/bin/python -m bench.reindex_bench --count 1000000 \\
        --before main --repeat 2

Each rebuild runs in a fresh subprocess (``--once``), alternating the code of
``--before GIT_REF`` (exported with ``git archive``, with this benchmark) and this
tree's, on the same database and index directory. Each prints the documents indexed,
the seconds, the load average (1 min) before and after, and the peak resident memory of
the largest rebuilding process (the parent or one of its children).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def once(count: int, procs: int) -> dict:
    """One timed rebuild in this process (with this process's code)."""
    from bench.common import bench_app
    from referral.extensions import db
    from referral.services import search_service

    app = bench_app(count)
    state = search_service(app).state
    with app.app_context(), db.engine.connect() as connection:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        indexed = state.rebuild(connection, procs=procs)
        seconds = time.perf_counter() - started
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"documents": indexed, "seconds": round(seconds, 1),
            "per_second": round(indexed / seconds), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "peak_rss_mb": round(max(parent, children) / 1024),
            "peak_rss_parent_mb": round(parent / 1024),
            "peak_rss_child_mb": round(children / 1024)}


def export(ref: str) -> str:
    """The tree of ``ref`` in a temporary directory, with this tree's ``bench``."""
    from bench.common import HERE

    exported = tempfile.mkdtemp(prefix="reindex-bench-code-")
    archive = subprocess.run(["git", "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", exported], input=archive, check=True)
    shutil.rmtree(os.path.join(exported, "bench"))
    shutil.copytree(HERE, os.path.join(exported, "bench"),
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    return exported


def run(code: str, count: int, procs: int) -> dict:
    """One rebuild in a subprocess running the code in ``code``."""
    from bench.common import DATA

    output = subprocess.run(
        [sys.executable, "-m", "bench.reindex_bench", "--once", "--count", str(count),
         "--procs", str(procs)],
        cwd=code, env={**os.environ, "PYTHONPATH": code, "BENCH_DATA": DATA},
        capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--procs", type=int, default=2, help="processes for the reindex")
    parser.add_argument("--repeat", type=int, default=1, help="rebuilds per variant")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="also rebuild with the code of this commit, alternating")
    parser.add_argument("--once", action="store_true",
                        help="one rebuild in this process, printed as JSON (used by the runs)")
    args = parser.parse_args()
    if args.once:
        print(json.dumps(once(args.count, args.procs)), flush=True)
        return

    from bench.common import HERE, bench_app

    bench_app(args.count)  # the database exists before anything is timed
    here = os.path.dirname(HERE)
    variants = [("after", here)]
    exported = None
    if args.before:
        exported = export(args.before)
        variants.insert(0, (f"before ({args.before})", exported))
    results: dict[str, list[dict]] = {label: [] for label, _ in variants}
    try:
        for _ in range(args.repeat):
            for label, code in variants:
                result = run(code, args.count, args.procs)
                results[label].append(result)
                print(label, json.dumps(result), flush=True)
    finally:
        if exported:
            shutil.rmtree(exported, ignore_errors=True)
    print("| variant | documents | seconds (each run) | median | load (1 min) before/after "
          "| largest process |")
    for label, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        loads = ", ".join(f"{r['load_before']}/{r['load_after']}" for r in runs)
        print(f"| {label} | {runs[0]['documents']:,} | {', '.join(map(str, seconds))} s | "
              f"{statistics.median(seconds):.1f} s | {loads} | "
              f"{max(r['peak_rss_mb'] for r in runs):,} MB |")


if __name__ == "__main__":
    main()
