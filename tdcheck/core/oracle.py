"""An independent float64 NumPy implementation of the trunk and the dense head.

Written from the equations of the Keras 3 layers, not by calling Keras:

* LSTM (gates ordered i, f, c, o in the kernel's columns)::

    z = x_t K + h_{t-1} R + b;  i, f, g, o = split(z, 4)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);  h_t = sigmoid(o) tanh(c_t)

* GRU with ``reset_after=True`` (Keras 3's default; gates z, r, h; bias has two rows,
  input and recurrent)::

    xz, xr, xh = split(x_t K + b_0, 3);  rz, rr, rh = split(h_{t-1} R + b_1, 3)
    z = sigmoid(xz + rz);  r = sigmoid(xr + rr);  hh = tanh(xh + r rh)
    h_t = z h_{t-1} + (1 - z) hh

* SimpleRNN: ``h_t = tanh(x_t K + h_{t-1} R + b)``

* Head: ``activation(h W + b)`` on every timestep.

All states start at zero. Every weight is cast to float64 first, so the oracle
is the float64 answer for the model's own (rounded) weights.

Masks follow Keras: a ``Masking`` layer multiplies the input by the mask; at a
masked timestep a trunk keeps its states and repeats its previous output
(``zero_output_for_mask=False``, the default), and the head reads that output.

>>> import numpy as np
>>> x = np.ones((1, 2, 3)); w = np.full((3, 2), 0.5); b = np.zeros(2)
>>> dense_head(x, w, b, "linear")[0, 0].tolist()
[1.5, 1.5]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray


def _sigmoid(x: Array) -> Array:
    # Stable for large |x|: exp of a non-positive number only.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(x: Array) -> Array:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf, otypes=[np.float64])

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softmax": _softmax,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "swish": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "exponential": np.exp,
}


def dense_head(x: Array, kernel: Array, bias: Array, activation: str) -> Array:
    """``activation(x @ kernel + bias)`` in float64 on a ``(batch, seq, d)`` input."""
    x64 = np.asarray(x, np.float64)
    z = np.einsum("btd,du->btu", x64, np.asarray(kernel, np.float64)) + np.asarray(bias, np.float64)
    return ACTIVATIONS[activation](z)


def lstm(
    x: Array, kernel: Array, recurrent: Array, bias: Array, mask: Array | None = None
) -> Array:
    """Keras 3 LSTM, ``return_sequences=True``, float64."""
    x64, k, r, b = (np.asarray(a, np.float64) for a in (x, kernel, recurrent, bias))
    batch, seq, _ = x64.shape
    units = r.shape[0]
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    out = np.empty((batch, seq, units))
    xk = x64 @ k + b
    for t in range(seq):
        z = xk[:, t] + h @ r
        i, f, g, o = (z[:, n * units : (n + 1) * units] for n in range(4))
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new = _sigmoid(o) * np.tanh(c_new)
        h, c = _keep(mask, t, h_new, h), _keep(mask, t, c_new, c)
        out[:, t] = h
    return out


def gru(x: Array, kernel: Array, recurrent: Array, bias: Array, mask: Array | None = None) -> Array:
    """Keras 3 GRU (``reset_after=True``), ``return_sequences=True``, float64."""
    x64, k, r, b = (np.asarray(a, np.float64) for a in (x, kernel, recurrent, bias))
    batch, seq, _ = x64.shape
    units = r.shape[0]
    b_in, b_rec = (b[0], b[1]) if b.ndim == 2 else (b, np.zeros_like(b))
    h = np.zeros((batch, units))
    out = np.empty((batch, seq, units))
    xk = x64 @ k + b_in
    for t in range(seq):
        inner = h @ r + b_rec
        xz, xr, xh = (xk[:, t, n * units : (n + 1) * units] for n in range(3))
        rz, rr, rh = (inner[:, n * units : (n + 1) * units] for n in range(3))
        z = _sigmoid(xz + rz)
        reset = _sigmoid(xr + rr)
        hh = np.tanh(xh + reset * rh)
        h = _keep(mask, t, z * h + (1.0 - z) * hh, h)
        out[:, t] = h
    return out


def simple_rnn(
    x: Array, kernel: Array, recurrent: Array, bias: Array, mask: Array | None = None
) -> Array:
    """Keras 3 SimpleRNN (tanh), ``return_sequences=True``, float64."""
    x64, k, r, b = (np.asarray(a, np.float64) for a in (x, kernel, recurrent, bias))
    batch, seq, _ = x64.shape
    h = np.zeros((batch, r.shape[0]))
    out = np.empty((batch, seq, r.shape[0]))
    xk = x64 @ k + b
    for t in range(seq):
        h = _keep(mask, t, np.tanh(xk[:, t] + h @ r), h)
        out[:, t] = h
    return out


def _keep(mask: Array | None, t: int, new: Array, old: Array) -> Array:
    """The new state where timestep ``t`` is unmasked, else the old one."""
    if mask is None:
        return new
    return np.where(mask[:, t, None], new, old)


def keras_mask(x: Array) -> Array:
    """What ``Masking(mask_value=0.0)`` computes: a timestep is kept if any feature is non-zero."""
    return np.any(np.asarray(x) != 0, axis=-1)


TRUNKS: dict[str, Callable[..., Array]] = {
    "lstm": lstm,
    "gru": gru,
    "simple-rnn": simple_rnn,
}


def features(
    x: Array,
    rnn: str,
    trunk_weights: tuple[Array, Array, Array] | None,
    mask: Array | None = None,
) -> Array:
    """What the heads read, in float64: (masking,) then the trunk (or the input itself)."""
    x64 = np.asarray(x, np.float64)
    if mask is not None:
        x64 = x64 * mask[..., None]  # what Masking passes on
    if rnn == "none":
        return x64
    assert trunk_weights is not None
    return TRUNKS[rnn](x64, *trunk_weights, mask=mask)


def forward(
    x: Array,
    rnn: str,
    trunk_weights: tuple[Array, Array, Array] | None,
    head_kernel: Array,
    head_bias: Array,
    activation: str,
    mask: Array | None = None,
) -> Array:
    """The whole model in float64: (masking,) trunk (or none), then the dense head."""
    return dense_head(features(x, rnn, trunk_weights, mask), head_kernel, head_bias, activation)
