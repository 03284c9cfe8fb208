"""Time `tdcheck compare` (defaults: tables and oracle) against the seed script it replaces.

Both run as fresh processes, alternately, ROUNDS times; the ratio of medians is the figure of
merit (issue 2 asks for <= 1.0). Prints a Markdown table for docs/performance.md.

    python benchmarks/compare_vs_seed.py --rounds 7 [--seed-script PATH]

The seed script is not part of this repository. It is looked up as --seed-script, then
$TDCHECK_SEED_SCRIPT, then ../shared/reference/seed_keras3.py beside the clone; when none
exists the script says so in one line and exits 2 before timing anything.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import alternate, summary

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED_SCRIPT = ROOT.parent / "shared" / "reference" / "seed_keras3.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (1..100)")
    parser.add_argument(
        "--seed-script",
        default=None,
        metavar="PATH",
        help="the seed experiment to time against (default: $TDCHECK_SEED_SCRIPT, then "
        "../shared/reference/seed_keras3.py)",
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds must be 1..100 (got {args.rounds})")
    candidates = [args.seed_script] if args.seed_script else [
        os.environ.get("TDCHECK_SEED_SCRIPT", ""), str(DEFAULT_SEED_SCRIPT)
    ]  # fmt: skip
    found = next((path for path in candidates if path and os.path.isfile(path)), None)
    if found is None:
        tried = ", ".join(repr(path) for path in candidates if path)
        print(f"compare_vs_seed: error: no seed script at {tried}; give its path with "
              "--seed-script PATH (or set $TDCHECK_SEED_SCRIPT)", file=sys.stderr)  # fmt: skip
        return 2
    args.seed_script = found
    tdcheck = shutil.which("tdcheck") or str(Path(sys.executable).with_name("tdcheck"))
    commands = {
        "seed_keras3.py": [sys.executable, args.seed_script],
        "tdcheck compare": [tdcheck, "compare"],
    }
    times = alternate(commands, args.rounds)
    seed_med = summary(times["seed_keras3.py"])[1]
    import importlib.util

    mpl = "installed" if importlib.util.find_spec("matplotlib") else "not installed"
    print(f"{args.rounds} alternating rounds, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, matplotlib {mpl}")  # fmt: skip
    print()
    print("| command | min s | median s | max s | ratio to seed (median) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        lo, med, hi = summary(values)
        print(f"| `{name}` | {lo:.2f} | {med:.2f} | {hi:.2f} | {med / seed_med:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
