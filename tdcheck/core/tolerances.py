"""Default tolerances per dtype.

An element passes when ``|a - b| <= atol + rtol * |b|`` where ``b`` is the
reference (the first variant, or the float64 oracle). The defaults are sized for
a whole model (trunk and head) against the float64 oracle, not for one
operation: rounding accumulates over the timesteps of the recurrent trunk.
They are a few machine epsilons for the reduced-precision types, measured with
margin at hidden 64, seq 32, batch 4 on every trunk (benchmarks/tolerance_margins.py,
docs/guide.md), and tight for float64.

==============  ========  ========  ==================================
dtype           atol      rtol      machine epsilon
==============  ========  ========  ==================================
float64         1e-10     1e-9      2.2e-16
float32         1e-5      1.3e-6    1.2e-7
float16         5e-3      5e-3      9.8e-4
mixed_float16   5e-3      5e-3      9.8e-4 (float16 compute)
bfloat16        4e-2      4e-2      7.8e-3
==============  ========  ========  ==================================

>>> default_tolerances("float32")
(1e-05, 1.3e-06)
"""

from __future__ import annotations

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1.3e-6),
    "float64": (1e-10, 1e-9),
    "float16": (5e-3, 5e-3),
    "mixed_float16": (5e-3, 5e-3),
    "bfloat16": (4e-2, 4e-2),
}


def default_tolerances(dtype: str) -> tuple[float, float]:
    """Return ``(atol, rtol)`` for a dtype name from :data:`DEFAULT_TOLERANCES`."""
    try:
        return DEFAULT_TOLERANCES[dtype]
    except KeyError:
        raise KeyError(f"no default tolerances for dtype {dtype!r}") from None
