"""Default tolerances per dtype, and the facts of each compute dtype (u, range).

Head outputs and head weight gradients are judged by error bounds
(:mod:`tdcheck.core.bounds`); these tolerances judge the rest (the trunk against the
oracle, trained weights, cross-device pairs; the ``scaled`` rule adds to them), and every
comparison when the user gives ``--atol/--rtol``. An element passes when
``|a - b| <= atol + rtol * |b|`` where ``b`` is the reference. The defaults are sized for
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


#: The dtype the arithmetic happens in, per ``--dtype`` (mixed_float16 keeps float32
#: variables but computes in float16).
COMPUTE_DTYPES: dict[str, str] = {
    "float64": "float64",
    "float32": "float32",
    "float16": "float16",
    "mixed_float16": "float16",
    "bfloat16": "bfloat16",
    # Not a --dtype: float32 whose matrix products round their inputs to TensorFloat-32
    # (10 fraction bits), what TensorFlow does on recent NVIDIA GPUs unless disabled.
    "tf32": "tf32",
}

#: ``(precision p in bits incl. the implicit one, largest exponent emax)`` per compute dtype.
_FORMATS: dict[str, tuple[int, int]] = {
    "float64": (53, 1023),
    "float32": (24, 127),
    "float16": (11, 15),
    "bfloat16": (8, 127),
    "tf32": (11, 127),
}


def compute_dtype(dtype: str) -> str:
    """The dtype the model computes in: ``compute_dtype("mixed_float16") == "float16"``."""
    return COMPUTE_DTYPES[dtype]


def unit_roundoff(dtype: str) -> float:
    """``u = 2**-p`` of the compute dtype (round to nearest).

    >>> unit_roundoff("float32") == 2.0**-24, unit_roundoff("bfloat16")
    (True, 0.00390625)
    """
    p, _ = _FORMATS[compute_dtype(dtype)]
    return 2.0**-p


def largest_finite(dtype: str) -> float:
    """The largest finite value of the compute dtype: ``(2 - 2**(1-p)) * 2**emax``.

    >>> largest_finite("float16")
    65504.0
    """
    p, emax = _FORMATS[compute_dtype(dtype)]
    return (2.0 - 2.0 ** (1 - p)) * 2.0**emax


def overflow_threshold(dtype: str) -> float:
    """The smallest magnitude that rounds to infinity in the compute dtype.

    Halfway between the largest finite value and ``2**(emax+1)``: round to nearest even
    sends a tie to infinity, so ``|x| >= 2**emax * (2 - 2**-p)`` overflows.

    >>> overflow_threshold("float16")
    65520.0
    """
    p, emax = _FORMATS[compute_dtype(dtype)]
    if emax >= 1023:
        return float("inf")  # float64 input cannot overflow float64
    return 2.0**emax * (2.0 - 2.0**-p)
