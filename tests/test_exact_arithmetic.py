"""Same computation (float64) and the statistical rule in real runs: faults in every dtype,
healthy configurations, and re-judging an archive with NumPy alone."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import tdcheck
from tdcheck.commands.compare import archive
from tdcheck.core import faults

REQUIRED = ("bias dropped", "output units 0 and 1 swapped", "kernel transposed",
            "kernel x 1.01", "1-ULP kernel element")  # fmt: skip
SENSITIVE = dict(input="random", initializer="glorot_uniform",
                 bias_initializer="random_normal:0.5")  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "mixed_float16"])
def test_every_required_fault_is_caught_in_every_dtype(dtype):
    r = tdcheck.compare(power=True, dtype=dtype, hidden=8, units=8, features=4, seq=8, batch=4,
                        **SENSITIVE)  # fmt: skip
    assert r.passed, r.verdict()  # the healthy heads
    rows = {row["fault"]: row for row in r.power["faults"]}
    for name in REQUIRED:
        assert rows[name]["by_rule"]["float64"]["detected"], (dtype, name)
    # the structural faults are beyond rounding too: the statistical rule sees them
    for name in ("bias dropped", "output units 0 and 1 swapped", "kernel transposed"):
        assert rows[name]["by_rule"]["statistical"]["detected"], (dtype, name)
    kinds = {(c.kind, c.stats.rule) for c in r.comparisons}
    assert {("same-computation", "float64"), ("statistical", "statistical")} <= kinds


@pytest.mark.parametrize("rnn", ["lstm", "gru", "none"])
def test_healthy_heads_pass_every_rule(rnn):
    r = tdcheck.compare(rnn=rnn, hidden=32, units=16, features=8, seq=16, batch=4,
                        variants=("dense", "time-distributed", "conv1d", "einsum"),
                        activation="tanh", **SENSITIVE)  # fmt: skip
    assert r.passed, r.verdict()
    same = [c for c in r.comparisons if c.kind == "same-computation"]
    stat = [c for c in r.comparisons if c.kind == "statistical"]
    assert [c.label for c in same] == [
        "time-distributed vs dense", "conv1d vs dense", "einsum vs dense"]  # fmt: skip
    assert all(c.stats.bitwise_equal and c.stats.margin == 0.0 for c in same)
    assert len(stat) == 4 and all(0 <= c.stats.margin < 0.5 for c in stat)


def test_independent_weights_are_different_computations():
    r = tdcheck.compare(weights="independent", initializer="glorot_uniform")
    same = next(c for c in r.comparisons if c.kind == "same-computation")
    assert not same.passed
    assert same.stats.note.startswith(
        "different computations: stored weights differ: kernel 10 of 10 elements"
    )


def test_user_tolerances_keep_their_own_rule():
    r = tdcheck.compare(atol=1e-3, rtol=0.0)
    assert {c.kind for c in r.comparisons} == {"output"}


REJUDGE = r"""
import json, sys
import numpy as np
from tdcheck.core import rounding, samecomp

data = np.load(sys.argv[1], allow_pickle=False)
meta = json.loads(data["meta/report.json"].tobytes())
cfg = meta["report"]["config"]
h = data["features"].astype(np.float64)
units = cfg["units"]

def head(v):
    k = data[f"weights/{v}/kernel"].astype(np.float64)
    return k.reshape(-1, units), data[f"weights/{v}/bias"].astype(np.float64), cfg["activation"]

ref = cfg["variants"][0]
out = {}
for c in meta["report"]["comparisons"]:
    if c["kind"] == "same-computation":
        r = samecomp.same_computation(h, head(c["a"]), head(c["b"]))
        assert np.array_equal(r.y_a, data[c["arrays"][0]]), c["a"]
        out[c["kind"] + " " + c["a"]] = [r.passed, r.margin, c["passed"], c["margin"]]
    if c["kind"] == "statistical":
        # the engine's accumulator, probed at the heads' shape (float32 on every CPU here)
        acc = meta["report"]["environment"]["accumulation"]
        scale = rounding.pair_scale(
            rounding.head_scale(h, *head(ref), cfg["dtype"], accumulate=acc),
            rounding.head_scale(h, *head(ref), "float64"))
        res = rounding.judge(data[c["arrays"][0]], data[c["arrays"][1]], scale)
        out[c["kind"] + " " + c["a"]] = [res.passed, res.margin, c["passed"], c["margin"]]
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
print(json.dumps(out))
"""


def test_an_archive_is_rejudged_with_numpy_alone(tmp_path):
    path = tmp_path / "a.npz"
    r = tdcheck.compare(dtype="float16", hidden=16, units=4, seq=8, batch=2, **SENSITIVE)
    np.savez(path, **archive(r))
    done = subprocess.run([sys.executable, "-c", REJUDGE, str(path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    verdicts = json.loads(done.stdout)
    assert r.environment["accumulation"] == "float32"
    assert sorted(verdicts) == ["same-computation time-distributed", "statistical dense",
                                "statistical time-distributed"]  # fmt: skip
    for passed, margin, reported_passed, reported_margin in verdicts.values():
        assert passed is reported_passed is True
        assert margin == pytest.approx(reported_margin, rel=1e-12, abs=0)


def small_model(keras, dtype):
    """``Input((None, 4)) -> LSTM(8) -> Dense(8)`` in ``dtype`` (square head kernel)."""
    init = keras.initializers.RandomNormal(stddev=0.5, seed=5)
    x = keras.Input((None, 4), name="x", dtype="float32" if dtype == "mixed_float16" else dtype)
    h = keras.layers.LSTM(
        8, return_sequences=True, name="lstm", dtype=dtype, recurrent_initializer=init
    )(x)  # (no bfloat16 QR for orthogonal)
    y = keras.layers.Dense(8, name="head", dtype=dtype, kernel_initializer=init,
                           bias_initializer=init)(h)  # fmt: skip
    return keras.Model(x, y, name="small")


def faulty_copies(keras, model, dtype):
    stored = "float32" if dtype == "mixed_float16" else dtype
    kernel, bias = (np.asarray(w).astype(np.float64) for w in model.get_layer("head").get_weights())
    one = kernel.copy()
    one[2, 3] += float(faults.ulp(one[2, 3], stored)) * np.sign(one[2, 3])
    changed = {
        "bias dropped": (kernel, np.zeros_like(bias)),
        "output units 0 and 1 swapped": (kernel[:, [1, 0, 2, 3, 4, 5, 6, 7]],
                                         bias[[1, 0, 2, 3, 4, 5, 6, 7]]),
        "kernel transposed": (kernel.T.copy(), bias),
        "kernel x 1.01": (faults.round_to(kernel * 1.01, stored), bias),
        "1-ULP kernel element": (one, bias),
    }  # fmt: skip
    for name, (k, b) in changed.items():
        copy = small_model(keras, dtype)
        copy.set_weights(model.get_weights())
        target = copy.get_layer("head")
        target.set_weights([k.astype(np.float32).astype(v.dtype)
                            for k, v in ((k, target.kernel), (b, target.bias))])  # fmt: skip
        yield name, copy


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "mixed_float16"])
def test_models_catches_every_required_fault_in_every_dtype(tf_keras, dtype):
    keras = tf_keras[1]
    model = small_model(keras, dtype)
    healthy = small_model(keras, dtype)
    healthy.set_weights(model.get_weights())
    ok = tdcheck.compare_models(model, healthy, checks=1)
    assert ok.passed and len(ok.same_computation) == 2, ok.verdict()
    for name, copy in faulty_copies(keras, model, dtype):
        r = tdcheck.compare_models(model, copy, checks=1)
        assert not r.passed, (dtype, name)
        weights = r.same_computation[0]
        assert weights.check == "stored weights" and not weights.passed, (dtype, name)
        assert "different computations: stored weights differ: head/" in weights.stats.note
        assert r.verdict().startswith("NOT EQUIVALENT"), (dtype, name, r.verdict())


def test_models_cli_fails_a_float16_kernel_x_1_01_on_saved_models(runner, tf_keras, tmp_path):
    from tdcheck.cli import cli

    keras = tf_keras[1]
    model = small_model(keras, "float16")
    copy = dict(faulty_copies(keras, model, "float16"))["kernel x 1.01"]
    model.save(tmp_path / "a.keras")
    copy.save(tmp_path / "b.keras")
    result = runner.invoke(cli, ["models", str(tmp_path / "a.keras"), str(tmp_path / "b.keras"),
                                 "--format", "json"])  # fmt: skip
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    same = doc["same_computation"]
    assert same[0]["note"].startswith("different computations: stored weights differ: head/0 ")
    assert [c["passed"] for c in same[1:]] == [False] * 5  # the float64 clones differ too
    assert doc["verdict"].startswith("NOT EQUIVALENT: ")
    assert "different computations: stored weights differ: head/0 " in doc["verdict"]
