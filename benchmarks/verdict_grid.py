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

* ``cross`` (issue 15): ``--backends tensorflow,jax`` on healthy models: the issue's false
  FAILs (no trunk F96 U64 T128 B32 ``--grad``; GRU F32 H128 T128 B32 ``--grad``;
  float16/bfloat16/mixed_float16 at F32 H128 T32 B8), the largest size (LSTM F96 H384 T128
  B32), ``--train-steps`` with SGD and Adam, and subnormal inputs (N(0, 1) * 1e-39, float32).
  Every backend runs in its own worker, so a case costs two start-ups; ``--limit`` runs the
  first N.

    python benchmarks/verdict_grid.py grad > grad.jsonl
    python benchmarks/verdict_grid.py forward --seeds 0-9 > forward.jsonl
    flock /tmp/bench.lock python benchmarks/verdict_grid.py cross > cross.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tdcheck.commands.backends import run_compare
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


def cross_cases(seeds: list[int], tiny_input: str) -> list[dict[str, Any]]:
    """The cross-backend grid (every case ``--backends tensorflow,jax``)."""
    both = dict(backends="tensorflow,jax", input="random")
    issue = dict(initializer="he_normal", bias_initializer="random_normal")
    cases: list[dict[str, Any]] = []
    for seed in seeds:
        cases += [{**case, "seed": seed} for case in [
            dict(rnn="none", features=96, units=64, seq=128, batch=32, grad=True, **issue),
            dict(rnn="gru", features=32, hidden=128, seq=128, batch=32, grad=True, **issue),
            *[dict(rnn=rnn, features=32, hidden=128, seq=32, batch=8, dtype=dtype, grad=True,
                   **issue)
              for rnn in ("lstm", "gru")
              for dtype in ("float16", "bfloat16", "mixed_float16")],
            dict(rnn="lstm", features=96, hidden=384, seq=128, batch=32, units=16, grad=True,
                 initializer="glorot_uniform"),
            *[dict(rnn=rnn, features=32, hidden=64, seq=32, batch=8, units=8, dtype=dtype,
                   train_steps=3, optimizer=opt, initializer="glorot_uniform")
              for rnn, dtype, opt in (("lstm", "float32", "sgd"), ("lstm", "float32", "adam"),
                                      ("gru", "float16", "adam"), ("gru", "bfloat16", "sgd"))],
            dict(rnn="lstm", features=96, hidden=384, seq=128, batch=32, units=16,
                 train_steps=2, optimizer="adam", initializer="glorot_uniform"),
            dict(rnn="none", units=4, grad=True, initializer="he_normal", input=tiny_input),
            dict(rnn="lstm", hidden=32, units=4, grad=True, train_steps=2, optimizer="adam",
                 initializer="he_normal", input=tiny_input),
        ]]  # fmt: skip
    return [{**both, **case} for case in cases]


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", choices=("grad", "forward", "cross"))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--limit", type=int, default=0, help="run only the first N cases")
    parser.add_argument("--where", default="", help="only cases with these options, e.g. "
                        "train_steps=2,rnn=lstm")  # fmt: skip
    parser.add_argument("--long", action="store_true", help="forward: also seq 100")
    parser.add_argument("--dtypes", default=None,
                        help="a comma list of dtypes (default: float32, float16, bfloat16; "
                        "cross: also mixed_float16)")  # fmt: skip
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    if args.grid == "cross":
        tiny = Path(tempfile.mkdtemp(prefix="tdcheck-grid-")) / "tiny.npy"
        rng = np.random.default_rng(0)
        np.save(tiny, (rng.standard_normal((4, 8, 16)) * 1e-39).astype(np.float32))
        cases = cross_cases(seeds, str(tiny))
    elif args.grid == "grad":
        cases = grad_cases(seeds)
    else:
        cases = forward_cases(seeds, args.long)
    dtypes = args.dtypes or ",".join((*DTYPES, "mixed_float16") if args.grid == "cross" else DTYPES)
    cases = [case for case in cases if case.get("dtype", "float32") in dtypes.split(",")]
    for pair in filter(None, args.where.split(",")):
        key, _, value = pair.partition("=")
        cases = [case for case in cases if str(case.get(key)) == value]
    if args.limit:
        cases = cases[: args.limit]
    session = Session() if args.grid != "cross" else None
    summary: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    margins: dict[tuple[str, str], float] = defaultdict(float)
    for case in cases:
        start = time.perf_counter()
        cfg, x = prepare(**case)
        result = session.run(cfg, x) if session is not None else run_compare(cfg, x)
        failed = [
            {"label": c.label, "kind": c.kind, "rule": c.stats.rule, "margin": c.stats.margin}
            for c in result.failures
        ]
        worst: dict[str, float] = defaultdict(float)
        for c in result.comparisons:
            worst[c.stats.rule] = max(worst[c.stats.rule], c.stats.margin or 0.0)
            key = (case.get("dtype", "float32"), f"{c.kind} {c.quantity} {c.stats.rule}")
            margins[key] = max(margins[key], c.stats.margin or 0.0)
        dtype = case.get("dtype", "float32")
        summary[dtype][0] += 1
        summary[dtype][1] += bool(failed)
        line = {**case, "passed": result.passed, "failed": failed, "worst_margin": worst,
                "not_judged": [n for n in result.notes if "not judged" in n],
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
