"""The NumPy oracle checked against Keras, trunk by trunk and activation by activation."""

from __future__ import annotations

import numpy as np
import pytest

from tdcheck.core import oracle
from tdcheck.core.config import ACTIVATIONS

TRUNKS = {"lstm": "LSTM", "gru": "GRU", "simple-rnn": "SimpleRNN"}


@pytest.mark.parametrize("rnn", list(TRUNKS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_trunk_matches_keras(tf_keras, rnn, dtype):
    _, keras = tf_keras
    keras.utils.set_random_seed(11)
    layer = getattr(keras.layers, TRUNKS[rnn])(7, return_sequences=True, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((3, 6, 4))
    expected = np.asarray(layer(x.astype(dtype)))
    # Random non-zero biases, so the bias layout (GRU has two rows) is exercised too.
    kernel, recurrent, bias = layer.get_weights()
    bias = np.random.default_rng(2).standard_normal(bias.shape).astype(dtype)
    layer.set_weights([kernel, recurrent, bias])
    expected = np.asarray(layer(x.astype(dtype)))
    got = oracle.TRUNKS[rnn](x.astype(dtype), kernel, recurrent, bias)
    assert got.shape == (3, 6, 7)
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(got, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_head_activation_matches_keras(tf_keras, activation):
    _, keras = tf_keras
    x = np.random.default_rng(4).standard_normal((2, 5, 3)) * 2
    w = np.random.default_rng(5).standard_normal((3, 4))
    b = np.random.default_rng(6).standard_normal(4)
    layer = keras.layers.Dense(4, activation=activation, dtype="float64")
    layer.build((None, None, 3))
    layer.set_weights([w, b])
    # TensorFlow's float64 erf (behind exact gelu) is accurate to ~5e-9 only; the oracle
    # uses math.erf. Everything else agrees to float64 round-off.
    tol = 1e-8 if activation == "gelu" else 1e-12
    np.testing.assert_allclose(
        oracle.dense_head(x, w, b, activation), np.asarray(layer(x)), atol=tol, rtol=tol
    )


def test_dense_head_by_hand():
    x = np.array([[[1.0, 2.0]]])
    w = np.array([[1.0, -1.0], [0.5, 2.0]])
    b = np.array([0.25, 0.0])
    # [1*1 + 2*0.5 + 0.25, 1*-1 + 2*2 + 0] = [2.25, 3.0]
    assert oracle.dense_head(x, w, b, "linear").tolist() == [[[2.25, 3.0]]]
    assert oracle.dense_head(-x, w, b, "relu").tolist() == [[[0.0, 0.0]]]


def test_simple_rnn_by_hand():
    x = np.array([[[1.0], [0.0]]])
    k, r, b = np.array([[0.5]]), np.array([[2.0]]), np.array([0.0])
    out = oracle.simple_rnn(x, k, r, b)
    h1 = np.tanh(0.5)
    assert out[0, :, 0].tolist() == [h1, np.tanh(2.0 * h1)]


def test_sigmoid_is_stable_for_large_inputs():
    with np.errstate(over="raise"):
        values = oracle.ACTIVATIONS["sigmoid"](np.array([-1000.0, 0.0, 1000.0]))
    assert values.tolist() == [0.0, 0.5, 1.0]


def test_forward_without_trunk_is_the_head():
    x = np.ones((1, 2, 3))
    w = np.full((3, 2), 0.1)
    got = oracle.forward(x, "none", None, w, np.zeros(2), "linear")
    np.testing.assert_allclose(got, np.full((1, 2, 2), 0.3))
