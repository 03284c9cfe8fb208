"""Comparison statistics: pure NumPy, never TensorFlow.

:func:`compare_arrays` judges ``actual`` against a reference ``expected`` with
``|actual - expected| <= atol + rtol * |expected|`` element-wise and reports
everything needed to trust the verdict: max/mean absolute and relative
difference, ULP distance, mismatch count with the worst index, bitwise equality
and the minimum tolerances that would have passed.

Special values are never agreement: a NaN or an infinity on either side is a
mismatch with an infinite difference, and the note counts them per side. With
``equal_nan=True`` (``--equal-nan``) NaNs in the same position and equal
infinities count as equal instead (the same computation gave the same special
value); a NaN against a number still mismatches.

The verdict rule is one of ``"atol/rtol"`` (``|a - b| <= atol + rtol * |b|``),
``"exact"`` (identical bits) or, when an element-wise ``allowed`` array is given,
``"bound"`` (``|a - b| <= allowed``, e.g. from :mod:`tdcheck.core.bounds`). Every
rule reports ``allowed`` (the largest allowed difference over the elements) and
``margin`` (the largest ``|a - b| / allowed``: at most 1 passes).

Arrays of different precision (a float32 variant against the float64 oracle)
are compared in float64 for the differences; the ULP distance and bitwise
equality are measured after rounding both to the lower precision.

>>> import numpy as np
>>> s = compare_arrays(np.array([1.0, 2.0]), np.array([1.0, 2.5]), atol=0.1, rtol=0.0)
>>> s.passed, s.mismatched, s.worst_index, s.max_abs_diff
(False, 1, (1,), 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_UINT_FOR_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class ArrayStats:
    """The statistics of one comparison. Its truth value is the verdict."""

    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    atol: float
    rtol: float
    exact: bool
    passed: bool
    total: int
    mismatched: int
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    mean_abs_diff: float | None = None
    max_ulp: int | None = None
    bitwise_equal: bool = False
    worst_index: tuple[int, ...] | None = None
    worst_a: float | None = None
    worst_b: float | None = None
    min_atol: float | None = None
    min_rtol: float | None = None
    note: str | None = field(default=None)
    rule: str = "atol/rtol"
    allowed: float | None = None
    margin: float | None = None
    #: The worst element's own figures (the element ``worst_index`` names: the largest
    #: ``|a - b| / allowed``): its ``|a - b|``, its allowed difference and its margin.
    worst_abs_diff: float | None = None
    worst_allowed: float | None = None
    worst_margin: float | None = None
    #: Where the largest ``|a - b|`` (``max_abs_diff``) is, and its two values; the same
    #: element as ``worst_index`` unless a larger difference had a larger allowance.
    max_abs_diff_index: tuple[int, ...] | None = None
    max_abs_diff_a: float | None = None
    max_abs_diff_b: float | None = None
    max_abs_diff_allowed: float | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def element_rule(self) -> bool:
        """True when an element-wise ``allowed`` array judged (bound, prob-bound, scaled)."""
        return self.rule not in ("atol/rtol", "exact")

    @property
    def mismatch_percent(self) -> float:
        return 100.0 * self.mismatched / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape_a": list(self.shape_a),
            "shape_b": list(self.shape_b),
            "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "max_ulp": self.max_ulp,
            "mismatched": self.mismatched,
            "total": self.total,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "worst_a": self.worst_a,
            "worst_b": self.worst_b,
            "worst_abs_diff": self.worst_abs_diff,
            "worst_allowed": self.worst_allowed,
            "worst_margin": self.worst_margin,
            "max_abs_diff_index": (
                list(self.max_abs_diff_index) if self.max_abs_diff_index is not None else None
            ),
            "max_abs_diff_a": self.max_abs_diff_a,
            "max_abs_diff_b": self.max_abs_diff_b,
            "max_abs_diff_allowed": self.max_abs_diff_allowed,
            "bitwise_equal": self.bitwise_equal,
            "atol": self.atol,
            "rtol": self.rtol,
            "exact": self.exact,
            "min_atol": self.min_atol,
            "min_rtol": self.min_rtol,
            "rule": self.rule,
            "allowed": self.allowed,
            "margin": self.margin,
            "passed": self.passed,
            "note": self.note,
        }


def _lower_precision(a: np.ndarray, b: np.ndarray) -> np.dtype:
    return a.dtype if a.dtype.itemsize <= b.dtype.itemsize else b.dtype


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise count of representable floats between ``a`` and ``b``.

    Both must have the same floating dtype (any width, bfloat16 included). +0 and
    -0 are 0 apart; NaN positions give 0 here and are judged separately.

    >>> import numpy as np
    >>> one = np.float32(1.0)
    >>> int(ulp_distance(np.array([one]), np.array([np.nextafter(one, np.float32(2))]))[0])
    1
    """
    if a.dtype != b.dtype:
        raise TypeError(f"ulp_distance needs one dtype, got {a.dtype} and {b.dtype}")
    size = a.dtype.itemsize
    utype = _UINT_FOR_SIZE[size]
    sign = np.uint64(1) << np.uint64(8 * size - 1)

    def ordered(x: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(x).view(utype).astype(np.uint64)
        magnitude = (bits & (sign - np.uint64(1))).astype(np.int64)
        return np.where(bits & sign, -magnitude, magnitude)

    nan = np.isnan(a.astype(np.float64)) | np.isnan(b.astype(np.float64))
    dist = np.abs(ordered(a) - ordered(b))
    return np.where(nan, 0, dist)


def compare_arrays(
    actual: Any,
    expected: Any,
    *,
    atol: float,
    rtol: float,
    exact: bool = False,
    where: Any = None,
    allowed: Any = None,
    equal_nan: bool = False,
) -> ArrayStats:
    """Compare ``actual`` with the reference ``expected``.

    With ``exact=True`` an element passes only when its bits are identical
    (after rounding to the common lower precision); ``atol``/``rtol`` are then
    still used for ``min_atol``/``min_rtol`` but not for the verdict.

    ``where`` (a boolean array broadcastable to the shape) restricts every
    statistic to the selected elements, e.g. the valid timesteps of padded
    sequences; indices such as ``worst_index`` stay in the full array's coordinates.

    ``allowed`` (float64, broadcastable to the shape) replaces ``atol + rtol * |b|`` as
    the element-wise allowed difference (rule ``"bound"``); ``exact`` wins over it.
    """
    a = np.asarray(actual)
    b = np.asarray(expected)
    dtype_a, dtype_b = str(a.dtype), str(b.dtype)
    rule = "exact" if exact else ("bound" if allowed is not None else "atol/rtol")
    if a.shape != b.shape:
        return ArrayStats(
            shape_a=a.shape, shape_b=b.shape, dtype_a=dtype_a, dtype_b=dtype_b,
            atol=atol, rtol=rtol, exact=exact, passed=False,
            total=int(max(a.size, b.size)), mismatched=int(max(a.size, b.size)),
            note=f"shapes differ: {a.shape} vs {b.shape}", rule=rule,
        )  # fmt: skip
    for arr, name in ((a, "actual"), (b, "expected")):
        if arr.dtype.kind not in "fiub" and not _is_float_like(arr.dtype):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    sel = (
        np.ones(a.shape, bool)
        if where is None
        else np.broadcast_to(np.asarray(where, bool), a.shape)
    )
    total = int(np.count_nonzero(sel))
    if total == 0:
        return ArrayStats(
            shape_a=a.shape, shape_b=b.shape, dtype_a=dtype_a, dtype_b=dtype_b,
            atol=atol, rtol=rtol, exact=exact, passed=True, total=0, mismatched=0,
            max_abs_diff=0.0, max_rel_diff=0.0, mean_abs_diff=0.0, max_ulp=0,
            bitwise_equal=True, min_atol=0.0, min_rtol=0.0, rule=rule, allowed=0.0, margin=0.0,
        )  # fmt: skip

    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    special = ~(np.isfinite(a64) & np.isfinite(b64))
    # equal_nan: equal values, equal infinities, matching NaNs; else a special value never agrees
    same = (a64 == b64) | (nan_a & nan_b) if equal_nan else (a64 == b64) & ~special
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(a64 - b64))
    diff = np.where(np.isnan(diff) | (special & ~same), np.inf, diff)
    diff = np.where(sel, diff, 0.0)
    note = _special_note(a64, b64, sel) if (special & sel).any() else None
    abs_b = np.abs(b64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / abs_b)
    rel = np.where(np.isnan(rel), np.inf, rel)

    low = _lower_precision(a, b)
    with np.errstate(over="ignore", invalid="ignore"):
        a_low, b_low = a.astype(low), b.astype(low)
    if low.kind == "f" or _is_float_like(low):
        # Undefined when a NaN faces a number: that mismatch shows as an infinite diff.
        max_ulp: int | None = (
            None if (special & sel & ~same).any() else int((ulp_distance(a_low, b_low) * sel).max())
        )
        bits_equal = _bits_equal(a_low, b_low) | ~sel
    else:
        max_ulp = int((np.abs(a_low.astype(np.int64) - b_low.astype(np.int64)) * sel).max())
        bits_equal = np.asarray(a_low == b_low) | ~sel
    bitwise = bool(bits_equal.all()) and a.dtype == b.dtype

    if allowed is None:
        with np.errstate(invalid="ignore", over="ignore"):
            allow = np.where(np.isfinite(abs_b), atol + rtol * abs_b, 0.0)
    else:
        allow = np.broadcast_to(np.asarray(allowed, np.float64), a.shape)
    if exact:
        allow = np.zeros(a.shape)
        ok = bits_equal & ~(special & ~same)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            # An infinite difference never passes, even against an infinite allowance.
            ok = same | (np.isfinite(diff) & (diff <= allow))
    ok = ok | ~sel
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / allow)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    if exact:
        ratio = np.where(ok, 0.0, np.inf)
    margin = float(np.where(sel, ratio, 0.0).max())
    largest_allowed = float(np.where(sel & np.isfinite(allow), allow, 0.0).max())
    mismatched = int(a.size - np.count_nonzero(ok))

    # The worst element: the largest margin |a - b| / allowed (ties: the larger difference);
    # exact mode: the largest difference among the mismatched elements.
    if exact:
        flat_worst = int(np.argmax(np.where(ok, -1.0, diff).ravel())) if mismatched else 0
    else:
        flat_worst = _largest(np.where(sel, ratio, -1.0), diff)
    worst_index = tuple(int(i) for i in np.unravel_index(flat_worst, a.shape))
    flat_largest = _largest(diff, np.where(sel, ratio, -1.0))
    largest_index = tuple(int(i) for i in np.unravel_index(flat_largest, a.shape))

    finite = np.isfinite(diff) & sel
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        need_atol_each = np.where(diff == 0, 0.0, diff - rtol * abs_b)
        need_rtol_each = np.where(diff <= atol, 0.0, (diff - atol) / abs_b)
    need_atol = float(np.where(np.isnan(need_atol_each), np.inf, need_atol_each).max())
    need_rtol = float(np.where(np.isnan(need_rtol_each), np.inf, need_rtol_each).max())

    return ArrayStats(
        shape_a=a.shape,
        shape_b=b.shape,
        dtype_a=dtype_a,
        dtype_b=dtype_b,
        atol=float(atol),
        rtol=float(rtol),
        exact=exact,
        passed=mismatched == 0,
        total=total,
        mismatched=mismatched,
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(rel.max()),
        mean_abs_diff=float(diff[finite].mean()) if finite.any() else math.inf,
        max_ulp=max_ulp,
        bitwise_equal=bitwise,
        worst_index=worst_index,
        worst_a=float(a64.flat[flat_worst]),
        worst_b=float(b64.flat[flat_worst]),
        min_atol=max(need_atol, 0.0),
        min_rtol=max(need_rtol, 0.0),
        note=note,
        rule=rule,
        allowed=largest_allowed,
        margin=margin,
        worst_abs_diff=float(diff.flat[flat_worst]),
        worst_allowed=float(allow.flat[flat_worst]),
        worst_margin=float(ratio.flat[flat_worst]),
        max_abs_diff_index=largest_index,
        max_abs_diff_a=float(a64.flat[flat_largest]),
        max_abs_diff_b=float(b64.flat[flat_largest]),
        max_abs_diff_allowed=float(allow.flat[flat_largest]),
    )


def _largest(primary: np.ndarray, secondary: np.ndarray) -> int:
    """The flat index of the largest ``primary``; among equals, of the largest ``secondary``."""
    p = primary.ravel()
    top = p.max()
    candidates = np.flatnonzero(p == top) if not np.isnan(top) else np.arange(p.size)
    return int(candidates[np.argmax(secondary.ravel()[candidates])])


def _special_note(a64: np.ndarray, b64: np.ndarray, sel: np.ndarray) -> str:
    """``non-finite values: actual 2 NaN, 1 inf; expected 2 NaN`` (selected elements)."""

    def count(x: np.ndarray) -> str:
        nan = int(np.count_nonzero(np.isnan(x) & sel))
        inf = int(np.count_nonzero(np.isinf(x) & sel))
        parts = [f"{nan} NaN"] * bool(nan) + [f"{inf} inf"] * bool(inf)
        return ", ".join(parts) or "none"

    return f"non-finite values: actual {count(a64)}; expected {count(b64)}"


def _is_float_like(dtype: np.dtype) -> bool:
    """True for NumPy floats and extension floats such as ml_dtypes' bfloat16."""
    return dtype.kind == "f" or dtype.name.startswith(("bfloat", "float8"))


def _bits_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    utype = _UINT_FOR_SIZE[a.dtype.itemsize]
    return np.ascontiguousarray(a).view(utype) == np.ascontiguousarray(b).view(utype)
