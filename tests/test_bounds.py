"""core/bounds.py against hand-computed arrays, and the bound holding for real roundings."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from tdcheck.core import bounds
from tdcheck.core.tolerances import overflow_threshold, unit_roundoff

U32 = 2.0**-24


def test_gamma_by_hand():
    assert bounds.gamma(1, 0.5**10) == (2.0**-10) / (1 - 2.0**-10)
    assert bounds.gamma(4, U32) == 4 * U32 / (1 - 4 * U32)
    assert bounds.gamma(256, 2.0**-8) == math.inf  # n u >= 1: no bound
    assert bounds.gamma(0, U32) == 0.0


def test_probabilistic_gamma_only_where_no_useful_worst_case_exists():
    u16 = 2.0**-11
    assert not bounds.is_probabilistic(1024, u16)  # n u = 1/2
    assert bounds.error_factor(1024, u16) == bounds.gamma(1024, u16) == 1.0
    assert bounds.is_probabilistic(3202, u16)
    expected = math.expm1(7.0 * math.sqrt(3202) * u16 + 3202 * u16 * u16 / (1 - u16))
    assert bounds.error_factor(3202, u16) == expected
    assert 0.19 < expected < 0.22
    assert bounds.gradient_rule(3200, "float16") == "prob-bound"
    assert bounds.gradient_rule(3200, "float32") == "bound"
    assert bounds.output_rule(256, "bfloat16") == "prob-bound"


def test_linear_output_bound_by_hand():
    # d = 2: z = 1*2 + (-3)*0.5 + 0.25 = 0.75; |h||W| + |b| = 2 + 1.5 + 0.25 = 3.75
    h = np.array([[[1.0, -3.0]]])
    w = np.array([[2.0], [0.5]])
    b = np.array([0.25])
    got = bounds.head_output_bound(h, w, b, "linear", "float32")
    expected = bounds.gamma(5, U32) * 3.75 + 5 * 2.0**-150
    assert got.shape == (1, 1, 1) and got[0, 0, 0] == pytest.approx(expected, rel=1e-15)
    ref = bounds.head_output_reference(h, w, b, "linear")
    assert ref[0, 0, 0] == 0.75


def test_relu_bound_is_the_secant():
    # z = -1e-9 (h=1, w=-1e-9): relu(z + e) - relu(z) = e - 1e-9 when e > 1e-9
    h, w, b = np.array([[[1.0]]]), np.array([[-1e-9]]), np.array([0.0])
    e = bounds.gamma(4, 2.0**-11) * 1e-9 + 4 * 2.0**-25
    got = bounds.head_output_bound(h, w, b, "relu", "float16")[0, 0, 0]
    assert got == pytest.approx(max(e - 1e-9, 0.0), abs=1e-20)


def test_tanh_bound_adds_its_own_ulps():
    h, w, b = np.array([[[0.5]]]), np.array([[1.0]]), np.array([0.0])
    e = bounds.gamma(4, U32) * 0.5 + 4 * 2.0**-150
    secant = max(abs(np.tanh(0.5 + e) - np.tanh(0.5)), abs(np.tanh(0.5 - e) - np.tanh(0.5)))
    expected = secant + 8 * U32 * np.tanh(0.5)
    assert bounds.head_output_bound(h, w, b, "tanh", "float32")[0, 0, 0] == pytest.approx(
        expected, rel=1e-12
    )


def test_gradient_reference_and_bound_by_hand():
    # n = 2 positions, d = 1, units = 1, linear: dW = sum h g = 1*3 + 2*(-1) = 1, db = 2
    h = np.array([[[1.0], [2.0]]])
    r = np.array([[[3.0], [-1.0]]])
    w, b = np.array([[0.5]]), np.array([0.0])
    ref = bounds.head_gradient_reference(h, r, w, b, "linear")
    assert ref["head.kernel"].tolist() == [[1.0]] and ref["head.bias"].tolist() == [2.0]
    got = bounds.head_gradient_bound(h, r, w, b, "linear", "float32")
    g4 = bounds.gamma(4, U32)
    # |g| = [3, 1], dg = u |g| (R rounded), |h|^T |g| = 5, |h|^T dg = 5u, sum |g| = 4
    extra = 4 * 2.0**-150
    assert got["head.kernel"][0, 0] == pytest.approx(g4 * (5 + 5 * U32) + 5 * U32 + extra)
    assert got["head.bias"][0] == pytest.approx(g4 * (4 + 4 * U32) + 4 * U32 + extra)


def test_softmax_gradient_reference_is_the_jacobian_product():
    rng = np.random.default_rng(0)
    h, r = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 3))
    w, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    ref = bounds.head_gradient_reference(h, r, w, b, "softmax")
    from tdcheck.core.oracle import dense_head

    def loss(bb):
        return float(np.sum(r * dense_head(h, w, bb, "softmax")))

    step = 1e-6
    fd = [(loss(b + step * e) - loss(b - step * e)) / (2 * step) for e in np.eye(3)]
    np.testing.assert_allclose(ref["head.bias"], fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "relu", "softmax", "gelu"])
def test_numpy_rounded_heads_stay_within_the_bound(dtype, activation):
    # A head evaluated in the low precision by NumPy (a different summation order than the
    # float64 reference) must be within the bound, element by element.
    rng = np.random.default_rng(1)
    np_dtype = np.dtype(dtype)
    h = rng.standard_normal((3, 7, 40)).astype(np_dtype)
    w = (rng.standard_normal((40, 5)) * 0.3).astype(np_dtype)
    b = rng.standard_normal(5).astype(np_dtype)
    z = np.zeros((3, 7, 5), np_dtype)
    for k in range(40):  # sequential sum, rounded at each step
        z = (z + h[..., k : k + 1] * w[k]).astype(np_dtype)
    z = (z + b).astype(np_dtype)
    from tdcheck.core.oracle import ACTIVATIONS

    y = ACTIVATIONS[activation](z.astype(np.float64)).astype(np_dtype)
    ref = bounds.head_output_reference(h, w, b, activation)
    bound = bounds.head_output_bound(h, w, b, activation, dtype)
    assert (np.abs(y.astype(np.float64) - ref) <= bound).all()
    # and it is not vacuous: worst-case gamma_43 is 2.6e-6 in float32, 0.021 in float16
    assert bound.max() < (1e-4 if dtype == "float32" else 1.0) * np.abs(ref).max()


def test_overflow_thresholds():
    assert overflow_threshold("float16") == 65520.0
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(65520.0)) and not np.isinf(np.float16(65519.99))
        assert np.isinf(np.float32(overflow_threshold("float32")))
    assert overflow_threshold("float64") == math.inf
    assert unit_roundoff("mixed_float16") == 2.0**-11


def test_bounds_and_faults_modules_never_import_tensorflow():
    code = (
        "import sys, tdcheck.core.bounds, tdcheck.core.faults; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scaled_allowance_by_hand():
    b = np.array([[3.0, -4.0], [0.0, np.inf]])  # rms over the finite values: sqrt(25/3)
    got = bounds.scaled_allowance(b, 100, "float16", 1e-3, 1e-2)
    term = 7 * 2.0**-11 * 10 * math.sqrt(25 / 3)
    assert got[0, 0] == pytest.approx(1e-3 + 3e-2 + term)
    assert got[0, 1] == pytest.approx(1e-3 + 4e-2 + term)
    assert got[1, 0] == pytest.approx(1e-3 + term)


@pytest.mark.parametrize(
    ("dtype", "device", "enabled", "expected"),
    [
        ("float32", "/job:localhost/replica:0/task:0/device:GPU:0", True, "tf32"),
        ("float32", "/job:localhost/replica:0/task:0/device:GPU:0", False, "float32"),
        ("float32", "/job:localhost/replica:0/task:0/device:CPU:0", True, "float32"),
        ("float16", "/job:localhost/replica:0/task:0/device:GPU:0", True, "float16"),
    ],
)
def test_tensorfloat32_on_a_gpu_widens_the_float32_bounds(dtype, device, enabled, expected):
    from types import SimpleNamespace

    from tdcheck.core.judge import bound_precision

    fake_engine = SimpleNamespace(tf32_setting=lambda: enabled)  # the engine's TF32 switch
    assert bound_precision(dtype, device, fake_engine.tf32_setting) == expected
    assert unit_roundoff("tf32") == 2.0**-11 and bounds.eta("tf32") == 2.0**-150
