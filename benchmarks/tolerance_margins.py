"""How close each dtype's default tolerances are to what the model really needs.

For every dtype and trunk at hidden 64, seq 32, batch 4, units 8 (glorot-uniform heads,
random input, all four variants), prints the largest difference from the float64 oracle and the
smallest atol that would have passed, next to the default atol. docs/guide.md quotes it.

    python benchmarks/tolerance_margins.py
"""

from __future__ import annotations

import tdcheck
from tdcheck.core.tolerances import DEFAULT_TOLERANCES


def main() -> None:
    print("| dtype | trunk | head activation | max abs diff to oracle | min atol needed "
          "| default atol |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|")
    for dtype in DEFAULT_TOLERANCES:
        activation = "linear" if dtype in ("float32", "float64") else "tanh"
        for rnn in ("lstm", "gru", "simple-rnn", "none"):
            r = tdcheck.compare(
                dtype=dtype, rnn=rnn, hidden=64, seq=32, batch=4, features=8, units=8,
                initializer="glorot_uniform", bias_initializer="random_normal:0.1",
                activation=activation, input="random",
                variants="dense,time-distributed,conv1d,einsum",
            )  # fmt: skip
            oracle = [c.stats for c in r.comparisons if c.involves_oracle]
            worst = max(s.max_abs_diff or 0.0 for s in oracle)
            need = max(s.min_atol or 0.0 for s in oracle)
            print(f"| {dtype} | {rnn} | {activation} | {worst:.3g} | {need:.3g} | "
                  f"{DEFAULT_TOLERANCES[dtype][0]:g} |")  # fmt: skip


if __name__ == "__main__":
    main()
