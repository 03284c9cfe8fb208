"""Model building: trunk initial weights, layer rows, weight copies."""

from __future__ import annotations

import numpy as np
import pytest

import tdcheck
from tdcheck.core.config import CompareConfig
from tdcheck.engines.keras_model import trunk_initial_weights


@pytest.mark.parametrize(("rnn", "gates"), [("lstm", 4), ("gru", 3), ("simple-rnn", 1)])
def test_trunk_initial_weights_follow_keras_defaults(rnn, gates):
    cfg = CompareConfig(rnn=rnn, hidden=6, features=3).validated().resolve_sizes(None)
    kernel, recurrent = trunk_initial_weights(cfg)
    assert kernel.shape == (3, gates * 6) and recurrent.shape == (6, gates * 6)
    assert kernel.dtype == recurrent.dtype == np.float32
    limit = np.sqrt(6 / (3 + gates * 6))  # glorot uniform
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.5 * limit
    # orthogonal rows: R R^T = I
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(6), atol=1e-5)
    again, _ = trunk_initial_weights(cfg)
    np.testing.assert_array_equal(kernel, again)
    other, _ = trunk_initial_weights(CompareConfig(rnn=rnn, hidden=6, features=3, seed=1)
                                     .validated().resolve_sizes(None))  # fmt: skip
    assert not np.array_equal(kernel, other)


def test_same_seed_same_trunk_weights_in_every_dtype():
    w32 = tdcheck.compare(dtype="float32").arrays["weights/rnn/kernel"]
    w64 = tdcheck.compare(dtype="float64").arrays["weights/rnn/kernel"]
    w16 = tdcheck.compare(dtype="bfloat16").arrays["weights/rnn/kernel"]
    assert w64.dtype == np.float64
    np.testing.assert_array_equal(w64, w32.astype(np.float64))
    np.testing.assert_array_equal(w16.astype(np.float32), w32.astype(w16.dtype).astype(np.float32))


def test_lstm_bias_keeps_keras_unit_forget_bias():
    bias = tdcheck.compare().arrays["weights/rnn/bias"]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
