"""One grid as a local sweep and on Ray with 1 and 2 (or more) workers: a table for docs/ray.md.

Each run is the real command (``tdcheck sweep ... --format json``) in a subprocess: the local
sweep, then ``--executor ray --workers N``, each starting its own local Ray instance (or
joining ``--ray-address``). From each Ray report it takes ``executor.seconds`` (joining or
starting Ray; the cases, from the first handed out to the last back, actors' TensorFlow
start-up included) and checks that every case has the local sweep's verdict and figures.

    flock /tmp/bench.lock python benchmarks/ray_scaling.py              # 1 and 2 workers
    flock /tmp/bench.lock python benchmarks/ray_scaling.py --workers 1,2,8 --write

``--write`` replaces the table in docs/ray.md (between the ``ray-scaling`` markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "ray.md"
BEGIN, END = "<!-- ray-scaling:begin -->", "<!-- ray-scaling:end -->"
GRID = ["--rnn", "lstm,gru", "--hidden", "64,128", "--seq", "50,100", "--batch", "16"]
SAME = ("index", "name", "status", "verdict", "comparisons", "error", "power")


def run(argv: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each; medians")
    parser.add_argument("--ray-address", default=None, help="join this cluster instead")
    parser.add_argument("--write", action="store_true", help="write the table into docs/ray.md")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    tdcheck = shutil.which("tdcheck") or str(Path(sys.executable).with_name("tdcheck"))
    base = [tdcheck, "sweep", *GRID, "--format", "json"]
    where = ["--ray-address", args.ray_address] if args.ray_address else []
    walls: dict[str, list[float]] = {}
    parts: dict[str, list[tuple[float, float]]] = {}
    local_doc: dict = {}
    for r in range(args.rounds):
        for name in ["local", *(f"ray {n}" for n in counts)]:
            argv = base if name == "local" else [*base, "--executor", "ray", "--workers",
                                                 name.split()[1], *where]  # fmt: skip
            wall, doc = run(argv)
            walls.setdefault(name, []).append(wall)
            if name == "local":
                local_doc = doc
            else:
                for a, b in zip(doc["cases"], local_doc["cases"], strict=True):
                    assert all(a[k] == b[k] for k in SAME), f"{name}: {a['name']} differs"
                seconds = doc["executor"]["seconds"]
                parts.setdefault(name, []).append((seconds["connect"], seconds["cases"]))
                used = len(doc["executor"]["workers"])
                assert used == min(int(name.split()[1]), len(doc["cases"])), doc["executor"]
            print(f"round {r + 1}/{args.rounds} {name}: {wall:.1f} s", file=sys.stderr)
    cases = len(local_doc["cases"])
    one = statistics.median(c for _, c in parts[f"ray {counts[0]}"]) if counts else 0.0
    rows = [
        "| run | wall (s) | Ray start or join (s) | cases on the workers (s) "
        "| speed-up of the cases |",
        "|---|---:|---:|---:|---:|",
        f"| local sweep (one process) | {statistics.median(walls['local']):.1f} | - | - | - |",
    ]
    for n in counts:
        name = f"ray {n}"
        connect = statistics.median(c for c, _ in parts[name])
        span = statistics.median(c for _, c in parts[name])
        rows.append(
            f"| `--executor ray --workers {n}` | {statistics.median(walls[name]):.1f} | "
            f"{connect:.1f} | {span:.1f} | {one / span:.2f}x |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    note = (
        f"{cases} cases (`tdcheck sweep {' '.join(GRID)}`), every figure identical to the local "
        f"sweep's; {args.rounds} round(s), medians; {os.cpu_count()} CPUs "
        f"({platform.machine()}), load average {load:.1f} at the end; Python "
        f"{platform.python_version()}. Measured by `python benchmarks/ray_scaling.py "
        f"--workers {args.workers} --rounds {args.rounds}`."
    )
    table = "\n".join(rows) + "\n\n" + note + "\n"
    print(table)
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(text):
            sys.exit(f"{DOC}: no {BEGIN} ... {END} markers")
        DOC.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}{END}", text), encoding="utf-8")
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
