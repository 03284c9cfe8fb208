"""The ``statistical`` rule: is a difference the size of rounding, judged over all elements?

Pure NumPy, float64. The worst-case bounds of :mod:`tdcheck.core.bounds` allow every element
``gamma_n * sum |h_k w_k|``: what the unluckiest summation could lose. Rounding errors of
random sign grow like ``sqrt(n) u`` instead, and a fault (a scaled kernel, a dropped bias)
moves *every* element in a systematic way, so over thousands of elements a fault far below
the worst-case bound stands out from rounding. This module turns that into a test with a
stated false-FAIL probability.

**The rounding model** (Higham and Mary, *A new approach to probabilistic rounding error
analysis*, SIAM J. Sci. Comput. 41(5), 2019, the model of their Thm. 2.4): every operation
is ``fl(x op y) = (x op y)(1 + delta)`` with ``|delta| <= u``, and the ``delta`` are mean
independent in execution order (``E[delta_j | delta_1..delta_{j-1}] = 0``). The computed
head pre-activation ``z_hat = fl(sum_k h_k w_k + b)`` is then *multilinear* in the deltas,
so ``E[z_hat | delta_1..delta_j]`` is ``z_hat`` with the later deltas set to 0 and
``z_hat - z`` is a martingale whose j-th increment is ``delta_j`` times the computed
operand sum of operation j. In any summation order those sums are bounded by
``kappa S`` with ``S = sum_k |h_k w_k| + |b|`` and ``kappa = (1 + u)^n``; the products and
casts by ``kappa |h_k w_k|``. Azuma-Hoeffding: ``z_hat - z`` is sub-Gaussian,
``E exp(s (z_hat - z)) <= exp(s^2 sigma^2 / 2)``, with::

    sigma^2 = u^2 kappa^2 ((d + 1) S^2 + sum_k (h_k w_k)^2)

(``d - 1`` additions, the bias addition and one rounding of the result; one rounding per
product). The implementation sharpens ``(d + 1) S^2`` to the largest sum of squared operand
sums of any summation tree (:func:`tree_sum_squares`) and ``kappa`` to a growth factor that
holds with probability ``1 - p/4`` (:func:`growth`).

**Where the accumulator is wider.** Every CPU framework measured multiplies float16 and
bfloat16 matrices in float32 and rounds the result once; a probe of the engine at the
head's shape finds out (:func:`accumulation_found`). The computed head is then known to the
last bit but for ties and the accumulator's error: its two roundings to the dtype (the
product, the bias addition) are computed, not drawn, and only a bounded deviation from that
centre is modelled (:func:`head_scale`'s ``accumulate``). Mixed precision's casts of the
float32 weights are the same for every row and known exactly: the model is the compute
dtype's on the cast values, and the difference is the scale's ``offset``. An activation ``f`` adds
``f'(z) (z_hat - z)`` plus a deterministic remainder ``rho`` (its curvature over the error
interval, and its own evaluation, ``k_f u |f(z)|``, as in the bound rule); underflow adds at
most ``d eta``. So each output element is ``e_i = L_i + R_i`` with ``L_i`` sub-Gaussian
with proxy ``sigma_i`` and ``|R_i| <= r_i``; elements computed by different operations have
independent ``L_i``. ``sigma_i`` and ``r_i`` come from the *reference* weights (under the
hypothesis "same computation" both sides have them).

**The statistics** (``t_i = e_i / sigma_i`` over the ``m`` elements; a pair of computed
sides ``a - b`` has proxy ``sigma_a + sigma_b`` whatever their dependence):

* ``rms``: ``Q = mean(shrink(e_i, r_i)^2 / sigma_i^2)`` (``shrink`` moves ``e_i`` toward 0
  by ``r_i``, so ``|shrink| <= |L_i|``). For sub-Gaussian ``t`` with proxy 1,
  ``E exp(s t^2) <= (1 - 2s)^(-1/2)``; with independence and Chernoff,
  ``P(Q >= q) <= exp(-m/2 (q - 1 - ln q))``. The threshold solves
  ``q - 1 - ln q = 2 ln(K / p) / m``.
* ``direction`` ``v`` (a fixed unit vector, built from the reference's exact values, never
  from the tested side): ``T = sum v_i e_i / sigma_i``. Hoeffding: ``|sum v_i L_i / sigma_i|``
  is sub-Gaussian with proxy 1, so ``P(|T| >= lam + sum |v_i| r_i / sigma_i) <= 2 exp(-lam^2/2)``;
  ``lam = sqrt(2 ln(2K / p))``. The directions are the matched filters of the two
  systematic faults: a constant shift (``v ~ 1 / sigma``: the error's *bias*) and a scaling
  (``v ~ y / sigma``), pooled over all elements and per output unit.

With ``K`` statistics in all, the union bound gives a false-FAIL probability of at most
``p`` (:data:`FALSE_FAIL`, 1e-9) per comparison, *under the model*. Where the model is
plainly wrong (the same operations on the same values give the same rounding, not
independent draws) the elements are deduplicated: an element whose head-input row and
weight column are bit-identical to an earlier one's is left out of the statistics (it is
still judged by the bound rule).

>>> round(rms_threshold(10_000, 1e-9 / 3), 4)
1.0964
>>> round(direction_threshold(1e-9 / 3), 3)
6.71
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core import bounds, oracle
from tdcheck.core.faults import round_to, ulp
from tdcheck.core.stats import ArrayStats, compare_arrays
from tdcheck.core.tolerances import compute_dtype, unit_roundoff

Array = np.ndarray

#: The stated false-FAIL probability of one comparison under the rounding model.
FALSE_FAIL = 1e-9


def rms_threshold(m: int, p: float) -> float:
    """The ``q`` with ``exp(-m/2 (q - 1 - ln q)) = p``: ``P(Q >= q) <= p`` (``q > 1``).

    >>> rms_threshold(1, 1e-9) > 40
    True
    """
    target = 2.0 * math.log(1.0 / p) / m
    lo, hi = 1.0, 2.0
    while hi - 1.0 - math.log(hi) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid - 1.0 - math.log(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def direction_threshold(p: float) -> float:
    """``lam = sqrt(2 ln(2 / p))``: ``P(|T| >= lam) <= 2 exp(-lam^2 / 2) = p``."""
    return math.sqrt(2.0 * math.log(2.0 / p))


@dataclass
class Scale:
    """Per-element rounding model of a head output: ``sigma`` (the sub-Gaussian proxy of
    the random part) and ``slack`` (the deterministic remainder), plus the exact value."""

    sigma: Array
    slack: Array
    exact: Array
    #: Positions (flattened element indices) whose computation repeats an earlier one's.
    duplicate: Array
    #: The known, deterministic part of the error: with a float32 accumulator, the two
    #: roundings of the centre ``fl(fl(hW) + b)`` (and mixed precision's weight casts),
    #: computed rather than drawn; the rule judges ``actual - expected - offset``.
    offset: Array | float = 0.0


def growth(n: int, m: int, u: float, p: float) -> float:
    """``1 + eta``: with probability at least ``1 - p`` no computed partial sum of any of the
    ``m`` elements exceeds ``(1 + eta)`` times the sum of its terms' magnitudes.

    The error of a partial sum over ``n_j`` terms, stopped when a partial sum first grows
    past ``(1 + eta)`` times its terms, is sub-Gaussian with proxy ``u (1 + eta) sqrt(n_j)``
    times that sum (Azuma), so ``P(first growth at op j) <= 2 exp(-eta^2 / (2 n u^2
    (1 + eta)^2))``; a union over the ``n m`` operations gives ``eta / (1 + eta) =
    u sqrt(n) sqrt(2 ln(2 n m / p))``. Infinite when that is 1 or more (no model).
    """
    x = u * math.sqrt(n) * math.sqrt(2.0 * math.log(2.0 * n * max(m, 1) / p))
    return math.inf if x >= 1.0 else 1.0 / (1.0 - x)


def tree_sum_squares(terms: Array, chunk: int = 1 << 22) -> Array:
    """``sum_{j=2}^{n} P_j^2`` over the last axis, ``P_j`` the sum of the ``j`` largest
    ``|terms|``: the largest ``sum over the additions of (operand sum)^2`` of any
    summation tree of these terms (the k-th largest internal node of a binary tree with n
    leaves has at most n - k + 1 leaves, so its sum is at most ``P_{n-k+1}``).

    >>> tree_sum_squares(np.array([1.0, 3.0, 2.0])).item()  # (3+2)^2 + (3+2+1)^2
    61.0
    """
    flat = np.abs(terms.reshape(-1, terms.shape[-1]))
    out = np.empty(flat.shape[0])
    step = max(1, chunk // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        block = -np.sort(-flat[start : start + step], axis=1)
        prefix = np.cumsum(block, axis=1)[:, 1:]
        out[start : start + step] = np.sum(prefix * prefix, axis=1)
    return out.reshape(terms.shape[:-1])


def _terms_model(h: Array, w: Array, b: Array) -> tuple[Array, Array]:
    """``(sum over additions of P_j^2, sum_k p_k^2)`` per output element of ``h W + b``: the
    terms are the ``d`` products and the bias."""
    rows = h.reshape(-1, h.shape[-1])
    units = w.shape[1]
    tree = np.empty((rows.shape[0], units))
    step = max(1, (1 << 22) // max(1, w.size))
    for start in range(0, rows.shape[0], step):
        block = rows[start : start + step]
        terms = block[:, :, None] * w[None, :, :]  # (rows, d, units)
        bias = np.broadcast_to(b[None, None, :], (block.shape[0], 1, units))
        terms = np.concatenate([terms, bias], axis=1)
        tree[start : start + step] = tree_sum_squares(np.swapaxes(terms, 1, 2))
    squares = (rows * rows) @ (w * w)
    shape = (*h.shape[:-1], units)
    return tree.reshape(shape), squares.reshape(shape)


def head_scale(
    h: Array, kernel: Array, bias: Array, activation: str, dtype: str, p: float = FALSE_FAIL,
    accumulate: str | None = None,
) -> Scale:  # fmt: skip
    """The rounding model of ``activation(h W + b)`` computed in ``dtype`` (see the module).

    ``kernel (d, units)`` and ``bias (units,)`` are the reference's; ``h (..., d)`` the
    head input both sides read. Without ``accumulate`` every operation rounds with the
    dtype's ``u`` (the module's model).

    ``accumulate``: the precision the matrix product adds in, when the engine's probe found
    it wider than ``dtype`` (:func:`accumulation_found`: float16 and bfloat16 products
    accumulated in float32). Then the computed value is known to the last bit, ties and the
    accumulator's own error aside: the *centre* ``c = fl(fl(hW) + b)``, the exact product
    rounded to the dtype, then the bias addition rounded. Those two roundings are computed,
    not modelled as draws (adding a product far smaller than the bias rounds every row the
    same way: a systematic error the statistics would grow on), and they go into the
    scale's ``offset`` (``f(c) - f(hW + b)``). What a correct engine may still differ from
    ``c`` by, a fused bias addition or an accumulator that crosses a rounding boundary, is
    bounded, mean zero under the model, and independent between elements; its proxy is
    that bound::

        sigma_z = ulp(|hW| + E) + E + ulp(|c| + ulp(|hW| + E) + E)

    ``E = gamma_{d+1}(u_a) sum |h_k w_k|`` (the accumulated value's worst-case error),
    ``ulp`` the dtype's spacing at that magnitude.

    ``mixed_float16``: the layer casts ``h``, ``W`` and ``b`` to float16 on every call, the
    same rounding for every row; that is no random draw but known exactly, so the model is
    float16's on the cast values and the offset is taken from the stored weights' exact
    head.
    """
    h64, w64, b64 = (np.asarray(a, np.float64) for a in (h, kernel, bias))
    f = oracle.ACTIVATIONS[activation]
    stored = f(h64 @ w64 + b64)  # the exact head of the stored weights
    if dtype.startswith("mixed_"):
        # The layer casts its float32 weights to the compute dtype on every call: one
        # rounding per weight, the same for every row. That is known exactly: the model is
        # the compute dtype's on the cast values, and the difference goes into the offset.
        h64, w64, b64 = (round_to(a, dtype) for a in (h64, w64, b64))
        dtype = compute_dtype(dtype)
    u = unit_roundoff(dtype)
    d = w64.shape[0]
    n = d + 3
    z, s = bounds.pre_activation(h64, w64, b64)
    # (16-bit dtypes only: TF32 rounds the products' inputs, not their sum)
    wide = accumulate is not None and dtype in ("float16", "bfloat16")
    if wide and unit_roundoff(str(accumulate)) < u:
        # What a float32 accumulator rounded to the dtype, then the bias addition rounded,
        # computes, to the last bit (ties and accumulation error aside): the centre. Its
        # roundings are no random draws (adding a small product to a large bias rounds
        # every row the same way), so they are computed, and what may differ from the
        # centre is bounded (a fused bias addition, an accumulator that crosses a
        # rounding boundary): one spacing of the product, the accumulator's worst case E,
        # and one spacing of the result, ``ulp(|hW| + E) + E + ulp(|centre| + ...)``.
        product = h64 @ w64
        acc_err = bounds.gamma(d + 1, unit_roundoff(str(accumulate))) * (s - np.abs(b64))
        centre = round_to(round_to(product, dtype) + b64, dtype)
        moved = ulp(np.abs(product) + acc_err, dtype) + acc_err
        sigma_z = moved + ulp(np.abs(centre) + moved, dtype)
        hard: Array | None = sigma_z
    else:
        tree, squares = _terms_model(h64, w64, b64)
        grow = growth(n, z.size, u, p / 4)
        # the additions (any order), the products, one more rounding of the result
        sigma_z = u * grow * np.sqrt(tree + squares + s * s)
        centre, hard = z, None
    slack_z = d * bounds.eta(dtype) + np.zeros_like(z)
    if activation == "linear":
        sigma, slack, exact = sigma_z, slack_z, centre
    else:
        # The error interval of z: the bound where the centre is computed, else the
        # worst-case bound or the model's own tail at the confidence of the whole
        # comparison (Azuma), whichever is smaller.
        tail = math.sqrt(2.0 * math.log(8.0 * max(z.size, 1) / p))
        if hard is not None:
            ez = hard + slack_z
        else:
            ez = np.minimum(bounds.error_factor(n, u) * s, tail * sigma_z) + slack_z
        exact = f(centre)
        fprime = _derivative(activation, centre)
        sigma = np.abs(fprime) * sigma_z
        slack = np.abs(fprime) * slack_z + _curvature(f, centre, ez, fprime)
        k = bounds.ACTIVATION_ULPS.get(activation, bounds._DEFAULT_ACTIVATION_ULPS)
        slack = slack + k * u * (np.abs(exact) + bounds._CANCELLING[activation](centre))
    duplicate = _duplicates(h64, w64, b64)
    return Scale(sigma=sigma, slack=slack, exact=exact, duplicate=duplicate, offset=exact - stored)


#: The probe's operand sets: repeated until this many output elements (a storage-precision
#: accumulator leaves most of them off the correctly rounded value, see below).
PROBE_ELEMENTS = 4096
#: The largest fraction of the probe's elements off the correctly rounded product that still
#: reads as a float32 accumulator (double rounding float32 -> dtype moves a few in 10^4).
PROBE_OFF_FRACTION = 0.02


def accumulation_operands(
    rows: int, d: int, units: int, dtype: str, seed: int = 0
) -> list[tuple[Array, Array]]:
    """Operand pairs ``(a (rows, d), b (d, units))`` for the accumulation probe, exactly
    representable in ``dtype`` (N(0, 1) and N(0, 1/d), rounded): the shapes of a head's
    product, repeated with fresh values until :data:`PROBE_ELEMENTS` output elements (at
    most 64 sets; ``rows`` capped at 4096)."""
    rng = np.random.default_rng(seed)
    rows = max(1, min(rows, 4096))
    sets = max(1, min(64, -(-PROBE_ELEMENTS // max(1, rows * units))))
    out = []
    for _ in range(sets):
        a = round_to(rng.standard_normal((rows, d)), dtype)
        b = round_to(rng.standard_normal((d, units)) / math.sqrt(d), dtype)
        out.append((a, b))
    return out


def accumulation_found(results: list[Array], operands: list[tuple[Array, Array]],
                       dtype: str) -> str:  # fmt: skip
    """The precision a matrix product in ``dtype`` accumulates in, from the probe's
    ``results`` (one per operand pair, as float64): ``"float32"`` when every element is
    within what a float32 accumulator rounded once to ``dtype`` can be off the exact product
    (``u |x| + (1 + u) gamma_d(2^-24) sum_k |a_k b_k|``) and at most
    :data:`PROBE_OFF_FRACTION` of them differ from the exact product correctly rounded,
    else ``dtype`` itself (every addition may round to the dtype).

    An accumulator in the dtype rounds every one of the ``d - 1`` additions by up to ``u``
    of a partial sum, far beyond float32's ``gamma_d``; over random operands most results
    then leave the correctly rounded value (``d >= 2``: about a third and more), so 4096
    elements tell the two apart beyond doubt.

    >>> ops = accumulation_operands(64, 16, 8, "bfloat16")
    >>> accumulation_found([round_to(a @ b, "bfloat16") for a, b in ops], ops, "bfloat16")
    'float32'
    >>> def naive(a, b):  # every addition rounded to bfloat16
    ...     acc = np.zeros((a.shape[0], b.shape[1]))
    ...     for k in range(a.shape[1]):
    ...         acc = round_to(acc + round_to(np.outer(a[:, k], b[k]), "bfloat16"), "bfloat16")
    ...     return acc
    >>> accumulation_found([naive(a, b) for a, b in ops], ops, "bfloat16")
    'bfloat16'
    """
    name = compute_dtype(dtype)
    if name not in ("float16", "bfloat16"):
        return name
    u = unit_roundoff(name)
    off = total = 0
    for y, (a, b) in zip(results, operands, strict=True):
        exact = a @ b
        rounded = round_to(exact, name)
        y = np.asarray(y, np.float64).reshape(rounded.shape)
        wide = bounds.gamma(a.shape[1], unit_roundoff("float32")) * (np.abs(a) @ np.abs(b))
        if not np.all(np.abs(y - exact) <= u * np.abs(exact) + (1.0 + u) * wide):
            return name
        off += int(np.count_nonzero(y != rounded))
        total += rounded.size
    return "float32" if total and off <= PROBE_OFF_FRACTION * total else name


def _derivative(activation: str, z: Array) -> Array:
    if activation == "softmax":
        raise ValueError("the statistical rule does not model softmax (it couples the units)")
    return bounds.DERIVATIVES[activation](z)


def _curvature(f: Any, z: Array, ez: Array, fprime: Array) -> Array:
    """``max |f(z + x) - f(z) - f'(z) x|`` over ``|x| <= ez``, sampled at 17 points (the
    ends and inside: exact for convex or concave pieces with at most one kink inside)."""
    worst = np.zeros_like(z)
    fz = f(z)
    with np.errstate(over="ignore", invalid="ignore"):
        for frac in np.linspace(-1.0, 1.0, 17):
            x = frac * ez
            worst = np.maximum(worst, np.abs(f(z + x) - fz - fprime * x))
        # a kink (relu, elu, selu at 0) inside the interval: evaluate there too
        x0 = np.clip(-z, -ez, ez)
        worst = np.maximum(worst, np.abs(f(z + x0) - fz - fprime * x0))
    return np.where(np.isnan(worst), np.inf, worst)


def _duplicates(h: Array, w: Array, b: Array) -> Array:
    """Boolean over ``h.shape[:-1] + (units,)``: True where the element's head-input row and
    weight column (with its bias) repeat an earlier element's bit for bit."""
    rows = h.reshape(-1, h.shape[-1])
    _, first_row = np.unique(rows, axis=0, return_index=True)
    row_dup = np.ones(rows.shape[0], bool)
    row_dup[first_row] = False
    cols = np.concatenate([w, b[None, :]], axis=0).T
    _, first_col = np.unique(cols, axis=0, return_index=True)
    col_dup = np.ones(cols.shape[0], bool)
    col_dup[first_col] = False
    dup = row_dup[:, None] | col_dup[None, :]
    return dup.reshape(*h.shape[:-1], w.shape[1])


def pair_scale(a: Scale, b: Scale) -> Scale:
    """The model of ``a - b`` for two computed sides: proxies and slacks add (no
    independence between the two sides is assumed)."""
    return Scale(a.sigma + b.sigma, a.slack + b.slack, b.exact, a.duplicate | b.duplicate,
                 np.asarray(a.offset) - np.asarray(b.offset))  # fmt: skip


@dataclass
class StatisticalResult:
    """The verdict of the statistical rule on one comparison."""

    passed: bool
    margin: float
    elements: int
    probability: float
    statistics: dict[str, float] = field(default_factory=dict)
    worst: str = ""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "statistical",
            "passed": self.passed,
            "margin": self.margin,
            "elements": self.elements,
            "false_fail_probability": self.probability,
            "worst_statistic": self.worst,
            "statistics": self.statistics,
            "note": self.note,
        }


def judge(
    actual: Array, expected: Array, scale: Scale, where: Array | None = None,
    p: float = FALSE_FAIL,
) -> StatisticalResult:  # fmt: skip
    """Judge ``actual - expected`` against the rounding model ``scale`` (see the module).

    ``expected`` is the other side (an exact reference, or another computed side with
    :func:`pair_scale`); ``where`` selects the valid elements (broadcast to the shape).
    Margins: ``Q / q`` for ``rms``, ``(|T| - slack) / lam`` for each direction; the
    comparison fails when any margin exceeds 1.

    >>> s = Scale(np.ones(4), np.zeros(4), np.array([1.0, -1.0, 2.0, -2.0]), np.zeros(4, bool))
    >>> judge(np.array([1.0, -1.0, 2.0, -2.0]), s.exact, s).passed
    True
    """
    a = np.asarray(actual, np.float64)
    b = np.asarray(expected, np.float64)
    shape = np.broadcast_shapes(a.shape, b.shape, scale.sigma.shape)
    use = ~np.broadcast_to(scale.duplicate, shape)
    if where is not None:
        use = use & np.broadcast_to(np.asarray(where, bool), shape)
    with np.errstate(invalid="ignore", over="ignore"):
        e = a - b - np.broadcast_to(scale.offset, shape)
    valid = (
        np.ones(shape, bool) if where is None else np.broadcast_to(np.asarray(where, bool), shape)
    )
    if not np.all(np.isfinite(e)[valid]):
        return StatisticalResult(False, math.inf, int(use.sum()), p, worst="non-finite",
                                 note="a NaN or an infinity is never rounding")  # fmt: skip
    sigma = np.broadcast_to(scale.sigma, shape)
    slack = np.broadcast_to(scale.slack, shape)
    exact = np.broadcast_to(scale.exact, shape)
    # Elements with no random part (e.g. relu below its kink): deterministic check only.
    random = use & (sigma > 0)
    fixed = use & ~(sigma > 0)
    over = np.abs(e[fixed]) - slack[fixed]
    stats: dict[str, float] = {}
    margins: dict[str, float] = {}
    if over.size and float(over.max()) > 0:
        margins["deterministic"] = math.inf
    m = int(random.sum())
    units = shape[-1] if len(shape) >= 2 else 1  # the last axis: the head's units
    k_total = 1 + 2 + (2 * units if units > 1 else 0)  # rms, pooled, per unit
    if m == 0:
        passed = not margins
        return StatisticalResult(passed, 0.0 if passed else math.inf, 0, p,
                                 worst=max(margins, default=""),
                                 note="no element has a random rounding part")  # fmt: skip
    ev, sv, rv, xv = e[random], sigma[random], slack[random], exact[random]
    col = np.broadcast_to(np.arange(units), shape)[random]
    shrunk = np.sign(ev) * np.maximum(np.abs(ev) - rv, 0.0)
    q = float(np.mean((shrunk / sv) ** 2))
    q_max = rms_threshold(m, p / 2 / k_total)
    stats["rms"], stats["rms_threshold"] = q, q_max
    margins["rms"] = q / q_max
    lam = direction_threshold(p / 2 / k_total)
    stats["direction_threshold"] = lam
    t = ev / sv
    r = rv / sv

    def directions(name: str, v: Array) -> None:
        # pooled over all elements, then per output unit (one direction per column)
        num = np.bincount(col, weights=v * t, minlength=units)
        sq = np.bincount(col, weights=v * v, minlength=units)
        sl = np.bincount(col, weights=np.abs(v) * r, minlength=units)
        sums = [(name, num.sum(), sq.sum(), sl.sum())]
        if units > 1:
            sums += [(f"{name}[{j}]", num[j], sq[j], sl[j]) for j in range(units)]
        for key, n_v, sq_v, sl_v in sums:
            if sq_v <= 0:
                continue
            norm = math.sqrt(sq_v)
            value, slack_v = float(n_v) / norm, float(sl_v) / norm
            stats[key] = value
            margins[key] = max(abs(value) - slack_v, 0.0) / lam

    directions("bias", 1.0 / sv)
    directions("scale", xv / sv)
    worst = max(margins, key=lambda key: margins[key])
    margin = margins[worst]
    return StatisticalResult(margin <= 1.0, margin, m, p, stats, worst)


def describe(result: StatisticalResult) -> str:
    """One line: the worst statistic against its threshold, and the probability."""
    s = result.statistics
    if result.worst in ("", "non-finite", "deterministic") or not s:
        base = result.note or (
            "an element with no random rounding part is beyond its deterministic remainder"
            if result.worst == "deterministic"
            else "no statistic"
        )
        return f"statistical: {base}"
    if result.worst == "rms":
        what = f"rms Q = {s['rms']:.3g} (threshold {s['rms_threshold']:.3g})"
    else:
        what = (
            f"{result.worst} T = {s[result.worst]:.3g} (threshold {s['direction_threshold']:.3g})"
        )
    return (
        f"statistical over {result.elements} elements: worst {what}; "
        f"false-FAIL probability <= {result.probability:.0e} under the rounding model"
    )


def stats(
    actual: Array, expected: Array, scale: Scale, where: Array | None = None,
    p: float = FALSE_FAIL,
) -> ArrayStats:  # fmt: skip
    """:func:`judge` as an :class:`~tdcheck.core.stats.ArrayStats` (rule ``statistical``):
    the usual difference statistics, the verdict and margin of the test, and its line in
    ``note``. ``mismatched`` counts the elements beyond ``lam`` on their own."""
    if np.shape(actual) != np.shape(expected):  # (a head that returned the wrong shape)
        out = compare_arrays(actual, expected, atol=0.0, rtol=0.0)
        out.rule = "statistical"
        return out
    result = judge(actual, expected, scale, where, p)
    out = compare_arrays(actual, expected, atol=0.0, rtol=0.0, where=where)
    a, b = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t = np.abs(a - b - scale.offset) - scale.slack
        lam = result.statistics.get("direction_threshold", direction_threshold(p))
        outside = np.where(t > 0, t, 0.0) > lam * scale.sigma
    if where is not None:
        outside &= np.broadcast_to(np.asarray(where, bool), outside.shape)
    out.rule = "statistical"
    out.passed = result.passed
    out.margin = result.margin
    out.mismatched = int(outside.sum()) if not result.passed else 0
    # (one element on its own: beyond the known offset, lam proxies and the remainder)
    reach = lam * scale.sigma + scale.slack + np.abs(scale.offset)
    out.allowed = float(np.max(reach)) if scale.sigma.size else 0.0
    out.note = (f"{out.note}; " if out.note else "") + describe(result)
    return out
