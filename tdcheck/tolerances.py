"""Default tolerances per dtype.

An element passes when ``|a - b| <= atol + rtol * |b|`` where ``b`` is the
reference (the first variant, or the oracle). The defaults follow
``torch.testing.assert_close`` for the reduced-precision types, and are tighter
for float64 (the oracle itself computes in float64):

=================  ==========  ==========
dtype              atol        rtol
=================  ==========  ==========
float16            1e-5        1e-3
bfloat16           1e-5        1.6e-2
mixed_float16      1e-5        1e-3
float32            1e-5        1.3e-6
float64            1e-10       1e-9
=================  ==========  ==========

>>> default_tolerances("float32")
(1e-05, 1.3e-06)
"""

from __future__ import annotations

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-5, 1e-3),
    "bfloat16": (1e-5, 1.6e-2),
    "mixed_float16": (1e-5, 1e-3),
    "float32": (1e-5, 1.3e-6),
    "float64": (1e-10, 1e-9),
}


def default_tolerances(dtype: str) -> tuple[float, float]:
    """Return ``(atol, rtol)`` for a dtype name from :data:`DEFAULT_TOLERANCES`."""
    try:
        return DEFAULT_TOLERANCES[dtype]
    except KeyError:
        raise KeyError(f"no default tolerances for dtype {dtype!r}") from None
