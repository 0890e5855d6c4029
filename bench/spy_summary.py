"""Summarise a py-spy profile recorded with ``--format raw`` (collapsed stacks): samples
per process, and the share of samples in which each function is on the stack (inclusive)
or on top (self).

    py-spy record --subprocesses --rate 20 --format raw -o profile.txt -- <command>
    .venv/bin/python -m bench.spy_summary profile.txt --top 40 --rate 20

Under CPU contention py-spy samples a process that is runnable but not running too, so
the seconds per process are wall time spent working or waiting for a core.
"""

from __future__ import annotations

import argparse
import collections
import re


def summarise(path: str, top: int, rate: float) -> str:
    """The summary of one raw profile, as text."""
    per_process: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    on_top: collections.Counter = collections.Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            samples = int(count)
            total += samples
            frames = stack.split(";")
            processes = [f for f in frames if f.startswith("process ")]
            per_process[processes[-1].split(":")[0] if processes else "?"] += samples
            functions = [re.sub(r":\d+\)$", ")", f) for f in frames
                         if not f.startswith("process ")]
            for function in set(functions):
                inclusive[function] += samples
            if functions:
                on_top[functions[-1]] += samples
    out = [f"{total} samples ({total / rate:.0f} s at {rate:g}/s)"]
    out += [f"  {name}: {count} ({count / rate:.0f} s)" for name, count
            in per_process.most_common()]
    out.append("inclusive:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    out.append("self:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in on_top.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=float, default=20, help="py-spy's --rate")
    args = parser.parse_args()
    print(summarise(args.path, args.top, args.rate))


if __name__ == "__main__":
    main()
