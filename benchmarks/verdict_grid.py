"""False FAILs on healthy heads: the issue-10 grids, judged with the error-bound rules.

Every head here is healthy (shared weights, nothing injected), so every FAIL is a false alarm
of the judging rule. Two grids:

* ``grad``: hidden 64/256 x seq 32/100 x batch 8/32 x units 16/64 x lstm/gru x
  float32/float16/bfloat16 (96 cases), features 64, glorot-uniform heads, random input,
  ``--grad`` (the grid of issue 10, which failed 84 of 96 cases under the old per-dtype
  tolerances).
* ``forward``: hidden 64/256 x seq 32 (``--long``: also 100) x lstm/gru x
  float32/float16/bfloat16 x the seeds (120 cases for seeds 0-9), batch 8, units 16,
  features 16, all four variants, random-normal bias.

For each case it prints one JSON line (the failed comparisons with their rule and margin, and
the largest margin of every rule), then a summary per dtype. ``--seeds`` and ``--limit`` run a
subset (the machine is shared: say which subset in docs/checks.md).

    python benchmarks/verdict_grid.py grad > grad.jsonl
    python benchmarks/verdict_grid.py forward --seeds 0-9 > forward.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import defaultdict
from typing import Any

from tdcheck.commands.compare import prepare
from tdcheck.commands.session import Session

DTYPES = ("float32", "float16", "bfloat16")


def grad_cases(seeds: list[int]) -> list[dict[str, Any]]:
    cases = []
    for seed, rnn, dtype, hidden, seq, batch, units in itertools.product(
        seeds, ("lstm", "gru"), DTYPES, (64, 256), (32, 100), (8, 32), (16, 64)
    ):
        cases.append(dict(
            seed=seed, rnn=rnn, dtype=dtype, hidden=hidden, seq=seq, batch=batch, units=units,
            features=64, input="random", initializer="glorot_uniform", grad=True,
        ))  # fmt: skip
    return cases


def forward_cases(seeds: list[int], long: bool) -> list[dict[str, Any]]:
    cases = []
    for seed, rnn, dtype, hidden, seq in itertools.product(
        seeds, ("lstm", "gru"), DTYPES, (64, 256), (32, 100) if long else (32,)
    ):
        cases.append(dict(
            seed=seed, rnn=rnn, dtype=dtype, hidden=hidden, seq=seq, batch=8, units=16,
            features=16, input="random", initializer="glorot_uniform",
            bias_initializer="random_normal:0.5",
            variants="dense,time-distributed,conv1d,einsum",
        ))  # fmt: skip
    return cases


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", choices=("grad", "forward"))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--limit", type=int, default=0, help="run only the first N cases")
    parser.add_argument("--long", action="store_true", help="forward: also seq 100")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="a comma list of dtypes")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    cases = grad_cases(seeds) if args.grid == "grad" else forward_cases(seeds, args.long)
    cases = [case for case in cases if case["dtype"] in args.dtypes.split(",")]
    if args.limit:
        cases = cases[: args.limit]
    session = Session()
    summary: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    margins: dict[tuple[str, str], float] = defaultdict(float)
    for case in cases:
        start = time.perf_counter()
        cfg, x = prepare(**case)
        result = session.run(cfg, x)
        failed = [
            {"label": c.label, "kind": c.kind, "rule": c.stats.rule, "margin": c.stats.margin}
            for c in result.failures
        ]
        worst: dict[str, float] = defaultdict(float)
        for c in result.comparisons:
            worst[c.stats.rule] = max(worst[c.stats.rule], c.stats.margin or 0.0)
            key = (case["dtype"], f"{c.kind} {c.quantity} {c.stats.rule}")
            margins[key] = max(margins[key], c.stats.margin or 0.0)
        summary[case["dtype"]][0] += 1
        summary[case["dtype"]][1] += bool(failed)
        line = {**case, "passed": result.passed, "failed": failed, "worst_margin": worst,
                "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
        print(json.dumps(line), flush=True)
    print("summary: dtype, cases, FAILs", file=sys.stderr)
    for dtype, (n, fails) in summary.items():
        print(f"  {dtype}: {n} cases, {fails} failed", file=sys.stderr)
    print("largest margin per dtype and comparison (<= 1 passes):", file=sys.stderr)
    for (dtype, what), m in sorted(margins.items()):
        print(f"  {dtype:9s} {what:45s} {m:.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
