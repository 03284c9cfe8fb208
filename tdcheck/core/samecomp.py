"""The ``float64`` rule: are two heads the same computation, in exact arithmetic?

Pure NumPy. Whether two heads compute the same function does not depend on the dtype they
run in: evaluate both from their *stored* weights, converted exactly to float64 (every
float16, bfloat16 and float32 value is a float64 value), on the same head input (also
exact), in float64. Then either they agree to float64 rounding, or they are different
computations, in every dtype alike, and a difference is never confused with the rounding
of the dtype.

Two tests, each with 0 false FAILs by construction:

* **outputs**: ``|y_a - y_b| <= B_a + B_b`` element-wise, ``B`` the worst-case float64
  bound of :func:`tdcheck.core.bounds.head_output_bound` (``gamma_{d+3}(2^-53) (|h||W| +
  |b|)`` through the activation's secant). Two evaluations of the same exact value are
  within the sum of their bounds (triangle inequality).
* **stored weights** (same activation): the difference ``dz = h (W_a - W_b) + (b_a - b_b)``
  computed directly, in float64. ``W_a - W_b`` is exact when the weights are within a
  factor 2 of each other (Sterbenz) and within ``u |W_a - W_b|`` otherwise, so
  ``|fl(dz) - dz| <= gamma_{d+2} (|h| |W_a - W_b| + |b_a - b_b|)`` *relative to the
  difference itself*: an element where ``|fl(dz)|`` exceeds that is certified nonzero in
  exact arithmetic, and (for a strictly monotone activation, or relu where either side is
  certified positive) so is the output difference. This sees a one-ULP change of one
  float64 weight, which the output test cannot (it is below float64's own rounding of the
  sum). Identical stored weights give ``dz = 0`` exactly.

>>> import numpy as np
>>> h = np.array([[[1.0, 2.0]]]); w = np.array([[0.5], [0.25]]); b = np.array([0.0])
>>> same_computation(h, (w, b, "linear"), (w, b, "linear")).passed
True
>>> w2 = w.copy(); w2[0, 0] = np.nextafter(0.5, 1.0)
>>> r = same_computation(h, (w2, b, "linear"), (w, b, "linear")); r.passed, r.certified
(False, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdcheck.core import bounds, faults, rounding
from tdcheck.core.stats import ArrayStats, compare_arrays

Array = np.ndarray
Head = tuple[Array, Array, str]  # (kernel (d, units), bias (units,), activation)

U64 = 2.0**-53
#: Activations for which ``z_a != z_b`` implies ``f(z_a) != f(z_b)``.
STRICTLY_MONOTONE = frozenset(
    {"linear", "tanh", "sigmoid", "softplus", "elu", "selu", "exponential"}
)


@dataclass
class SameComputation:
    """The float64 verdict on two heads: both float64 outputs and what differs."""

    passed: bool
    margin: float
    y_a: Array
    y_b: Array
    allowed: Array
    #: Elements where ``h dW + db`` is certified nonzero (stored weights differ there).
    certified: int
    #: Largest ``|fl(dz)| / bound(dz)`` over the elements (0 when the weights are equal).
    certified_ratio: float
    weights_differ: str | None

    def note(self) -> str | None:
        """One line about what makes the heads different computations (None: nothing)."""
        parts = []
        if self.weights_differ:
            parts.append(f"stored weights differ: {self.weights_differ}")
        if self.certified:
            parts.append(
                f"h dW + db is nonzero in exact arithmetic at {self.certified} element(s) "
                f"(up to {self.certified_ratio:.3g}x its float64 rounding bound)"
            )
        return "; ".join(parts) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "float64",
            "passed": self.passed,
            "margin": self.margin,
            "certified_elements": self.certified,
            "certified_ratio": self.certified_ratio,
            "weights_differ": self.weights_differ,
        }


def evaluate(h: Array, head: Head) -> tuple[Array, Array]:
    """``(y, B)``: the head's output on ``h`` in float64 and its float64 rounding bound."""
    kernel, bias, activation = head
    y = bounds.head_output_reference(h, kernel, bias, activation)
    allowed = bounds.head_output_bound(h, kernel, bias, activation, "float64")
    return y, allowed


def weight_difference(a: Head, b: Head) -> str | None:
    """Which stored weights differ, in words (None when bit-identical, activation included)."""
    parts = []
    for name, x, y in (("kernel", a[0], b[0]), ("bias", a[1], b[1])):
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x64.shape != y64.shape:
            parts.append(f"{name} shapes {x64.shape} vs {y64.shape}")
            continue
        differ = int(np.sum(x64.view(np.uint64) != y64.view(np.uint64)))
        if differ:
            parts.append(f"{name} {differ} of {x64.size} elements")
    if a[2] != b[2]:
        parts.append(f"activation {a[2]} vs {b[2]}")
    return ", ".join(parts) or None


def same_computation(h: Array, a: Head, b: Head, where: Array | None = None) -> SameComputation:
    """Judge two heads on the same head input ``h`` in float64 (see the module)."""
    h64 = np.asarray(h, np.float64)
    y_a, bound_a = evaluate(h64, a)
    y_b, bound_b = evaluate(h64, b)
    allowed = bound_a + bound_b
    sel = np.ones(y_a.shape, bool) if where is None else np.broadcast_to(where, y_a.shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(y_a - y_b)
        ratio = np.where(diff == 0, 0.0, diff / allowed)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    margin = float(ratio[sel].max()) if sel.any() else 0.0
    certified, c_ratio = _certify(h64, a, b, sel)
    differ = weight_difference(a, b)
    passed = margin <= 1.0 and certified == 0
    return SameComputation(
        passed=passed,
        margin=margin if certified == 0 else max(margin, c_ratio),
        y_a=y_a,
        y_b=y_b,
        allowed=allowed,
        certified=certified,
        certified_ratio=c_ratio,
        weights_differ=differ,
    )


def _certify(h: Array, a: Head, b: Head, sel: Array) -> tuple[int, float]:
    """Count elements where ``h dW + db`` is certified nonzero and the activation passes the
    difference on; and the largest ratio of ``|dz|`` to its float64 bound."""
    (wa, ba, fa), (wb, bb, fb) = a, b
    wa64, wb64 = np.asarray(wa, np.float64), np.asarray(wb, np.float64)
    ba64, bb64 = np.asarray(ba, np.float64), np.asarray(bb, np.float64)
    if fa != fb or wa64.shape != wb64.shape or ba64.shape != bb64.shape:
        return 0, 0.0
    if fa not in STRICTLY_MONOTONE and fa != "relu":
        return 0, 0.0
    dw, db = wa64 - wb64, ba64 - bb64
    if not (dw.any() or db.any()):
        return 0, 0.0
    d = wa64.shape[0]
    dz = h @ dw + db
    gam = bounds.gamma(d + 2, U64)
    bound = gam * (np.abs(h) @ np.abs(dw) + np.abs(db)) + (d + 2) * bounds.eta("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(dz) > 0, np.abs(dz) / bound, 0.0)
    hit = (np.abs(dz) > bound) & sel
    if fa == "relu":  # both pre-activations certainly <= 0: relu hides the difference
        za, sa = bounds.pre_activation(h, wa64, ba64)
        zb, sb = bounds.pre_activation(h, wb64, bb64)
        ea = bounds.gamma(d + 1, U64) * sa
        eb = bounds.gamma(d + 1, U64) * sb
        hit &= (za - ea > 0) | (zb - eb > 0)
    count = int(hit.sum())
    top = float(ratio[hit].max()) if count else float(ratio[sel].max(initial=0.0))
    return count, top if math.isfinite(top) else math.inf


def stats(result: SameComputation, where: Array | None = None) -> ArrayStats:
    """The verdict as an :class:`~tdcheck.core.stats.ArrayStats` (rule ``float64``): the
    float64 outputs compared element-wise with their float64 bound, plus the certificate."""
    out = compare_arrays(result.y_a, result.y_b, atol=0.0, rtol=0.0, where=where,
                         allowed=result.allowed)  # fmt: skip
    out.rule = "float64"
    out.passed = result.passed
    out.margin = result.margin
    if result.certified and out.mismatched == 0:
        out.mismatched = result.certified
    line = result.note()
    if not result.passed:
        line = "different computations" + (f": {line}" if line else "")
    if line:
        out.note = (f"{out.note}; " if out.note else "") + line
    return out


class FaultJudge:
    """The exact-arithmetic and statistical rules for ``--power``, set up once per run.

    A faulty head (its weights and activation) is evaluated exactly on the head input ``h``
    and rounded once to the compute dtype (:func:`tdcheck.core.faults.round_to`); then

    * ``statistical``: its output against the exact head with the *reference* weights,
      under the rounding model of the reference weights (:mod:`tdcheck.core.rounding`);
    * ``float64``: :func:`same_computation` of the faulty head's stored weights against
      the reference's.
    """

    def __init__(
        self, h: Array, reference: Head, dtype: str, precision: str | None = None,
        where: Array | None = None, accumulate: str | None = None,
    ) -> None:  # fmt: skip
        self.h = np.asarray(h, np.float64)
        self.reference = reference
        self.dtype = dtype
        self.where = where
        kernel, bias, activation = reference
        self.scale: rounding.Scale | None = None
        self.why_not: str | None = None
        try:
            low = rounding.head_scale(self.h, kernel, bias, activation, precision or dtype,
                                      accumulate=accumulate)  # fmt: skip
            high = rounding.head_scale(self.h, kernel, bias, activation, "float64")
            self.scale = rounding.pair_scale(low, high)
        except ValueError as exc:
            self.why_not = str(exc)

    def statistical(self, head: Head) -> tuple[bool, float] | None:
        """``(detected, margin)`` of the statistical rule, None where it does not apply."""
        if self.scale is None:
            return None
        kernel, bias, activation = head
        h = self.h
        if self.dtype.startswith("mixed_"):  # the layer's casts of h and its float32 weights
            h, kernel, bias = (faults.round_to(a, self.dtype) for a in (h, kernel, bias))
        y = faults.round_to(bounds.head_output_reference(h, kernel, bias, activation), self.dtype)
        result = rounding.judge(y, self.scale.exact, self.scale, self.where)
        return not result.passed, result.margin

    def float64(self, head: Head) -> tuple[bool, float]:
        """``(detected, margin)`` of the same-computation rule."""
        result = same_computation(self.h, head, self.reference, self.where)
        return not result.passed, result.margin


#: The ``float64`` rule for whole models (``models``, ``rewrite``): outputs of the float64
#: clones agree within ``2^-36 (max |y| + |y|)``, about 2^17 float64 units of the output's
#: largest magnitude (see docs/checks.md: not a proven bound for arbitrary layers; float64
#: rewrites measured differ by at most 56 units).
MODEL_ALLOWANCE = 2.0**-36


def model_stats(actual: Array, expected: Array, equal_nan: bool = False) -> ArrayStats:
    """Two float64 model outputs under the ``float64`` rule (``equal_nan``: NaNs in the same
    place, and equal infinities, agree)."""
    ref = np.abs(np.asarray(expected, np.float64))
    finite = ref[np.isfinite(ref)]
    top = float(finite.max()) if finite.size else 0.0
    allowed = MODEL_ALLOWANCE * (top + ref)
    out = compare_arrays(actual, expected, atol=0.0, rtol=0.0, allowed=allowed,
                         equal_nan=equal_nan)  # fmt: skip
    out.rule = "float64"
    if not out.passed and out.note is None:
        out.note = (
            "different computations: the float64 clones differ beyond float64 rounding "
            f"(margin {out.margin:.3g})"
        )
    return out


def weights_stats(a: dict[str, Array], b: dict[str, Array]) -> tuple[ArrayStats | None, str]:
    """Stored weights matched by layer name, compared bit for bit in float64.

    Returns ``(stats, "")`` (rule ``exact``), or ``(None, why)`` when the layers or their
    weights' shapes do not match (nothing to compare element by element).
    """
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        return None, f"stored weights not compared: the layers differ ({', '.join(only[:4])})"
    shapes = [k for k in a if np.shape(a[k]) != np.shape(b[k])]
    if shapes:
        k = shapes[0]
        return None, f"stored weights not compared: {k} is {np.shape(b[k])} vs {np.shape(a[k])}"
    keys = sorted(a)
    flat_a = np.concatenate([np.ravel(a[k]) for k in keys]) if keys else np.zeros(0)
    flat_b = np.concatenate([np.ravel(b[k]) for k in keys]) if keys else np.zeros(0)
    out = compare_arrays(flat_b, flat_a, atol=0.0, rtol=0.0, exact=True)
    differ = []
    for k in keys:
        n = int(np.sum(np.asarray(a[k], np.float64).view(np.uint64)
                       != np.asarray(b[k], np.float64).view(np.uint64)))  # fmt: skip
        if n:
            differ.append(f"{k} {n} of {np.size(a[k])} elements")
    if differ:
        out.note = "different computations: stored weights differ: " + ", ".join(differ[:4])
        out.worst_index = None
    return out, ""
