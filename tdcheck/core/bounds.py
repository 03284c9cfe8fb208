"""Forward error bounds for the head: the allowed difference of every head-computed quantity.

Pure NumPy, float64. The model in the compute dtype (unit roundoff ``u``) is judged against an
exact reference evaluated in float64 **from the same arrays**: the head's actual input ``h``
(the trunk's output as the heads received it, already rounded), the head's own kernel ``W``
and bias ``b``. The standard model of floating-point arithmetic (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., ch. 3) gives, for any summation order::

    |fl(x . y) - x . y| <= gamma_n * sum_k |x_k y_k|,    gamma_n = n u / (1 - n u)

(Higham eq. 3.5), so the head's pre-activation ``z = h W + b`` (a dot product of ``d`` terms,
one bias addition, and up to two casts when mixed precision rounds ``h`` or ``W`` to the
compute dtype) satisfies, element-wise::

    |z_hat - z| <= gamma_{d+3} * (|h| |W| + |b|) + (d+3) * eta

where ``eta`` is half the smallest subnormal (underflow is absolute, not relative; Higham
§2.1). The activation ``f`` is then bounded by its secant over ``[z - e, z + e]`` (exact
for monotone ``f``; first-order for swish and gelu near their minimum) plus ``k_f`` units
of roundoff of its own evaluation (:data:`ACTIVATION_ULPS`: 0 for linear and relu, 8 for
the transcendental ones, an assumption about the math library).

Gradients of the head's weights for the loss ``L = sum R * y`` are sums over the ``n = batch
x seq`` positions: ``dL/dW = h^T g`` and ``dL/db = sum g`` with ``g = R * f'(z)``, so::

    |dW_hat - dW| <= gamma_{n+2} * |h|^T |g| + |h|^T dg
    dg = |R| * secant(f', z, e) + (k+1) u |g|

Worst-case bounds are used whenever they exist with ``n u <= 1/2`` (rule ``"bound"``): a
PASS is then a proof, not a likelihood. For longer sums in float16/bfloat16 (a weight
gradient summed over 3200 positions has ``n u = 1.6`` in float16) no worst-case bound
exists, and the probabilistic bound of Higham and Mary (*A new approach to probabilistic
rounding error analysis*, SIAM J. Sci. Comput. 41(5), 2019, Thm. 2.4) replaces ``gamma_n``
(rule ``"prob-bound"``)::

    gamma~_n(lam) = exp(lam sqrt(n) u + n u^2 / (1 - u)) - 1

which holds with probability at least ``1 - 2 n exp(-lam^2 (1-u)^2 / 2)`` when the rounding
errors are independent and mean zero; with ``lam = 7`` (:data:`PROB_LAMBDA`) the failure
probability is below ``n * 4.6e-11`` per element (1.5e-7 for n = 3200).

>>> gamma(3, 2.0**-24) == 3 * 2.0**-24 / (1 - 3 * 2.0**-24)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tdcheck.core import oracle
from tdcheck.core.tolerances import compute_dtype, unit_roundoff

Array = np.ndarray

#: Units of roundoff an activation's own evaluation may add (beyond the input's error).
ACTIVATION_ULPS: dict[str, int] = {"linear": 0, "relu": 0}
_DEFAULT_ACTIVATION_ULPS = 8
#: Half the smallest subnormal per compute dtype (absolute error of an underflow).
_ETA = {
    "float64": 2.0**-1075,
    "float32": 2.0**-150,
    "tf32": 2.0**-150,
    "float16": 2.0**-25,
    "bfloat16": 2.0**-134,
}


#: lambda of the probabilistic bound (used only where ``n u > 1/2``).
PROB_LAMBDA = 7.0
#: Largest ``n u`` for which the worst-case ``gamma_n`` is used.
WORST_CASE_LIMIT = 0.5


def gamma(n: int, u: float) -> float:
    """``gamma_n = n u / (1 - n u)``; infinite when ``n u >= 1`` (no bound exists)."""
    nu = n * u
    return math.inf if nu >= 1 else nu / (1.0 - nu)


def gamma_prob(n: int, u: float, lam: float = PROB_LAMBDA) -> float:
    """Higham and Mary's probabilistic ``gamma~_n(lam) = exp(lam sqrt(n) u + n u^2/(1-u)) - 1``."""
    return math.expm1(lam * math.sqrt(n) * u + n * u * u / (1.0 - u))


def is_probabilistic(n: int, u: float) -> bool:
    """True when a sum of ``n`` terms is judged with the probabilistic bound."""
    return n * u > WORST_CASE_LIMIT


def error_factor(n: int, u: float) -> float:
    """The factor of ``sum |terms|`` allowed for a sum of ``n`` terms: gamma_n or gamma~_n."""
    return gamma_prob(n, u) if is_probabilistic(n, u) else gamma(n, u)


def eta(dtype: str) -> float:
    """Half the smallest positive subnormal of the compute dtype of ``dtype``."""
    return _ETA[compute_dtype(dtype)]


#: The smallest positive normal number per compute dtype (what flush-to-zero rounds below).
_TINY = {
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "tf32": 2.0**-126,
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
}


def smallest_normal(dtype: str) -> float:
    """The smallest positive normal number of the compute dtype of ``dtype``.

    >>> smallest_normal("float32") == 2.0**-126, smallest_normal("mixed_float16")
    (True, 6.103515625e-05)
    """
    return _TINY[compute_dtype(dtype)]


def subnormal_part(x: Array, dtype: str) -> Array:
    """``|x|`` where ``x`` is nonzero and below the smallest normal of ``dtype``, else 0: what
    a framework that reads subnormal operands as zero (DAZ) loses of them."""
    a = np.abs(np.asarray(x, np.float64))
    return np.where(a < smallest_normal(dtype), a, 0.0)


def flush_allowance(h: Array, kernel: Array, bias: Array, dtype: str) -> Array:
    """The extra error of ``z = h W + b`` when the framework flushes subnormals to zero.

    Gradual underflow (the bounds' default) loses at most ``eta`` per operation; with FTZ and
    DAZ (TensorFlow and XLA on x86 CPUs, see
    :meth:`tdcheck.engines.base.Engine.flush_to_zero`) a subnormal operand is read as 0,
    losing its whole product, and a subnormal result (product, partial sum, bias addition,
    cast) becomes 0, losing less than the smallest normal ``tiny`` each::

        |h_sub| |W| + |h| |W_sub| + |b_sub| + (2 d + 3) tiny

    with ``x_sub`` the subnormal elements of ``x`` (:func:`subnormal_part`).

    >>> tiny = 2.0**-126
    >>> got = flush_allowance(np.array([[tiny / 4, 1.0]]), np.array([[2.0], [1.0]]),
    ...                       np.array([0.0]), "float32")
    >>> bool(got[0, 0] == tiny / 2 + 7 * tiny)
    True
    """
    h64, w64 = np.asarray(h, np.float64), np.asarray(kernel, np.float64)
    d = w64.shape[0]
    lost = subnormal_part(h64, dtype) @ np.abs(w64) + np.abs(h64) @ subnormal_part(w64, dtype)
    return lost + subnormal_part(bias, dtype) + (2 * d + 3) * smallest_normal(dtype)


def _relu_d(z: Array) -> Array:
    return (z > 0).astype(np.float64)


def _sigmoid_d(z: Array) -> Array:
    s = oracle.ACTIVATIONS["sigmoid"](z)
    return s * (1.0 - s)


def _phi(z: Array) -> Array:
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)

#: Derivatives of the elementwise activations (softmax is handled separately).
DERIVATIVES: dict[str, Callable[[Array], Array]] = {
    "linear": np.ones_like,
    "relu": _relu_d,
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "sigmoid": _sigmoid_d,
    "softplus": lambda z: oracle.ACTIVATIONS["sigmoid"](z),
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))),
    "selu": lambda z: _SELU[1] * np.where(z > 0, 1.0, _SELU[0] * np.exp(np.minimum(z, 0.0))),
    "swish": lambda z: oracle.ACTIVATIONS["sigmoid"](z) + z * _sigmoid_d(z),
    "gelu": lambda z: 0.5 * (1.0 + oracle._erf(z / math.sqrt(2.0))) + z * _phi(z),
    "exponential": np.exp,
}


_ZERO: Callable[[Array], Array] = np.zeros_like
#: The size of the terms an activation's evaluation may cancel, beyond ``|f(z)|``: elu and selu
#: as ``exp(z) - 1`` for z < 0 (absolute error ``u exp(z)`` near 0, where ``|f|`` is tiny),
#: gelu as ``z (1 + erf(z/sqrt 2)) / 2`` (``1 + erf`` cancels for z < 0), softplus as
#: ``log(1 + exp(z))``.
_CANCELLING: dict[str, Callable[[Array], Array]] = {
    **{name: _ZERO for name in oracle.ACTIVATIONS},
    "elu": lambda z: np.exp(np.minimum(z, 0.0)),
    "selu": lambda z: _SELU[1] * _SELU[0] * np.exp(np.minimum(z, 0.0)),
    "gelu": lambda z: np.abs(z),
    "softplus": lambda z: np.ones_like(z),
}


#: The same for the derivatives: gelu's ``Phi(z) + z phi(z)`` and swish's
#: ``s + z s (1 - s)`` cancel for z < 0.
_CANCELLING_D: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda z: 0.5 * (1.0 + oracle._erf(z / math.sqrt(2.0))) + np.abs(z) * _phi(z),
    "swish": lambda z: _sigmoid_d(z) * np.abs(z) + oracle.ACTIVATIONS["sigmoid"](z),
}


def _secant(f: Callable[[Array], Array], z: Array, e: Array) -> Array:
    """``max(|f(z+e) - f(z)|, |f(z-e) - f(z)|)``: how far ``f`` moves when ``z`` moves by e."""
    with np.errstate(over="ignore", invalid="ignore"):
        fz = f(z)
        moved = np.maximum(np.abs(f(z + e) - fz), np.abs(f(z - e) - fz))
    return np.where(np.isnan(moved), np.inf, moved)


def pre_activation(h: Array, kernel: Array, bias: Array) -> tuple[Array, Array]:
    """``(z, s)``: ``z = h W + b`` and ``s = |h| |W| + |b|`` in float64, over the last axis."""
    h64, w64, b64 = (np.asarray(a, np.float64) for a in (h, kernel, bias))
    z = h64 @ w64 + b64
    s = np.abs(h64) @ np.abs(w64) + np.abs(b64)
    return z, s


def activation_error(z: Array, ez: Array, activation: str, u: float) -> Array:
    """Bound on ``|f_hat(z_hat) - f(z)|`` given ``|z_hat - z| <= ez``."""
    k = ACTIVATION_ULPS.get(activation, _DEFAULT_ACTIVATION_ULPS)
    f = oracle.ACTIVATIONS[activation]
    if activation == "softmax":
        # |ds_i| <= s_i (exp(2 max_j e_j) - 1): every logit moves by at most max e.
        s = f(z)
        spread = np.expm1(2.0 * ez.max(axis=-1, keepdims=True))
        return s * spread + k * u * s
    with np.errstate(over="ignore", invalid="ignore"):
        own = k * u * (np.abs(f(z)) + _CANCELLING[activation](z))
    return _secant(f, z, ez) + own


def head_output_bound(
    h: Array, kernel: Array, bias: Array, activation: str, dtype: str, ftz: bool = False
) -> Array:
    """Element-wise bound on ``|head(h) - activation(h W + b)|`` for the head in ``dtype``.

    ``ftz``: the framework flushes subnormals to zero (:func:`flush_allowance`); the output
    itself may then lose a subnormal value too (one ``tiny`` more).
    """
    u = unit_roundoff(dtype)
    d = np.asarray(kernel).shape[0]
    z, s = pre_activation(h, kernel, bias)
    ez = error_factor(d + 3, u) * s + (d + 3) * eta(dtype)
    if ftz:
        ez = ez + flush_allowance(h, kernel, bias, dtype)
        return activation_error(z, ez, activation, u) + smallest_normal(dtype)
    return activation_error(z, ez, activation, u)


def head_output_reference(h: Array, kernel: Array, bias: Array, activation: str) -> Array:
    """The exact head output for the head's actual input, evaluated in float64."""
    z, _ = pre_activation(h, kernel, bias)
    return oracle.ACTIVATIONS[activation](z)


def output_cotangent(z: Array, r: Array, activation: str) -> Array:
    """``g = dL/dz`` for ``L = sum R * f(z)``: ``R f'(z)``, or softmax's Jacobian product."""
    r64 = np.asarray(r, np.float64)
    if activation == "softmax":
        s = oracle.ACTIVATIONS["softmax"](z)
        return s * (r64 - np.sum(r64 * s, axis=-1, keepdims=True))
    return r64 * DERIVATIVES[activation](z)


def output_rule(d: int, dtype: str) -> str:
    """``"bound"`` or ``"prob-bound"``: the rule of a head output with ``d`` inputs."""
    return "prob-bound" if is_probabilistic(d + 3, unit_roundoff(dtype)) else "bound"


def gradient_rule(n: int, dtype: str) -> str:
    """``"bound"`` or ``"prob-bound"``: the rule of a head weight gradient over ``n`` positions."""
    return "prob-bound" if is_probabilistic(n + 2, unit_roundoff(dtype)) else "bound"


def head_gradient_reference(
    h: Array, r: Array, kernel: Array, bias: Array, activation: str
) -> dict[str, Array]:
    """Exact ``dL/dW`` (``(d, units)``) and ``dL/db`` for ``L = sum R * f(h W + b)``, in float64."""
    z, _ = pre_activation(h, kernel, bias)
    g = output_cotangent(z, r, activation)
    h64 = np.asarray(h, np.float64)
    d, units = h64.shape[-1], g.shape[-1]
    return {
        "head.kernel": h64.reshape(-1, d).T @ g.reshape(-1, units),
        "head.bias": g.reshape(-1, units).sum(axis=0),
    }


def head_gradient_bound(
    h: Array, r: Array, kernel: Array, bias: Array, activation: str, dtype: str,
    ftz: bool = False,
) -> dict[str, Array]:  # fmt: skip
    """Element-wise bounds on the head's weight gradients computed in ``dtype``.

    ``ftz``: the framework flushes subnormals to zero: the pre-activation carries
    :func:`flush_allowance`, every ``g`` may lose a subnormal value, a subnormal ``h`` its
    whole products, and each of the ``2 n + 2`` products and additions of the sums less than
    the smallest normal.
    """
    u = unit_roundoff(dtype)
    d = np.asarray(kernel).shape[0]
    z, s = pre_activation(h, kernel, bias)
    ez = error_factor(d + 3, u) * s + (d + 3) * eta(dtype)
    if ftz:
        ez = ez + flush_allowance(h, kernel, bias, dtype)
    g = output_cotangent(z, r, activation)
    r64 = np.abs(np.asarray(r, np.float64))
    k = ACTIVATION_ULPS.get(activation, _DEFAULT_ACTIVATION_ULPS)
    if activation == "softmax":
        spread = np.expm1(2.0 * ez.max(axis=-1, keepdims=True))
        dg = 4.0 * spread * oracle.ACTIVATIONS["softmax"](z) * r64.max(axis=-1, keepdims=True)
    elif activation == "linear":
        dg = np.zeros_like(z)
    else:
        dg = r64 * _secant(DERIVATIVES[activation], z, ez)
    # R rounded to the dtype, f' evaluated in it (with what that evaluation may cancel)
    cancel = _CANCELLING_D.get(activation)
    dg = dg + (k + 1) * u * (np.abs(g) + (r64 * cancel(z) if cancel is not None else 0.0))
    if ftz:
        dg = dg + smallest_normal(dtype)
    h64 = np.abs(np.asarray(h, np.float64))
    hd = h64.reshape(-1, d)
    units = g.shape[-1]
    abs_g, dg2 = np.abs(g).reshape(-1, units), dg.reshape(-1, units)
    n = hd.shape[0]
    extra = (n + 2) * eta(dtype)
    if ftz:
        lost = subnormal_part(hd, dtype).T @ (abs_g + dg2)
        flushed = (2 * n + 2) * smallest_normal(dtype)
        return {
            "head.kernel": error_factor(n + 2, u) * (hd.T @ (abs_g + dg2)) + hd.T @ dg2
            + lost + flushed,
            "head.bias": error_factor(n + 2, u) * (abs_g + dg2).sum(axis=0) + dg2.sum(axis=0)
            + flushed,
        }  # fmt: skip
    return {
        # The sum of n products of g_hat = g + dg: its rounding, plus dg carried through.
        "head.kernel": error_factor(n + 2, u) * (hd.T @ (abs_g + dg2)) + hd.T @ dg2 + extra,
        "head.bias": error_factor(n + 2, u) * (abs_g + dg2).sum(axis=0) + dg2.sum(axis=0) + extra,
    }


#: lambda of the ``scaled`` rule (the same confidence as :data:`PROB_LAMBDA`).
SCALED_LAMBDA = 7.0


def scaled_allowance(
    reference: Array, n: int, dtype: str, atol: float, rtol: float, lam: float = SCALED_LAMBDA
) -> Array:
    """The ``scaled`` rule for gradients that run back through the trunk (no derived bound).

    ``atol + rtol |b| + lam u sqrt(n) rms(b)``: the rounding of a sum of ``n`` terms of random
    sign grows like ``u sqrt(n)`` times the size of the partial sums (the probabilistic model
    of Higham and Mary), and tdcheck cannot see the terms of the trunk's backward pass, so the
    reference array's root mean square stands in for their size. An empirical rule, not a
    bound: measured ``|a - b| / (u sqrt(n) rms(b))`` was 0.58 to 1.13 for float32 trunk
    gradients (docs/checks.md), so ``lam = 7`` leaves a margin of about 6.

    >>> got = scaled_allowance(np.array([3.0, -4.0]), 4, "float32", 0.0, 0.0)
    >>> bool(got[0] == 7 * 2.0**-24 * 2 * 12.5**0.5 == got[1])
    True
    """
    b = np.asarray(reference, np.float64)
    finite = b[np.isfinite(b)]
    rms = float(np.sqrt(np.mean(finite * finite))) if finite.size else 0.0
    return atol + rtol * np.abs(b) + lam * unit_roundoff(dtype) * math.sqrt(n) * rms


#: Keras's Adam epsilon and betas (``keras.optimizers.Adam`` defaults).
ADAM_EPSILON = 1e-7
ADAM_BETAS = (0.9, 0.999)


def trained_weight_allowance(
    initial: Array, gradients: Array, *, optimizer: str, learning_rate: float, positions: int,
    dtype: str, atol: float = 0.0, rtol: float | None = None, epsilon: float = ADAM_EPSILON,
    ftz: bool = False,
) -> Array:  # fmt: skip
    """One side's allowance for a weight after ``len(gradients)`` optimizer steps.

    Derived from the gradient allowance: at step ``t`` the gradient ``g_t`` (``gradients[t]``,
    the reference's) may be off by ``dg_t`` = the ``scaled`` rule of ``g_t``
    (:func:`scaled_allowance`: ``atol + rtol |g_t| + lam u sqrt(n) rms(g_t)``, ``n`` the
    positions summed; by default ``atol = 0``, ``rtol = 2 u``: an absolute tolerance would
    swamp small gradients; ``ftz``: plus ``(2 n + 2) tiny`` for flushed subnormals), and every
    update ``w - step`` rounds (``u (|w_t| + |step|)``):

    * SGD, ``step = lr g``: ``lr dg_t``.
    * Adam, ``step = alpha_t m / (sqrt(v) + eps)``: the moments ``m``, ``v`` are followed
      in exact arithmetic from the gradients, with how far the computed ones may be (the
      gradient's allowance carried, plus each step's rounding and underflow); the step's
      allowance is the distance from its exact value to the extremes of
      ``alpha (|m| +- em) / (sqrt(v -+ ev) + eps)``. Where ``v`` is accurate the step is
      capped by ``alpha (1 - b1) sqrt(t) / sqrt(1 - b2)`` (about ``lr``); where ``m``'s sign is
      not determined (``|g|`` not above its allowance) the step may go either way; where
      ``v`` underflows (float16: ``(1 - b2) g^2`` below its subnormals) the step is
      ``m / eps`` and nothing caps it: the weights are not determined there, and the
      allowance says so.

    Summed over the steps. A weight difference also changes the next gradients (the loss's
    curvature); over the few steps of ``--train-steps`` at small learning rates that is of
    second order, which a factor 2 covers (measured: benchmarks/verdict_grid.py).

    >>> g = np.array([[1e-9, 1.0]])  # one step: a tiny and a normal gradient
    >>> a = trained_weight_allowance(np.zeros(2), g, optimizer="adam", learning_rate=0.01,
    ...                              positions=4, dtype="float32")
    >>> bool(a[0] > 0.1 * 0.01), bool(a[1] < 1e-6)  # undetermined step; a determined one
    (True, True)
    """
    return _training_walk(initial, gradients, optimizer=optimizer, learning_rate=learning_rate,
                          positions=positions, dtype=dtype, atol=atol, rtol=rtol,
                          epsilon=epsilon, ftz=ftz)[0]  # fmt: skip


def undetermined_steps(
    initial: Array, gradients: Array, *, optimizer: str, learning_rate: float, positions: int,
    dtype: str, atol: float = 0.0, rtol: float | None = None, epsilon: float = ADAM_EPSILON,
    ftz: bool = False,
) -> tuple[int | None, int]:  # fmt: skip
    """``(first step, weights)``: the first step (1-based) at which an Adam step is not
    determined by the computation, and how many weights it leaves so; ``(None, 0)`` when
    every step is.

    A step is not determined where Adam's second moment ``v`` is not computed accurately
    (float16 keeps it in float16, where ``(1 - b2) g^2`` underflows for ``|g|`` below about
    5e-3) and the step that follows may exceed Adam's own largest step: ``v`` rounds to 0 or
    to a subnormal, and the step is ``m / eps`` or ``m / sqrt(v)``, thousands of times apart.
    Which one a run takes is decided by rounding, and every later step's gradients depend on
    it: the trained weights are then no property of the model (the arguments are those of
    :func:`trained_weight_allowance`).

    >>> g = np.array([[1e-3, 0.5]])  # float16: v of the first underflows
    >>> undetermined_steps(np.zeros(2), g, optimizer="adam", learning_rate=0.01, positions=8,
    ...                    dtype="float16")
    (1, 1)
    >>> undetermined_steps(np.zeros(2), g, optimizer="adam", learning_rate=0.01, positions=8,
    ...                    dtype="float32")
    (None, 0)
    """
    return _training_walk(initial, gradients, optimizer=optimizer, learning_rate=learning_rate,
                          positions=positions, dtype=dtype, atol=atol, rtol=rtol,
                          epsilon=epsilon, ftz=ftz)[1]  # fmt: skip


def _training_walk(
    initial: Array, gradients: Array, *, optimizer: str, learning_rate: float, positions: int,
    dtype: str, atol: float, rtol: float | None, epsilon: float, ftz: bool,
) -> tuple[Array, tuple[int | None, int]]:  # fmt: skip
    """:func:`trained_weight_allowance` and :func:`undetermined_steps` in one walk."""
    first: int | None = None
    count = 0
    u = unit_roundoff(dtype)
    rtol = 2.0 * u if rtol is None else rtol
    w = np.abs(np.asarray(initial, np.float64))
    total = np.zeros_like(w)
    low = eta(dtype) if not ftz else smallest_normal(dtype)  # what one underflow loses
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    em = np.zeros_like(w)
    ev_round = np.zeros_like(w)
    ev_grad = np.zeros_like(w)
    b1, b2 = ADAM_BETAS
    eps_low = max(epsilon - 2.0 * low, epsilon / 4.0)  # epsilon itself rounded (float16)
    for t, g in enumerate(np.asarray(gradients, np.float64), start=1):
        dg = scaled_allowance(g, positions, dtype, atol, rtol)
        if ftz:
            dg = dg + (2 * positions + 2) * smallest_normal(dtype)
        if optimizer == "adam":
            # The moments in exact arithmetic from the reference's gradients, and how far the
            # computed ones may be: the gradient's allowance carried, plus each step's
            # rounding (relative u, absolute: an underflow) of ~4 operations.
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            em = b1 * em + (1 - b1) * dg + 4 * (low + u * np.abs(m))
            ev_grad = b2 * ev_grad + (1 - b2) * (2 * np.abs(g) * dg + dg * dg)
            ev_round = b2 * ev_round + 4 * (low + u * v)
            ev = ev_grad + ev_round
            alpha = learning_rate * math.sqrt(1 - b2**t) / (1 - b1**t)
            am = np.abs(m)
            step = alpha * am / (np.sqrt(v) + epsilon)
            with np.errstate(divide="ignore"):
                high = alpha * (am + em) / (np.sqrt(np.maximum(v - ev, 0.0)) + eps_low)
            # Where v is computed accurately, Adam's step is at most
            # alpha (1 - b1) sqrt(t) / sqrt(1 - b2) (Cauchy-Schwarz over the moments), however
            # the gradients moved; where v underflows (float16) nothing caps it: m / eps.
            cap = alpha * (1 - b1) * math.sqrt(t) / math.sqrt(1 - b2) * (1 + 8 * u)
            accurate = v > 2.0 * ev_round
            loose = int(np.count_nonzero(~accurate & (high > cap)))
            if loose and first is None:
                first, count = t, loose
            high = np.where(accurate, np.minimum(high, cap), high)
            lowest = alpha * np.maximum(am - em, 0.0) / (np.sqrt(v + ev) + epsilon)
            # m's sign not determined: the step may go either way
            moved = np.where(am <= em, step + high, np.maximum(high - step, step - lowest))
            moved = moved + 4 * u * step
        else:
            step = learning_rate * np.abs(g)
            moved = learning_rate * dg
        total = total + moved + u * (w + step)
        w = w + step
    return 2.0 * total, (first, count)


def trained_output_allowance(
    initial: Array, trained: Array, weight_ratio: float, dtype: str, atol: float, rtol: float
) -> Array:
    """One side's allowance for the outputs after training.

    The dtype's tolerance of a forward pass (``atol + rtol |y|``), plus what the weights'
    allowance carries: the outputs moved by ``y_T - y_0`` while the weights moved by
    ``w_T - w_0``; a weight error ``weight_ratio`` times that movement (the norm of
    :func:`trained_weight_allowance` over the norm of the movement, all weights together) moves
    the outputs by about as large a fraction of theirs (first order), counted element-wise
    and at the root mean square (a weight error is not along the movement)::

        atol + rtol |y_T| + weight_ratio (|y_T - y_0| + rms(y_T - y_0))
    """
    y0 = np.asarray(initial, np.float64)
    yt = np.asarray(trained, np.float64)
    moved = np.abs(yt - y0)
    finite = moved[np.isfinite(moved)]
    rms = float(np.sqrt(np.mean(finite * finite))) if finite.size else 0.0
    return atol + rtol * np.abs(yt) + weight_ratio * (moved + rms)
