"""Gradients of one scalar loss per variant: from Keras (autodiff) and from the oracle.

The loss is a fixed random projection of the head's output over the valid positions::

    L = sum_{b,t,u} valid[b, t] * R[b, t, u] * y[b, t, u],   R ~ N(0, 1) from --seed

so ``dL/dθ = Rᵀ J`` is a vector-Jacobian product: every output element counts, each with its
own weight, and no target data is involved. Its gradients are taken with respect to the input,
the trunk's weights and the head's weights (the head kernel reshaped to ``(d, units)``).

The oracle differentiates its float64 forward pass by fourth-order central finite differences,
``(8[f(x+h) - f(x-h)] - [f(x+2h) - f(x-2h)]) / 12h`` with ``h = 1e-3·max(1, |x|)``, whose own
error is about 1e-11 for smooth activations; near a kink (relu, elu and selu at 0) it is not a
derivative and may disagree. Only the input gradient is computed, and only up to
:data:`MAX_FD_ELEMENTS` input elements (4 forward passes per element, batched).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdcheck.core import oracle
from tdcheck.engines.keras_model import TRUNK_WEIGHTS

LOSS = "L = sum(valid * R * y), R ~ N(0, 1) from --seed (a vector-Jacobian product)"
MAX_FD_ELEMENTS = 4096
_FD_ROW_BUDGET = 32 * 1024**2  # float64 numbers per oracle batch


def cotangent(shape: tuple[int, ...], seed: int, valid: np.ndarray) -> np.ndarray:
    """``R``: standard normal from ``seed``, zero at padded positions."""
    r = np.random.default_rng([seed, 0x6772]).standard_normal(shape)
    return r * valid[..., None]


def keras_gradients(
    tf: Any, built: Any, x: np.ndarray, r: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Per variant: ``{"input", "trunk.kernel", ..., "head.kernel", "head.bias"}`` gradients."""
    xt = tf.constant(x)
    trunk_vars = list(built.trunk.trainable_weights) if built.trunk is not None else []
    variants = list(built.heads)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        outputs = built(xt)
        losses = {}
        for variant, out in zip(variants, outputs, strict=True):
            dtype = tf.float64 if out.dtype == tf.float64 else tf.float32
            losses[variant] = tf.reduce_sum(tf.cast(out, dtype) * tf.constant(r, dtype))
    result: dict[str, dict[str, np.ndarray]] = {}
    for variant in variants:
        head = built.heads[variant]
        head_vars = list(head.trainable_weights)
        grads = tape.gradient(losses[variant], [xt, *trunk_vars, *head_vars])
        named = {"input": np.asarray(grads[0])}
        if trunk_vars:
            for name, grad in zip(TRUNK_WEIGHTS, grads[1 : 1 + len(trunk_vars)], strict=True):
                named[f"trunk.{name}"] = np.asarray(grad)
        kernel, bias = (np.asarray(g) for g in grads[1 + len(trunk_vars) :])
        named["head.kernel"] = kernel.reshape(-1, bias.shape[-1])
        named["head.bias"] = bias
        result[variant] = named
    del tape
    return result


def oracle_input_gradient(
    x: np.ndarray,
    r: np.ndarray,
    *,
    rnn: str,
    trunk_weights: Any,
    kernel: np.ndarray,
    bias: np.ndarray,
    activation: str,
    mask: np.ndarray | None,
) -> np.ndarray | None:
    """``dL/dx`` of the float64 oracle by finite differences, or None when too large."""
    x64 = np.asarray(x, np.float64)
    if x64.size > MAX_FD_ELEMENTS:
        return None
    batch, seq, features = x64.shape
    per_row = seq * max(features, kernel.shape[0], kernel.shape[1]) * 8
    chunk = max(4, _FD_ROW_BUDGET // per_row // 4 * 4)
    steps = np.array([1.0, -1.0, 2.0, -2.0])
    weights = np.array([8.0, -8.0, -1.0, 1.0]) / 12.0
    grad = np.zeros_like(x64)
    for b in range(batch):
        n = seq * features
        rows = np.repeat(x64[b][None], 4 * n, axis=0)  # (4n, seq, features)
        h = 1e-3 * np.maximum(1.0, np.abs(x64[b].reshape(-1)))  # (n,)
        flat = rows.reshape(4 * n, -1)
        idx = np.arange(n)
        for k in range(4):
            flat[k * n + idx, idx] += steps[k] * h
        row_mask = None if mask is None else np.repeat(mask[b][None], 4 * n, axis=0)
        losses = np.empty(4 * n)
        for start in range(0, 4 * n, chunk):
            stop = min(start + chunk, 4 * n)
            out = oracle.forward(
                rows[start:stop], rnn, trunk_weights, kernel, bias, activation,
                mask=None if row_mask is None else row_mask[start:stop],
            )  # fmt: skip
            losses[start:stop] = np.einsum("ntu,tu->n", out, r[b])
        grad[b] = (weights @ losses.reshape(4, n) / h).reshape(seq, features)
    if mask is not None:
        # Masking multiplies masked timesteps by 0: their derivative is exactly 0, where
        # finite differences would only show round-off noise.
        grad *= mask[..., None]
    return grad
