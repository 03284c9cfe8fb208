"""How far apart the backends are: the measurements behind the cross-backend tolerances.

Runs ``tdcheck compare --backends`` (every installed engine, each in its own worker process)
at the seed size and at larger sizes, for each trunk and dtype, and prints per configuration
the largest cross-backend difference of the outputs (and of the input gradients), the smallest
atol that would have passed at the default rtol, the default atol, and the oracle difference
for scale. docs/backends.md quotes it.

    python benchmarks/backend_differences.py          # every case
    python benchmarks/backend_differences.py H256     # the cases whose label contains H256
"""

from __future__ import annotations

import sys
import time

import tdcheck
from tdcheck.core.backends import ENGINE_NAMES
from tdcheck.engines.base import installed

LARGE = {"features": 64, "hidden": 256, "units": 128, "seq": 50, "batch": 8}
CASES = [
    # (label, options)
    ("seed size", {"hidden": 5, "seq": 3}),
    ("seed size, random input", {"hidden": 5, "seq": 3, "input": "random"}),
    ("F64 H256 U128 T50 B8", {**LARGE, "input": "random", "initializer": "glorot_uniform"}),
]
TRUNKS = ("lstm", "gru", "simple-rnn")
DTYPES = ("float32", "float64")


def main() -> None:
    engines = [name for name in ENGINE_NAMES if installed(name)]
    print(f"engines: {', '.join(engines)} (reference {engines[0]})\n")
    print("| configuration | trunk | dtype | backend | max abs diff (outputs) | min atol needed "
          "| max abs diff (input grad) | default atol | oracle max abs diff |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    wanted = sys.argv[1] if len(sys.argv) > 1 else ""
    for label, options in CASES:
        if wanted not in label:
            continue
        for rnn in TRUNKS:
            for dtype in DTYPES:
                if label.startswith("seed") and dtype == "float64" and rnn != "lstm":
                    continue
                if not label.startswith("seed") and rnn != "lstm" and dtype == "float64":
                    continue
                start = time.perf_counter()
                r = tdcheck.compare(
                    backends=",".join(engines), rnn=rnn, dtype=dtype, grad=True,
                    variants="dense,time-distributed,conv1d,einsum", **options,
                )  # fmt: skip
                seconds = time.perf_counter() - start
                oracle = max(
                    (c.stats.max_abs_diff or 0.0) for c in r.comparisons if c.involves_oracle
                )
                for name in engines[1:]:
                    mine = [c for c in r.comparisons
                            if c.kind == "cross-backend" and c.a.endswith(f"@{name}")]  # fmt: skip
                    outs = [c.stats for c in mine if c.quantity == "output"]
                    grads = [c.stats for c in mine if c.quantity == "input"]
                    worst = max(s.max_abs_diff or 0.0 for s in outs)
                    need = max(s.min_atol or 0.0 for s in outs)
                    gworst = max((s.max_abs_diff or 0.0 for s in grads), default=float("nan"))
                    atol = outs[0].atol
                    print(f"| {label} | {rnn} | {dtype} | {name} | {worst:.2g} | {need:.2g} | "
                          f"{gworst:.2g} | {atol:g} | {oracle:.2g} |", flush=True)  # fmt: skip
                print(f"<!-- {label} {rnn} {dtype}: {seconds:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
