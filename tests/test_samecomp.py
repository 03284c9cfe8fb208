"""core/samecomp.py (same computation in float64) by hand, and in real runs."""

from __future__ import annotations

import numpy as np
import pytest

from tdcheck.core import bounds, faults, samecomp

H = np.array([[[1.0, 2.0], [0.5, -1.0]]])
W = np.array([[0.5, -0.25], [0.25, 1.0]])
B = np.array([0.125, 0.0])


def test_identical_heads_agree_bitwise_with_margin_zero():
    r = samecomp.same_computation(H, (W, B, "tanh"), (W.copy(), B.copy(), "tanh"))
    assert r.passed and r.margin == 0.0 and r.certified == 0
    assert np.array_equal(r.y_a, r.y_b) and r.weights_differ is None
    # y = tanh(h W + b): [1, 2] -> [1.125, 1.75]; [0.5, -1] -> [0.125, -1.125]
    assert np.allclose(r.y_a, np.tanh([[[1.125, 1.75], [0.125, -1.125]]]), rtol=0, atol=1e-16)
    assert r.allowed.shape == (1, 2, 2) and float(r.allowed.max()) < 1e-14


def test_one_ulp_of_a_float64_weight_is_a_different_computation():
    w2 = W.copy()
    w2[1, 1] = np.nextafter(1.0, 2.0)  # 1 + 2^-52
    r = samecomp.same_computation(H, (w2, B, "linear"), (W, B, "linear"))
    # dz = h[:, 1] * 2^-52 = 2 * 2^-52 and -1 * 2^-52 in column 1: both certified nonzero
    assert not r.passed and r.certified == 2
    assert r.weights_differ == "kernel 1 of 4 elements"
    assert r.note() == (
        "stored weights differ: kernel 1 of 4 elements; h dW + db is nonzero in exact "
        f"arithmetic at 2 element(s) (up to {r.certified_ratio:.3g}x its float64 rounding bound)"
    )
    # float64's own rounding of the outputs could hide it: the certificate does not
    assert r.certified_ratio > 1e14


def test_relu_hides_a_change_where_both_sides_are_negative():
    h = np.array([[[1.0, 1.0]]])
    w = np.array([[-1.0], [-1.0]])
    w2 = np.array([[-1.0], [np.nextafter(-1.0, -2.0)]])
    r = samecomp.same_computation(h, (w2, np.zeros(1), "relu"), (w, np.zeros(1), "relu"))
    assert r.passed and r.certified == 0 and r.weights_differ == "kernel 1 of 2 elements"
    lin = samecomp.same_computation(h, (w2, np.zeros(1), "linear"), (w, np.zeros(1), "linear"))
    assert not lin.passed and lin.certified == 1


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "mixed_float16"])
def test_every_listed_fault_is_a_different_computation_in_every_dtype(dtype):
    rng = np.random.default_rng(3)
    h = faults.round_to(rng.standard_normal((2, 5, 6)), dtype)
    w = faults.round_to(rng.standard_normal((6, 6)) * 0.4, dtype)
    b = faults.round_to(rng.standard_normal(6) * 0.5, dtype)
    healthy = (w, b, "linear")
    found = {}
    for fault in faults.faults(w, b, "linear", dtype):
        head = (fault.kernel, fault.bias, fault.activation)
        if samecomp.weight_difference(head, healthy) is None:
            # float64's kernel x (1 + u) rounds back to the kernel: no fault at all
            assert (dtype, fault.name) == ("float64", "kernel x (1+1u)")
            assert samecomp.same_computation(h, head, healthy).passed
            continue
        r = samecomp.same_computation(h, head, healthy)
        found[fault.name] = (not r.passed, r.margin)
    assert len(found) >= 9 and all(hit for hit, _ in found.values()), found
    assert found["1-ULP kernel element"][1] > 1e6
    assert samecomp.same_computation(h, healthy, healthy).passed


def test_different_activation_fails_on_the_outputs():
    r = samecomp.same_computation(H, (W, B, "tanh"), (W, B, "linear"))
    assert not r.passed and r.certified == 0 and r.weights_differ == "activation tanh vs linear"
    expected = np.abs(np.tanh(H @ W + B) - (H @ W + B))
    assert r.margin == pytest.approx(float(np.max(expected / r.allowed)))


def test_stats_names_the_rule_and_the_reason():
    w2 = W * 1.01
    s = samecomp.stats(samecomp.same_computation(H, (w2, B, "linear"), (W, B, "linear")))
    # h W = [[1, 1.75], [0, -1.125]]: the 0 stays 0 when W is scaled (b[1] = 0)
    assert s.rule == "float64" and not s.passed and s.mismatched == 3
    assert s.note.startswith("different computations: stored weights differ: kernel 4 of 4 ")
    same = samecomp.stats(samecomp.same_computation(H, (W, B, "linear"), (W, B, "linear")))
    assert same.passed and same.bitwise_equal and same.note is None


def test_fault_judge_statistical_uses_the_reference_weights():
    rng = np.random.default_rng(0)
    h = faults.round_to(np.tanh(rng.standard_normal((8, 32, 64))), "float16")
    w = faults.round_to(rng.uniform(-0.3, 0.3, (64, 16)), "float16")
    b = faults.round_to(rng.standard_normal(16) * 0.5, "float16")
    judge = samecomp.FaultJudge(h, (w, b, "linear"), "float16")
    assert judge.statistical((w, b, "linear")) == (False, pytest.approx(0.0, abs=0.2))
    hit, margin = judge.statistical((faults.round_to(w * 1.01, "float16"), b, "linear"))
    assert hit and margin > 1
    # the bound of the reference weights: a kernel x 1.01 stays inside it at 64 inputs
    y = faults.round_to(bounds.head_output_reference(h, w * 1.01, b, "linear"), "float16")
    exact = bounds.head_output_reference(h, w, b, "linear")
    allowed = bounds.head_output_bound(h, w, b, "linear", "float16")
    assert np.all(np.abs(y - exact) <= allowed)
    assert judge.float64((w, b, "linear")) == (False, 0.0)
