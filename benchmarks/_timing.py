"""Shared timing helpers for the benchmark scripts: alternate, repeat, take medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence


def time_command(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one run of ``argv`` (output discarded; must exit 0 or 1)."""
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def alternate(commands: dict[str, Sequence[str]], rounds: int) -> dict[str, list[float]]:
    """Run every command once per round, in alternating order; return all timings."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(time_command(commands[name]))
            print(f"round {r + 1}/{rounds} {name}: {times[name][-1]:.3f} s", file=sys.stderr)
    return times


def summary(times: list[float]) -> tuple[float, float, float]:
    return min(times), statistics.median(times), max(times)
