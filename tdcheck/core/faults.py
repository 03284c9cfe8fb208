"""Known faults for the power check (``--power``): pure NumPy, never TensorFlow.

A check that passes is only worth as much as the faults it would have caught. ``--power``
takes the reference head's weights (copies: the user's model is never touched), injects one
fault at a time, evaluates the faulty head on the trunk output every head read, and asks
whether this configuration, this input and these comparison rules would have flagged it.

The faulty head is evaluated exactly (float64) and rounded once to the compute dtype: the
best a faulty implementation could do, so a fault reported *not detected* is invisible to the
comparison whatever the implementation's own rounding, and one reported *detected* exceeds the
allowed difference with the margin shown.

>>> import numpy as np
>>> k, b = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.array([0.5, -1.0], np.float32)
>>> [f.name for f in faults(k, b, "linear", "float32")][:3]
['1-ULP kernel element', 'kernel x (1+1u)', 'kernel x (1+16u)']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdcheck.core.tolerances import compute_dtype, unit_roundoff

Array = np.ndarray

#: The k of the ``kernel x (1 + k u)`` faults in the list; the doc table searches powers of 2.
SCALE_STEPS = (1, 16, 256)


@dataclass(frozen=True)
class Fault:
    """One injected fault: the faulty head's weights and activation.

    ``rounding_level``: the change is k units of roundoff (a ULP, a scaling by 1 + k u), the
    size of what a correct implementation may add too: a rule that accepts every correctly
    rounded implementation sees it only when k exceeds the bound.
    """

    name: str
    kernel: Array
    bias: Array
    activation: str
    note: str = ""
    rounding_level: bool = False


def round_to(x: Array, dtype: str) -> Array:
    """``x`` rounded to nearest (ties to even) in the compute dtype, returned as float64.

    bfloat16 is rounded by hand from float32's bits (NumPy has no bfloat16), exactly as
    a float32-to-bfloat16 conversion does.

    >>> float(round_to(np.array([1.0 + 2.0**-9]), "bfloat16")[0])
    1.0
    """
    name = compute_dtype(dtype)
    x64 = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "bfloat16":
            bits = x64.astype(np.float32).view(np.uint32).astype(np.uint64)
            rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            return rounded.astype(np.uint32).view(np.float32).astype(np.float64)
        return x64.astype(name).astype(np.float64)


def ulp(x: Array, dtype: str) -> Array:
    """The spacing of the compute dtype at ``|x|`` (the distance to the next float up)."""
    p = round(-np.log2(unit_roundoff(dtype))) - 1  # fraction bits
    x64 = np.abs(np.asarray(x, np.float64))
    tiny = {"float64": -1022, "float32": -126, "float16": -14, "bfloat16": -126}
    _, exponent = np.frexp(x64)
    exponent = np.where(x64 == 0, tiny[compute_dtype(dtype)], exponent - 1)
    exponent = np.maximum(exponent, tiny[compute_dtype(dtype)])
    return np.ldexp(1.0, exponent - p)


def scaled_kernel(kernel: Array, k: float, dtype: str) -> Array:
    """``kernel x (1 + k u)`` rounded to the dtype (for small k some elements do not move)."""
    return round_to(np.asarray(kernel, np.float64) * (1.0 + k * unit_roundoff(dtype)), dtype)


def faults(kernel: Array, bias: Array, activation: str, dtype: str) -> list[Fault]:
    """The listed faults for a head with canonical ``kernel (d, units)`` and ``bias (units,)``."""
    k = np.asarray(kernel, np.float64)
    b = np.asarray(bias, np.float64)
    out = []
    index = np.unravel_index(int(np.argmax(np.abs(k))), k.shape)
    one = k.copy()
    one[index] += ulp(one[index], dtype) * (1.0 if one[index] >= 0 else -1.0)
    out.append(Fault("1-ULP kernel element", one, b, activation,
                     f"kernel{list(map(int, index))} moved one ULP away from zero",
                     rounding_level=True))  # fmt: skip
    for step in SCALE_STEPS:
        out.append(Fault(f"kernel x (1+{step}u)", scaled_kernel(k, step, dtype), b, activation,
                         rounding_level=True))  # fmt: skip
    out.append(Fault("kernel x 1.01", round_to(k * 1.01, dtype), b, activation))
    out.append(Fault("bias dropped", k, np.zeros_like(b), activation))
    largest = float(np.max(np.abs(b))) if b.size else 0.0
    shifted = round_to(b + ulp(np.array(largest), dtype), dtype)
    out.append(Fault("bias + 1 ULP of its largest", k, shifted, activation, rounding_level=True))
    if k.shape[0] == k.shape[1]:
        out.append(Fault("kernel transposed", k.T.copy(), b, activation))
    if k.shape[1] >= 2:
        order = np.arange(k.shape[1])
        order[[0, 1]] = [1, 0]
        out.append(Fault("output units 0 and 1 swapped", k[:, order], b[order], activation))
    wrong = "tanh" if activation == "linear" else "linear"
    out.append(Fault(f"activation {wrong} instead of {activation}", k, b, wrong))
    return out


def blind_reasons(
    kernel: Array, bias: Array, x: Array, undetected: list[str]
) -> tuple[str, list[str]]:
    """Why a configuration cannot see some faults, and the options that would let it.

    Returns ``(why, options)``: e.g. ``("every kernel column is the same; the bias is
    zero; the input is constant", ["--initializer glorot_uniform", ...])``.
    """
    k, b, x64 = (np.asarray(a, np.float64) for a in (kernel, bias, x))
    why, options = [], []
    if k.size and np.all(k == k.flat[0]):
        why.append("every kernel element is the same")
        options.append("--initializer glorot_uniform")
    elif k.shape[1] >= 2 and np.all(k == k[:, :1]):
        why.append("every kernel column is the same")
        options.append("--initializer glorot_uniform")
    if not np.any(b):
        why.append("the bias is zero")
        options.append("--bias-initializer random_normal:0.5")
    elif b.size >= 2 and np.all(b == b[0]):
        why.append("every bias element is the same")
        options.append("--bias-initializer random_normal:0.5")
    if x64.size and np.all(x64 == x64.flat[0]):
        why.append("the input is constant")
        options.append("--input random")
    if not why and undetected:
        why.append("the change stays within the rounding the rule allows")
        options.append("--exact (variants bitwise identical) or --atol/--rtol below the bound")
    return "; ".join(why), options
