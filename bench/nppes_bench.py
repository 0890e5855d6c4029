"""NPPES import throughput: parse + classify rows/s and peak memory, per file size.

Run from the project root::

    .venv/bin/python -m bench.nppes_bench --rows 100000 1000000

Files in the exact CMS format (330 quoted columns, CRLF) are generated once into
``bench/data/`` by ``seeds.nppes_file``. Each size is measured in a fresh process,
so its peak resident memory is its own: constant memory means the peak does not
grow with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import DATA


def file_for(rows: int) -> str:
    """The generated NPPES file of ``rows`` rows (written if missing)."""
    from seeds.nppes_file import write_generated_file

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"npidata_pfile_{rows}.csv")
    if not os.path.exists(path):
        started = time.perf_counter()
        write_generated_file(path + ".tmp", rows)
        os.replace(path + ".tmp", path)
        print(f"generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def measure(path: str) -> dict:
    """Parse and classify every row of ``path`` (run inside a fresh process)."""
    import resource
    from collections import Counter

    from referral.nppes import classify, read_csv

    kinds: Counter = Counter()
    started = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as handle:
        for record in read_csv(handle):
            kinds[classify(record).kind] += 1
    elapsed = time.perf_counter() - started
    rows = sum(kinds.values())
    return {"rows": rows, "seconds": round(elapsed, 1), "rows_per_second": round(rows / elapsed),
            "file_mb": round(os.path.getsize(path) / 1e6),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "kinds": dict(kinds)}


def main() -> None:
    parser = argparse.ArgumentParser(description="NPPES parse + classify throughput")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    for rows in args.rows:
        path = file_for(rows)
        output = subprocess.run([sys.executable, "-m", "bench.nppes_bench", "--measure", path],
                                capture_output=True, text=True, check=True).stdout
        print(json.dumps(json.loads(output.strip().splitlines()[-1]), indent=1), flush=True)


if __name__ == "__main__":
    main()
