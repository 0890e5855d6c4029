"""NPPES import end to end: ``referral import-nppes`` on a generated CMS-format file.

Run from the project root::

    .venv/bin/python -m bench.nppes_import_bench --rows 100000 1000000 --database postgresql sqlite

For each size and database: a fresh, migrated database (a PostgreSQL schema of its own,
or a new SQLite file) and a fresh index directory; then the real command, in its own
process, twice: the first run reads, classifies, geocodes, upserts, writes the audit and
the change log and catches the index up; the second run is the same file again (all
unchanged). Wall time, rows per second and the command's peak resident memory are
reported per run (``os.wait4`` of that process alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.common import postgres_schema
from bench.nppes_bench import file_for

BIN = os.path.join(os.path.dirname(sys.executable), "referral")


def run(command: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) and output of one command in its own process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return elapsed, round(usage.ru_maxrss / 1024), output


def measure(rows: int, database: str) -> dict:
    """Import the ``rows`` file twice into a fresh ``database``; the figures of both runs."""
    path = file_for(rows)
    instance = tempfile.mkdtemp(prefix="nppes-bench-")
    url = (postgres_schema(f"bench_nppes_{rows}", fresh=True) if database == "postgresql"
           else "sqlite:///" + os.path.join(instance, "referral.sqlite3"))
    env = {**os.environ, "DATABASE_URL": url, "REFERRAL_INSTANCE_PATH": instance,
           "INDEX_DIR": os.path.join(instance, "index"), "RATE_LIMITS": "off"}
    run([BIN, "init-db"], env)
    result = {"rows": rows, "database": database,
              "file_mb": round(os.path.getsize(path) / 1e6)}
    for label in ("first", "rerun"):
        seconds, rss, output = run([BIN, "import-nppes", path], env)
        result[label] = {"seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
                         "peak_rss_mb": rss,
                         "summary": [line for line in output.splitlines()
                                     if "created" in line or "updated" in line
                                     or "unchanged" in line][:6]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="NPPES import end to end")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--database", nargs="+", default=["postgresql", "sqlite"],
                        choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    for rows in args.rows:
        for database in args.database:
            print(json.dumps(measure(rows, database), indent=1), flush=True)
    print(f"load after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
