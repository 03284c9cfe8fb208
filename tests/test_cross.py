"""Issue 15 items 3-6: across backends, devices and baselines each side's allowance against
the float64 reference (core/judge/cross.py); flush-to-zero; TF32 with a simulated engine; training
allowances for SGD and Adam."""

from __future__ import annotations

import numpy as np
import pytest

from tdcheck.core import bounds, faults
from tdcheck.core.judge import cross

U32 = 2.0**-24


def _side(features, kernel, bias, env=None, r=None):
    arrays = {"features": features, "weights/dense/kernel": kernel, "weights/dense/bias": bias}
    if r is not None:
        arrays["gradients/R"] = r
    return cross.Side(arrays, env or {"device": "CPU:0", "tf32": None})


def test_side_precision_and_flush_to_zero():
    gpu = cross.Side({}, {"device": "GPU:0", "tf32": True, "flush_to_zero": {"float32": False}})
    assert gpu.precision("float32") == "tf32" and gpu.precision("float16") == "float16"
    assert gpu.ftz("float32") is False and gpu.ftz("tf32") is False
    cpu = cross.Side({}, {"device": "CPU:0", "tf32": True, "flush_to_zero": {"float32": True}})
    assert cpu.precision("float32") == "float32" and cpu.ftz("float32") is True
    old = cross.Side({}, {"device": "CPU:0"})  # an archive from before the probe
    assert old.ftz("float16") is True
    assert cross.side_tolerances(gpu, "float32") == (2.0**-9, 2.0**-9)
    assert cross.side_tolerances(cpu, "float32") == (1e-5, 1.3e-6)


def test_output_allowance_is_both_heads_bounds_plus_the_carried_trunk_difference():
    rng = np.random.default_rng(1)
    h_a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    h_b = (h_a.astype(np.float64) * (1 + 1e-6)).astype(np.float32)  # another trunk's rounding
    w, b = rng.standard_normal((4, 2)), rng.standard_normal(2)
    a, ref = _side(h_a, w, b), _side(h_b, w, b)
    got = cross.output_allowance(a, ref, "dense", dtype="float32", activation="tanh")
    expected = np.abs(
        bounds.head_output_reference(h_a, w, b, "tanh")
        - bounds.head_output_reference(h_b, w, b, "tanh")
    )
    for h in (h_a, h_b):
        expected = expected + bounds.head_output_bound(h, w, b, "tanh", "float32", ftz=False)
        expected = expected + bounds.head_output_bound(h, w, b, "tanh", "float64")
    a_noftz = cross.Side(a.arrays, {"device": "CPU:0", "flush_to_zero": {"float32": False}})
    b_noftz = cross.Side(ref.arrays, {"device": "CPU:0", "flush_to_zero": {"float32": False}})
    exact = cross.output_allowance(a_noftz, b_noftz, "dense", dtype="float32", activation="tanh")
    assert np.allclose(exact, expected, rtol=1e-12, atol=0)
    assert np.all(got >= exact)  # flushing (unknown: assumed) only adds
    # the weights come from the reference side: a's own copy is not read
    missing = cross.Side({"features": h_a}, {})
    assert (
        cross.output_allowance(missing, ref, "dense", dtype="float32", activation="tanh")
        is not None
    )
    assert cross.output_allowance(ref, missing, "dense", dtype="float32", activation="tanh") is None


def test_head_gradient_allowance_covers_two_summation_orders():
    # Two backends sum the 4096 products of dW = h^T g in different orders: the float32
    # results differ by far more than float32's atol/rtol, and less than the allowance.
    rng = np.random.default_rng(2)
    h = rng.standard_normal((32, 128, 96)).astype(np.float32)
    w = (rng.standard_normal((96, 8)) * 0.2).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    r = rng.standard_normal((32, 128, 8))
    g = r.astype(np.float32).reshape(-1, 8)  # linear: g = R
    hd = h.reshape(-1, 96)
    forward = hd.T @ g  # BLAS order
    backward = np.zeros((96, 8), np.float32)
    for i in range(0, 4096, 512):  # blocked, another order
        backward += hd[i : i + 512].T @ g[i : i + 512]
    side = _side(h, w, b, r=r)
    allowed = cross.head_gradient_allowance(
        side, side, "dense", "head.kernel", dtype="float32", activation="linear"
    )
    diff = np.abs(forward.astype(np.float64) - backward)
    assert np.any(diff > 1e-5 + 1.3e-6 * np.abs(backward))  # float32's atol/rtol: FAIL
    assert np.all(diff <= allowed)


def test_scaled_pair_allowance_adds_both_sides():
    expected = np.array([3.0, -4.0])
    side = cross.Side({}, {"device": "CPU:0"})
    one = bounds.scaled_allowance(expected, 16, "float32", 1e-5, 1.3e-6)
    assert np.allclose(cross.scaled_pair_allowance(side, side, expected, 16, dtype="float32"),
                       2 * one)  # fmt: skip


# -- training ----------------------------------------------------------------------------


def _adam(w0, grads, lr, scale_lr=1.0, eps=1e-7, b1=0.9, b2=0.999):
    """Keras's Adam in float64 NumPy: the trained weights after len(grads) steps."""
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * scale_lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - lr_t * m / (np.sqrt(v) + eps)
    return w


def _steps(seed=3, steps=3, shape=(64, 16)):
    rng = np.random.default_rng(seed)
    grads = rng.standard_normal((steps, *shape)) * 1e-2
    grads[:, :4, :] = rng.standard_normal((steps, 4, shape[1])) * 1e-9  # tiny gradients
    return rng.standard_normal(shape), grads


def test_adam_with_tiny_gradients_is_no_false_fail():
    # A gradient difference of 1e-10 on |g| ~ 1e-9 turns lr g / (|g| + eps) around: the
    # step's sign and size are not determined, and the allowance says so (up to lr a step).
    w0, grads = _steps()
    lr = 0.01
    other = grads.copy()
    other[:, :4, :] += 1e-10 * np.sign(np.random.default_rng(4).standard_normal(other[:, :4].shape))
    a, b = _adam(w0, grads, lr), _adam(w0, other, lr)
    side = bounds.trained_weight_allowance(
        w0, grads, optimizer="adam", learning_rate=lr, positions=4096, dtype="float32"
    )
    diff = np.abs(a - b)
    assert diff[:4].max() > 1e-6  # the tiny gradients moved the weights apart
    assert np.all(diff <= 2 * side)  # a pair: both sides' allowance
    assert side[:4].min() > 0.1 * lr  # undetermined: a sizable part of lr
    assert side[:4].min() > 10 * diff[:4].max()
    # determined elements (|g| well above its allowance) stay tight
    determined = np.all(np.abs(grads) > 100 * 7 * U32 * 64 * 1e-2, axis=0)
    determined[:4] = False
    assert determined.sum() > 500 and side[determined].max() < 0.1 * lr


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_real_training_fault_still_fails(optimizer):
    # One copy trains with a learning rate 1 % off: a real fault, far outside the allowance.
    w0, grads = _steps(seed=5)
    lr = 0.01
    if optimizer == "adam":
        a, b = _adam(w0, grads, lr), _adam(w0, grads, lr, scale_lr=1.01)
    else:
        a, b = w0 - lr * grads.sum(axis=0), w0 - 1.01 * lr * grads.sum(axis=0)
    side = bounds.trained_weight_allowance(
        w0, grads, optimizer=optimizer, learning_rate=lr, positions=4096, dtype="float32"
    )
    margin = np.max(np.abs(a - b)[4:] / (2 * side[4:]))
    assert margin > 10


def test_sgd_allowance_by_hand():
    g = np.array([[1.0, -2.0]])
    got = bounds.trained_weight_allowance(
        np.array([0.5, 1.0]), g, optimizer="sgd", learning_rate=0.1, positions=4,
        dtype="float32", rtol=0.0,
    )  # fmt: skip
    rms = np.sqrt(2.5)
    dg = 7 * U32 * 2 * rms  # lam u sqrt(n) rms(g)
    step = 0.1 * np.abs(g[0])
    expected = 2 * (0.1 * dg + U32 * (np.array([0.5, 1.0]) + step))
    assert np.allclose(got, expected, rtol=1e-12, atol=0)


def test_training_allowances_from_saved_arrays():
    rng = np.random.default_rng(6)
    kernel, bias = rng.standard_normal((3, 2)), rng.standard_normal(2)
    grads = rng.standard_normal((2, 3, 2))
    arrays = {
        "valid": np.ones((1, 4), bool),
        "weights/dense/kernel": kernel, "weights/dense/bias": bias,
        "trained/dense/head.kernel": kernel - 0.02 * grads.sum(axis=0),
        "trained/dense/head.bias": bias,
        "trained/gradients/head.kernel": grads,
        "outputs/dense": np.zeros((1, 4, 2)), "trained/outputs/dense": np.full((1, 4, 2), 0.5),
    }  # fmt: skip
    got = cross.training_allowances(arrays, "dense", optimizer="sgd", learning_rate=0.01,
                                    dtype="float32", atol=1e-5, rtol=1.3e-6)  # fmt: skip
    assert set(got) == {"trained/dense/head.kernel", "trained/outputs/dense"}
    assert got["trained/dense/head.kernel"].shape == (3, 2)
    ratio = np.linalg.norm(got["trained/dense/head.kernel"]) / np.linalg.norm(
        0.02 * grads.sum(axis=0)
    )
    assert np.allclose(got["trained/outputs/dense"], 1e-5 + 1.3e-6 * 0.5 + ratio * (0.5 + 0.5))
    assert cross.initial_weight(arrays, "dense", "trunk.kernel") is None


# -- flush-to-zero and TF32 end to end ------------------------------------------------------


def test_subnormal_input_is_no_false_fail(tmp_path):
    # tiny = N(0, 1) * 1e-39 in float32: TensorFlow on CPU flushes it to zero (margin 1.6e5
    # before the FTZ probe).
    import tdcheck

    path = tmp_path / "tiny.npy"
    np.save(path, (np.random.default_rng(0).standard_normal((2, 3, 4)) * 1e-39).astype("f4"))
    r = tdcheck.compare(rnn="none", input=str(path), initializer="he_normal", units=4, grad=True)
    assert r.passed, r.verdict()
    ftz = r.environment["flush_to_zero"]
    assert set(ftz) == {"float64", "float32", "float16", "bfloat16"}
    oracle = [c for c in r.comparisons if c.b == "oracle"]
    assert oracle and all(c.stats.max_abs_diff > 0 for c in oracle if c.quantity == "output")


def _tf32(x):
    """Round float32 values to TF32 (10 fraction bits), nearest even, as the tensor cores."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    keep = (bits + 0xFFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return keep.astype(np.uint32).view(np.float32)


@pytest.fixture
def tf32_engine(monkeypatch, tf_keras):
    """TensorFlow standing in for a GPU with TF32 on: "GPU:0" runs the trunk and the heads in
    NumPy with every matmul's inputs rounded to TF32 (products and sums in float32)."""
    from tdcheck.core import oracle
    from tdcheck.engines.tensorflow import TensorFlowEngine

    state = {"tf32": True, "rnn": "lstm"}
    cpu_forward, cpu_input = TensorFlowEngine.forward, TensorFlowEngine.head_input

    def head_input(self, built, x, device, dynamic=False):
        if "GPU" not in device:
            return cpu_input(self, built, x, device, dynamic)
        trunk = built.trunk_weights()
        rounded = None if trunk is None else tuple(_tf32(w) for w in trunk)
        return oracle.features(_tf32(x), state["rnn"], rounded).astype(np.float32)

    def forward(self, built, x, device):
        if "GPU" not in device:
            return cpu_forward(self, built, x, device)
        h = head_input(self, built, x, device)
        outs = []
        for variant in built.heads:
            k, b = built.canonical_head_weights(variant)
            z = _tf32(h) @ _tf32(k) + b
            outs.append(oracle.ACTIVATIONS["linear"](z).astype(np.float32))
        return outs, "GPU:0"

    monkeypatch.setattr(TensorFlowEngine, "gpu_names", lambda self: ["fake TF32 GPU"])
    monkeypatch.setattr(
        TensorFlowEngine,
        "select_devices",
        lambda self, r: ["CPU:0", "GPU:0"] if r == "both" else ["GPU:0"],
    )
    monkeypatch.setattr(TensorFlowEngine, "on", lambda self, d: self.tf.device("/CPU:0"))
    monkeypatch.setattr(TensorFlowEngine, "tf32_setting", lambda self: state["tf32"])
    monkeypatch.setattr(TensorFlowEngine, "forward", forward)
    monkeypatch.setattr(TensorFlowEngine, "head_input", head_input)
    return state


def test_simulated_tf32_engine_switches_every_comparison_to_tf32(tf32_engine):
    import tdcheck

    options = dict(rnn="lstm", hidden=16, features=8, units=4, seq=4, batch=2,
                   input="random", initializer="he_normal")  # fmt: skip
    gpu = tdcheck.compare(device="gpu", **options)
    assert gpu.passed, gpu.verdict()
    assert gpu.environment["device"] == "GPU:0"
    trunk = next(c for c in gpu.comparisons if c.a == "trunk")
    assert trunk.stats.rule == "tf32 tolerance" and trunk.stats.margin > 0.01
    assert trunk.stats.max_abs_diff > 1e-4  # TF32-sized, far over float32's atol 1e-5
    heads = [c for c in gpu.comparisons if c.b == "oracle" and c.a != "trunk"]
    assert len(heads) == 2 and all(c.stats.rule in ("bound", "prob-bound") for c in heads)
    assert any("TensorFloat-32 is enabled" in n for n in gpu.notes)
    both = tdcheck.compare(device="both", **options)
    assert both.passed, both.verdict()
    device = [c for c in both.comparisons if c.kind == "cross-device"]
    assert [c.a for c in device] == ["dense@GPU:0", "time-distributed@GPU:0"]
    assert all(c.stats.rule in ("bound", "prob-bound") for c in device)
    assert max(c.stats.max_abs_diff for c in device) > 1e-4  # TF32-sized, allowed
    assert any(n.startswith("TF32 is on:") for n in both.notes)
    # the same TF32-rounded results judged as float32 (the switch off) fail everywhere
    tf32_engine["tf32"] = False
    off = tdcheck.compare(device="gpu", **options)
    assert {c.a for c in off.failures} == {"trunk", "dense", "time-distributed"}
    off_both = tdcheck.compare(device="both", **options)
    assert {c.kind for c in off_both.failures} >= {"cross-device"}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_fault_end_to_end(monkeypatch, optimizer):
    # The second copy's optimizer gets a learning rate 1 % off: trained-weights must FAIL
    # under the `training` rule, while the healthy run passes with it.
    import tdcheck
    from tdcheck.engines import training

    options = dict(train_steps=3, optimizer=optimizer, input="random", hidden=8, seq=4,
                   batch=2, initializer="glorot_uniform")  # fmt: skip
    healthy = tdcheck.compare(**options)
    assert healthy.passed, healthy.verdict()
    trained = [c for c in healthy.comparisons if c.kind.startswith("trained")]
    assert len(trained) == 6 and {c.stats.rule for c in trained} == {"training"}
    assert healthy.arrays["trained/gradients/head.kernel"].shape == (3, 8, 2)
    made = []
    real = training._optimizer

    def off_by_one_percent(keras, cfg):
        optimizer = real(keras, cfg)
        made.append(optimizer)
        if len(made) == 2:
            optimizer.learning_rate = cfg.learning_rate * 1.01
        return optimizer

    monkeypatch.setattr(training, "_optimizer", off_by_one_percent)
    faulty = tdcheck.compare(**options)
    failed = {(c.kind, c.quantity) for c in faulty.failures}
    assert ("trained-weights", "head.kernel") in failed
    assert max(c.stats.margin for c in faulty.failures) > 10


def test_flush_to_zero_probe_with_fake_engines():
    import contextlib

    from tdcheck.engines.base import Engine, flush_probe_operands, flushed

    class Fake(Engine):
        name = "tensorflow"

        def __init__(self, flush: bool) -> None:
            self.flush, self.calls = flush, 0

        def load(self): ...
        def versions(self):
            return {}

        def gpu_names(self):
            return []

        def on(self, device):
            return contextlib.nullcontext()

        def forward(self, built, x, device):
            raise NotImplementedError

        def gradients(self, built, x, r, device):
            raise NotImplementedError

        def train_step(self, *args):
            raise NotImplementedError

        def matmul(self, a, b, dtype):
            self.calls += 1
            if dtype == "bfloat16":
                raise TypeError("no bfloat16 here")
            if self.flush:  # every addition rounded to the dtype: a narrow accumulator
                acc = np.zeros((a.shape[0], b.shape[1]))
                for k in range(a.shape[1]):
                    acc = faults.round_to(acc + np.outer(a[:, k], b[k]), dtype)
                return acc.ravel(), acc.ravel()
            y = faults.round_to(a @ b, dtype).ravel()
            return y, y

        def probe(self, dtype, device):
            self.calls += 1
            if dtype == "bfloat16":
                raise TypeError("no bfloat16 here")
            a, b, m, s = flush_probe_operands(dtype)
            if self.flush and dtype == "float32":  # DAZ: subnormal operands read as zero
                a = np.where(np.abs(a) < 2.0**-126, 0.0, a)
            return [(a @ b).ravel(), (a * m).ravel(), np.array([(a * s).sum()])]

    plain, flushing = Fake(False), Fake(True)
    assert plain.flush_to_zero("CPU:0") == {
        "float64": False, "float32": False, "float16": False, "bfloat16": None
    }  # fmt: skip
    assert flushing.flush_to_zero("CPU:0")["float32"] is True
    assert flushing.flush_to_zero("CPU:0")["float64"] is False
    calls = flushing.calls
    flushing.flush_to_zero("CPU:0")  # cached per device
    assert flushing.calls == calls
    # the accumulation probe, per dtype and shape: float32, the dtype, or None (no such op)
    assert plain.accumulation("float16", "CPU:0", 64, 16, 4) == "float32"
    assert plain.accumulation("mixed_float16", "CPU:0", 64, 16, 4) == "float32"
    assert flushing.accumulation("float16", "CPU:0", 64, 16, 4) == "float16"
    assert plain.accumulation("bfloat16", "CPU:0", 64, 16, 4) is None
    assert plain.accumulation("float32", "CPU:0", 64, 16, 4) == "float32"
    calls = plain.calls
    assert plain.accumulation("float16", "CPU:0", 64, 16, 4) == "float32"
    assert plain.calls == calls  # cached per dtype, device and shape
    tiny = 2.0**-126
    assert not flushed([np.array([tiny / 4, tiny / 2])] * 2 + [np.array([tiny / 4])], "float32")
    assert flushed([np.array([tiny / 4, 0.0])] * 2 + [np.array([tiny / 4])], "float32")


def test_float16_adam_whose_v_underflows_is_not_judged_and_says_why():
    # Keras keeps Adam's moments in float16: (1 - b2) g^2 underflows for |g| below ~5e-3,
    # the step is m / eps or m / sqrt(v) as rounding falls (the loss went 1.3 -> 571 here),
    # and the variants' trajectories part: no verdict on them, and the run says so.
    import tdcheck

    options = dict(rnn="gru", features=8, hidden=16, seq=8, batch=4, units=4,
                   train_steps=2, optimizer="adam", initializer="glorot_uniform")  # fmt: skip
    r = tdcheck.compare(dtype="float16", **options)
    assert r.passed, r.verdict()
    assert not [c for c in r.comparisons if c.kind.startswith("trained")]
    assert r.training is not None and r.training["not_judged"].startswith(
        "trained weights not judged: Adam's second moment is not computed accurately in float16"
    )
    assert "at step 1 of 2" in r.training["not_judged"]
    assert [n for n in r.notes if n.startswith("trained weights not judged")]
    assert "; trained weights not judged (rounding decides them: see the note)" in r.verdict()
    # mixed_float16 keeps float32 moments: judged
    mixed = tdcheck.compare(dtype="mixed_float16", **options)
    assert mixed.training is not None and mixed.training["not_judged"] is None
    assert len([c for c in mixed.comparisons if c.kind.startswith("trained")]) == 6


def test_an_undetermined_trained_array_across_runs_is_skipped_unless_bitwise_equal():
    from tdcheck.core.judge import comparator

    rng = np.random.default_rng(2)
    kernel, bias = rng.standard_normal((3, 2)), rng.standard_normal(2)
    grads = np.full((2, 3, 2), 1e-3)  # float16: (1 - b2) g^2 underflows
    arrays = {
        "valid": np.ones((1, 4), bool),
        "weights/dense/kernel": kernel, "weights/dense/bias": bias,
        "trained/gradients/head.kernel": grads,
    }  # fmt: skip
    why = cross.training_undetermined(arrays, "dense", optimizer="adam", learning_rate=0.01,
                                      dtype="float16")  # fmt: skip
    assert why is not None and "for 6 weights of head.kernel at step 1 of 2" in why
    assert cross.training_undetermined(arrays, "dense", optimizer="sgd", learning_rate=0.01,
                                       dtype="float16") is None  # fmt: skip
    assert cross.training_undetermined(arrays, "dense", optimizer="adam", learning_rate=0.01,
                                       dtype="mixed_float16") is None  # fmt: skip

    class Cfg:
        dtype, activation, optimizer, learning_rate = "float16", "linear", "adam", 0.01
        head_input_size, rnn, atol = 3, "none", None

    side = cross.Side(arrays, {"flush_to_zero": {"float16": False}})
    got, rule = cross.allowance("trained/dense/head.kernel", "head.kernel", kernel,
                                (side, side), Cfg)  # fmt: skip
    assert (got, rule) == (None, cross.UNDETERMINED)
    trained = {"trained/dense/head.kernel": kernel}
    for other, count in ((kernel, 1), (kernel + 1.0, 0)):
        found = comparator.judge_arrays(
            trained, {"trained/dense/head.kernel": other}, kind="baseline", atol=1e-3,
            rtol=1e-3, exact=False, label_a="", label_b="@baseline", valid=np.ones((1, 4), bool),
            lengths=False, variants=("dense",), sides=(side, side), cfg=Cfg,
        )  # fmt: skip
        assert len(found) == count
        assert all(c.stats.rule == "exact" and c.stats.passed for c in found)


def test_tensorflow_on_cpu_accumulates_16_bit_products_in_float32():
    # measured on every CPU framework here (TensorFlow, JAX, torch): float16 and bfloat16
    # products are float32 sums rounded once, as a Dense layer (3-D) and TimeDistributed
    # (2-D) multiply; the statistical rule then models the additions with float32's u
    from tdcheck.engines.base import load_engine

    engine = load_engine("tensorflow")
    for dtype in ("float16", "bfloat16", "mixed_float16"):
        assert engine.accumulation(dtype, "CPU:0", 256, 512, 32) == "float32", dtype
    # 4096 rows of 384: cancelling sums are 50 u off relative to their tiny result, within
    # a float32 accumulator's own worst case (it once read as a bfloat16 accumulator)
    assert engine.accumulation("bfloat16", "CPU:0", 4096, 384, 32) == "float32"
    assert engine.accumulation("float16", "CPU:0", 4096, 384, 32) == "float32"
    assert engine.accumulation("float32", "CPU:0", 256, 512, 32) == "float32"
