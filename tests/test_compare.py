"""The Python API end to end: the seed, trunks, weight sync, verdicts, arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tdcheck
from tdcheck.errors import ConfigError


@pytest.fixture(scope="module")
def seed_result():
    return tdcheck.compare(hidden=5, seq=3)


def test_seed_reproduction(seed_result):
    r = seed_result
    assert r.total_params == 224
    assert [(row["name"], row["type"], row["params"]) for row in r.layers] == [
        ("input", "InputLayer", 0),
        ("lstm", "LSTM", 200),
        ("dense", "Dense", 12),
        ("time_distributed", "TimeDistributed(Dense)", 12),
    ]
    assert [row["output_shape"] for row in r.layers] == [
        [None, None, 4], [None, None, 5], [None, None, 2], [None, None, 2],
    ]  # fmt: skip
    assert [row["connected_to"] for row in r.layers] == ["-", "input", "lstm", "lstm"]
    assert r.arrays["outputs/dense"].shape == (1, 3, 2)
    assert r.arrays["outputs/time-distributed"].shape == (1, 3, 2)
    assert [(c.a, c.b) for c in r.comparisons] == [
        ("time-distributed", "dense"), ("trunk", "oracle"), ("dense", "oracle"),
        ("time-distributed", "oracle"), ("time-distributed", "dense"), ("dense", "exact"),
        ("time-distributed", "exact"),
    ]  # fmt: skip
    assert [c.stats.rule for c in r.comparisons] == [
        "bound", "atol/rtol", "bound", "bound", "float64", "statistical", "statistical"]  # fmt: skip
    assert r.passed and bool(r) and r.exit_code == 0


def test_seed_constant_kernel_gives_equal_columns(seed_result):
    # Constant(0.1) kernel and zero bias: both units see the same weights.
    out = seed_result.arrays["outputs/dense"]
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    # ... and each output is 0.1 times the sum of the LSTM's 5 outputs at that step.
    from tdcheck.core.oracle import lstm

    arrays = seed_result.arrays
    trunk = lstm(
        arrays["input"],
        arrays["weights/rnn/kernel"],
        arrays["weights/rnn/recurrent_kernel"],
        arrays["weights/rnn/bias"],
    )
    np.testing.assert_allclose(out[..., 0], 0.1 * trunk.sum(axis=-1), rtol=1e-6, atol=1e-7)


def test_bitwise_flag_is_the_truth(seed_result):
    a = seed_result.arrays["outputs/time-distributed"]
    b = seed_result.arrays["outputs/dense"]
    (pair,) = [c for c in seed_result.comparisons
               if c.kind == "output" and (c.a, c.b) == ("time-distributed", "dense")]  # fmt: skip
    assert pair.stats.bitwise_equal == (a.tobytes() == b.tobytes())
    assert pair.stats.max_abs_diff == float(np.abs(a.astype(float) - b).max())
    verdict = seed_result.verdict()
    if pair.stats.bitwise_equal:
        assert verdict.startswith("EQUIVALENT: the variants are bitwise identical")
    else:
        assert verdict.startswith("EQUIVALENT within tolerance, not bitwise identical")


def test_json_document(seed_result):
    doc = json.loads(seed_result.to_json())
    assert doc["passed"] is True
    assert doc["total_params"] == 224
    assert set(doc["config"]) >= {
        "features", "hidden", "units", "seq", "batch", "rnn", "initializer", "bias_initializer",
        "activation", "variants", "weights", "input", "seed", "device", "atol", "rtol", "exact",
        "oracle",
    }  # fmt: skip
    assert set(doc["environment"]) >= {
        "python",
        "tensorflow",
        "keras",
        "numpy",
        "device",
        "platform",
    }
    assert doc["environment"]["device"] in ("CPU:0", "GPU:0")
    assert [layer["params"] for layer in doc["layers"]] == [0, 200, 12, 12]
    assert set(doc["layers"][0]) >= {"name", "type", "output_shape", "params"}
    keys = {
        "a", "b", "shape_a", "shape_b", "max_abs_diff", "max_rel_diff", "mean_abs_diff", "max_ulp",
        "mismatched", "total", "worst_index", "bitwise_equal", "atol", "rtol", "passed", "kind",
    }  # fmt: skip
    keys |= {"rule", "allowed", "margin"}
    for c in doc["comparisons"]:
        assert keys <= set(c)
        shape = [1, 3, 5] if c["a"] == "trunk" else [1, 3, 2]
        assert c["shape_a"] == shape and c["total"] == 6 * (2.5 if c["a"] == "trunk" else 1)
        assert (c["atol"], c["rtol"]) == (1e-5, 1.3e-6)
        assert 0 <= c["margin"] < 0.1 and c["allowed"] > 0
    assert [c["b"] for c in doc["comparisons"]] == [
        "dense", "oracle", "oracle", "oracle", "dense", "exact", "exact"]  # fmt: skip


@pytest.mark.parametrize(
    ("rnn", "params"),
    [("lstm", 4 * 8 * 12), ("gru", 3 * 8 * 13), ("simple-rnn", 8 * 12), ("none", 0)],
)
def test_every_trunk_passes_with_random_weights(rnn, params):
    r = tdcheck.compare(
        rnn=rnn, hidden=8, features=3, units=3, seq=5, batch=2,
        initializer="glorot_uniform", input="random", variants="dense,time-distributed,conv1d,einsum",
    )  # fmt: skip
    assert r.passed, r.verdict()
    head_in = 3 if rnn == "none" else 8
    assert r.total_params == params + 4 * (head_in * 3 + 3)
    # pairs, oracle, trunk; same computation (pairs), statistical (each head)
    assert len(r.comparisons) == 3 + 4 + (rnn != "none") + 3 + 4
    oracle = [c for c in r.comparisons if c.involves_oracle]
    assert all(c.stats.max_abs_diff < 1e-5 for c in oracle)


def test_shared_weights_are_copied_for_random_initializers():
    r = tdcheck.compare(
        initializer="random_normal:1", bias_initializer="random_uniform:1",
        variants="dense,time-distributed,conv1d,einsum", seed=4,
    )  # fmt: skip
    kernel, bias = r.arrays["weights/dense/kernel"], r.arrays["weights/dense/bias"]
    assert np.unique(kernel).size == kernel.size  # really random, not constant
    assert np.any(bias != 0)
    for v in ("time-distributed", "conv1d", "einsum"):
        np.testing.assert_array_equal(r.arrays[f"weights/{v}/kernel"].reshape(5, 2), kernel)
        np.testing.assert_array_equal(r.arrays[f"weights/{v}/bias"], bias)
    assert r.passed


def test_independent_random_weights_fail_and_say_why():
    r = tdcheck.compare(initializer="glorot_uniform", weights="independent", input="random")
    assert not r.passed and not bool(r) and r.exit_code == 1
    (pair,) = [c for c in r.comparisons if c.kind == "output" and not c.involves_oracle]
    assert not pair.passed
    (same,) = [c for c in r.comparisons if c.kind == "same-computation"]
    assert not same.passed and same.stats.note.startswith(
        "different computations: stored weights differ: kernel 10 of 10 elements"
    )
    # each head still matches its own oracle
    assert all(c.passed for c in r.comparisons if c.involves_oracle)
    assert r.verdict().startswith(
        "NOT EQUIVALENT: 3 of 7 comparisons failed (the variants disagree); "
        "worst time-distributed vs dense at ["
    )
    assert "; different computations: stored weights differ: kernel 10 of 10 elements" in (
        r.verdict()
    )
    assert any("--weights independent" in n for n in r.notes)


def test_independent_constant_weights_agree_as_in_the_seed():
    assert tdcheck.compare(weights="independent").passed


def test_exact_mode_judges_variant_pairs_bitwise():
    r = tdcheck.compare(exact=True, input="random", variants="dense,time-distributed,conv1d")
    pairs = [c for c in r.comparisons if not c.involves_oracle]
    oracle = [c for c in r.comparisons if c.involves_oracle]
    assert all(c.stats.exact and c.passed == c.stats.bitwise_equal for c in pairs)
    # float32 outputs against a float64 oracle are never bitwise equal: tolerances there
    assert all(not c.stats.bitwise_equal and not c.stats.exact and c.passed for c in oracle)
    broken = tdcheck.compare(exact=True, weights="independent", initializer="he_normal")
    assert not broken.passed


def test_same_seed_same_numbers():
    a = tdcheck.compare(initializer="glorot_uniform", input="random", seed=9)
    b = tdcheck.compare(initializer="glorot_uniform", input="random", seed=9)
    c = tdcheck.compare(initializer="glorot_uniform", input="random", seed=10)
    np.testing.assert_array_equal(a.arrays["outputs/dense"], b.arrays["outputs/dense"])
    assert not np.array_equal(a.arrays["outputs/dense"], c.arrays["outputs/dense"])


def test_input_file_sets_the_sizes(tmp_path):
    path = tmp_path / "x.npy"
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    np.save(path, x)
    r = tdcheck.compare(input=str(path))
    assert (r.config["batch"], r.config["seq"], r.config["features"]) == (2, 6, 3)
    np.testing.assert_array_equal(r.arrays["input"], x)
    with pytest.raises(ConfigError, match="--features 4 disagrees with the input file"):
        tdcheck.compare(input=str(path), features=4)


@pytest.mark.gpu
def test_gpu_device_is_reported(has_gpu):
    if not has_gpu:
        pytest.skip("no GPU visible")
    r = tdcheck.compare(device="gpu")
    assert r.environment["device"] == "GPU:0"
    assert r.passed


def test_cpu_device_is_reported():
    assert tdcheck.compare(device="cpu").environment["device"] == "CPU:0"


def test_config_object_and_keywords_combine():
    cfg = tdcheck.CompareConfig(hidden=7)
    r = tdcheck.compare(cfg, units=3)
    assert (r.config["hidden"], r.config["units"]) == (7, 3)


@pytest.mark.parametrize("variant", ["dense", "time-distributed", "conv1d", "einsum"])
def test_a_single_variant_is_checked_against_the_oracle(variant):
    # Keras returns a bare tensor (not a list) for a one-output model.
    r = tdcheck.compare(variants=variant, grad=True, train_steps=1, input="random")
    assert r.passed, r.verdict()
    assert [(c.kind, c.a, c.b, c.quantity) for c in r.comparisons] == [
        ("output", "trunk", "oracle", "output"), ("output", variant, "oracle", "output"),
        ("gradient", variant, "oracle", "head.kernel"), ("gradient", variant, "oracle", "head.bias"),
        ("gradient", variant, "oracle", "input"), ("statistical", variant, "exact", "output"),
    ]  # fmt: skip
    assert r.comparisons[1].stats.shape_a == (1, 3, 2)
    assert r.verdict().startswith("EQUIVALENT to the oracle within tolerance")
