"""Survey where the variants are bitwise identical and where they differ by ULPs.

Runs `tdcheck.compare` (no oracle, shared glorot-uniform heads, random input) over a grid and
prints every variant pair that is not bitwise identical, with its ULP count and absolute
difference, then a count per dtype. The numbers in docs/ulp.md come from this script.

    python benchmarks/ulp_survey.py
"""

from __future__ import annotations

import itertools
import platform

import tdcheck

GRID = {
    "float32": list(itertools.product([5, 16, 64, 128], [3, 8, 32], [1, 4, 16], [2, 8, 32])),
    "float64": list(itertools.product([5, 16, 64], [3, 8, 32], [1, 4], [2, 8])),
}


def main() -> None:
    env = None
    for dtype, grid in GRID.items():
        differ: dict[str, int] = {}
        for hidden, seq, batch, units in grid:
            r = tdcheck.compare(
                dtype=dtype, hidden=hidden, seq=seq, batch=batch, units=units,
                initializer="glorot_uniform", input="random", oracle=False,
                variants="dense,time-distributed,conv1d,einsum",
            )  # fmt: skip
            env = r.environment
            for c in r.comparisons:
                if not c.stats.bitwise_equal:
                    differ[c.a] = differ.get(c.a, 0) + 1
                    print(
                        f"{dtype} hidden={hidden} seq={seq} batch={batch} units={units}: "
                        f"{c.label}: {c.stats.max_ulp} ULP, max abs {c.stats.max_abs_diff:.3g}, "
                        f"{c.stats.total} elements"
                    )
        summary = ", ".join(f"{v}: {n}" for v, n in differ.items()) or "none"
        print(f"{dtype}: {len(grid)} configurations; not bitwise identical to dense: {summary}")
    assert env is not None
    print(
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, NumPy {env['numpy']}, "
        f"{platform.machine()}, {env['cpu_count']} CPUs"
    )


if __name__ == "__main__":
    main()
