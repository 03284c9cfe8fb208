"""The power check per dtype: which injected faults the comparisons detect (docs/checks.md).

Random input, glorot-uniform head kernel, random-normal(0.5) bias, LSTM trunk; two sizes:
hidden = units = 5 (square: the transposed kernel is a fault) and hidden 64, units 16.
Prints a Markdown table: per dtype and size, the smallest kernel scaling 1 + k u detected
and each fault's verdict.

    python benchmarks/power_table.py
"""

from __future__ import annotations

import tdcheck

DTYPES = ("float64", "float32", "float16", "bfloat16", "mixed_float16")
SIZES = ((5, 5, 4, 2), (64, 16, 32, 8))  # hidden, units, seq, batch


def main() -> None:
    header = None
    for hidden, units, seq, batch in SIZES:
        for dtype in DTYPES:
            r = tdcheck.compare(
                power=True, dtype=dtype, hidden=hidden, units=units, seq=seq, batch=batch,
                input="random", initializer="glorot_uniform",
                bias_initializer="random_normal:0.5",
            )  # fmt: skip
            rows = r.power["faults"]
            if header is None:
                header = [row["fault"] for row in rows if row["fault"] != "kernel transposed"]
                print("| dtype | hidden/units | healthy | smallest k detected | "
                      + " | ".join(header) + " | kernel transposed |")  # fmt: skip
                print("|---|---|---|---:|" + "---|" * (len(header) + 1))
            got = {row["fault"]: "yes" if row["detected"] else "no" for row in rows}
            k = r.power["smallest_scaling_detected"]
            cells = [got.get(name, "n/a") for name in header]
            cells.append(got.get("kernel transposed", "n/a (not square)"))
            print(f"| {dtype} | {hidden}/{units} | {'PASS' if r.passed else 'FAIL'} | "
                  f"{k:g} | " + " | ".join(cells) + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
