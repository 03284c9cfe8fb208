"""Time one 24-case `tdcheck sweep` against the same 24 cases as separate `tdcheck compare` runs.

Issue 4 asks for a ratio of at most 0.15 (aim 0.10). Each round times the sweep, then the 24
compares one after the other (the order alternates between rounds); medians over the rounds.

    python benchmarks/sweep_vs_compare.py --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import time_command

GRID = {"rnn": ["lstm", "gru"], "hidden": [4, 8, 16], "seq": [3, 10], "batch": [1, 4]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tdcheck = shutil.which("tdcheck") or str(Path(sys.executable).with_name("tdcheck"))
    sweep = [tdcheck, "sweep", "--quiet"]
    for axis, values in GRID.items():
        sweep += [f"--{axis}", ",".join(map(str, values))]
    compares = [
        [tdcheck, "compare", "--quiet", *itertools.chain.from_iterable(
            (f"--{axis}", str(value)) for axis, value in zip(GRID, combo, strict=True)
        )]
        for combo in itertools.product(*GRID.values())
    ]  # fmt: skip
    assert len(compares) == 24

    def run_compares() -> float:
        start = time.perf_counter()
        for argv in compares:
            time_command(argv)
        return time.perf_counter() - start

    sweep_times, compare_times = [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            sweep_times.append(time_command(sweep))
            compare_times.append(run_compares())
        else:
            compare_times.append(run_compares())
            sweep_times.append(time_command(sweep))
        sweep_s, compare_s = sweep_times[-1], compare_times[-1]
        print(
            f"round {r + 1}: sweep {sweep_s:.2f} s, 24 compares {compare_s:.2f} s", file=sys.stderr
        )
    s, c = statistics.median(sweep_times), statistics.median(compare_times)
    print(f"{args.rounds} rounds; grid {GRID}")
    print()
    print("| command | median s | per case s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| 24 x `tdcheck compare` | {c:.2f} | {c / 24:.2f} | 1.00 |")
    print(f"| `tdcheck sweep` (24 cases) | {s:.2f} | {s / 24:.2f} | {s / c:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
