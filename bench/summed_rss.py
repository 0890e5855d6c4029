"""Peak resident memory of a command summed over it and its child processes.

``os.wait4`` (``bench/nppes_import_bench.py``) reports the largest single process; an
import with reading processes needs their sum too. Run from the project root::

    .venv/bin/python -m bench.summed_rss .venv/bin/referral import-nppes FILE

Samples ``/proc`` every 0.2 s (Linux only); RSS counts pages shared after a fork once per
process, so the sum is an upper bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def resident_mb(pid: int) -> int:
    """Resident memory of ``pid`` in MB (0 once it has ended)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def main() -> None:
    """Run the command given as arguments; print its time and peak summed RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak, each = 0, {}
    while process.poll() is None:
        sizes = {pid: resident_mb(pid) for pid in [process.pid, *children(process.pid)]}
        peak = max(peak, sum(sizes.values()))
        for pid, size in sizes.items():
            each[pid] = max(each.get(pid, 0), size)
        time.sleep(0.2)
    print(f"{time.perf_counter() - started:.1f} s, exit {process.returncode}, peak summed RSS "
          f"{peak} MB, per process {sorted(each.values())} MB, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
