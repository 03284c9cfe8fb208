"""The engine interface, run against every installed engine (each in its own process, since a
process holds one Keras backend), and the backend plumbing: names, tolerances, workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tdcheck.core.backends import (
    ENGINE_NAMES,
    TF32_TOLERANCES,
    check_supported,
    cross_tolerances,
    engine_name,
    framework_text,
    parse_engines,
)
from tdcheck.core.config import CompareConfig
from tdcheck.engines.base import REQUIRES, installed
from tdcheck.errors import ConfigError

ENGINES = [
    pytest.param(name, marks=pytest.mark.skipif(not installed(name), reason=f"{name} missing"))
    for name in ENGINE_NAMES
]

# Exercises every method of the interface in a fresh process; prints one JSON line.
PROBE = r"""
import json, sys
import numpy as np
from tdcheck.core import oracle
from tdcheck.core.config import CompareConfig
from tdcheck.engines.base import load_engine
from tdcheck.engines.gradients import oracle_input_gradient
from tdcheck.errors import EnvironmentProblem

engine = load_engine(sys.argv[1])
cfg = CompareConfig(hidden=5, seq=3, variants=("dense", "time-distributed", "conv1d")).validated()
cfg = cfg.resolve_sizes(None)
x = np.random.default_rng(1).standard_normal((1, 3, 4)).astype("float32")
r = np.random.default_rng(2).standard_normal((1, 3, 2))
built = engine.build(cfg, "CPU:0")
outputs, device = engine.forward(built, x, "CPU:0")
trunk = built.trunk_weights()
kernel, bias = built.canonical_head_weights("dense")
expected = oracle.forward(x, "lstm", trunk, kernel, bias, "linear")
grads = engine.gradients(built, x, r, "CPU:0")
fd = oracle_input_gradient(x, r, rnn="lstm", trunk_weights=trunk, kernel=kernel, bias=bias,
                           activation="linear", mask=None)
try:
    engine.select_devices("gpu")
    gpu_error = None
except EnvironmentProblem as exc:
    gpu_error = exc.message
env = engine.environment(device)
print(json.dumps({
    "name": engine.name, "device": device, "cpu": engine.select_devices("cpu"),
    "gpus": engine.gpu_names(), "gpu_error": gpu_error, "env": env,
    "input_dtype": engine.input_dtype(built), "total_params": built.total_params,
    "shapes": [list(o.shape) for o in outputs], "dtypes": [str(o.dtype) for o in outputs],
    "oracle_diff": max(float(np.max(np.abs(o - expected))) for o in outputs),
    "grad_keys": {v: sorted(g) for v, g in grads.items()},
    "grad_shapes": {k: list(v.shape) for k, v in grads["dense"].items()},
    "grad_oracle_diff": float(np.max(np.abs(grads["dense"]["input"] - fd))),
    "grad_scale": float(np.max(np.abs(fd))),
}))
"""


def _probe(name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_BACKEND"] = "tensorflow" if name == "keras2" else name
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, name], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ENGINES)
def test_engine_interface(name):
    doc = _probe(name)
    assert doc["name"] == name
    assert doc["cpu"] == ["CPU:0"]
    assert doc["device"] == "CPU:0"
    assert doc["input_dtype"] == "float32"
    assert doc["total_params"] == 200 + 3 * 12
    assert doc["shapes"] == [[1, 3, 2]] * 3
    assert doc["dtypes"] == ["float32"] * 3
    # The same NumPy-drawn weights on every engine: each head is the float64 oracle's
    # computation to float32 rounding.
    assert doc["oracle_diff"] < 1e-6
    keys = ["head.bias", "head.kernel", "input", "trunk.bias", "trunk.kernel",
            "trunk.recurrent_kernel"]  # fmt: skip
    assert doc["grad_keys"] == {v: keys for v in ("dense", "time-distributed", "conv1d")}
    assert doc["grad_shapes"] == {
        "input": [1, 3, 4], "trunk.kernel": [4, 20], "trunk.recurrent_kernel": [5, 20],
        "trunk.bias": [20], "head.kernel": [5, 2], "head.bias": [2],
    }  # fmt: skip
    assert doc["grad_scale"] > 1e-3  # a real gradient, not zeros
    assert doc["grad_oracle_diff"] < 1e-6
    env = doc["env"]
    assert env["backend"] == name
    assert env["keras"].startswith("2" if name == "keras2" else "3")
    assert env["device"] == "CPU:0"
    if doc["gpus"]:
        assert isinstance(env["tf32"], bool)
    else:
        assert env["tf32"] is None  # TF32 is a GPU format
        assert "no GPU is visible to" in doc["gpu_error"]


def test_parse_engines():
    assert parse_engines("tensorflow, jax,keras2") == ("tensorflow", "jax", "keras2")
    with pytest.raises(ConfigError, match="unknown backend 'mxnet'; choose from tensorflow, jax"):
        parse_engines("tensorflow,mxnet")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_engines("jax,jax")
    with pytest.raises(ConfigError, match="at least two"):
        parse_engines("jax")


def test_engine_name_and_keras2():
    assert engine_name("jax") == "jax"
    assert engine_name("tensorflow", 2) == "keras2"
    with pytest.raises(ConfigError, match="--keras 2 runs on TensorFlow only"):
        engine_name("torch", 2)


def test_config_backend_defaults_to_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert CompareConfig().validated().engine == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "numpy")  # not one tdcheck runs: the default
    assert CompareConfig().validated().backend == "tensorflow"
    monkeypatch.delenv("KERAS_BACKEND")
    assert CompareConfig(backend="torch").validated().engine == "torch"
    with pytest.raises(ConfigError, match="leave out --backend"):
        CompareConfig(backend="jax", backends=("tensorflow", "jax")).validated()


def test_unsupported_features_are_refused_before_loading():
    check_supported("tensorflow", time_dim="dynamic", train_steps=3)
    check_supported("keras2", time_dim="dynamic", train_steps=0)
    with pytest.raises(ConfigError, match=r"--time-dim dynamic .* not available on jax"):
        check_supported("jax", time_dim="dynamic", train_steps=0)
    CompareConfig(backends=("tensorflow", "torch", "keras2"), train_steps=2).validated()
    with pytest.raises(ConfigError, match="mixed_float16 is not supported with Keras 2"):
        CompareConfig(keras=2, train_steps=2, dtype="mixed_float16").validated()


def test_cross_tolerances_tf32():
    assert cross_tolerances("float32", tf32=False) == (1e-5, 1.3e-6)
    # TF32: 10-bit mantissa, unit roundoff 2**-11; allowed 4u.
    assert TF32_TOLERANCES == (2.0**-9, 2.0**-9)
    assert cross_tolerances("float32", tf32=True) == (2.0**-9, 2.0**-9)
    assert cross_tolerances("mixed_float16", tf32=True) == (5e-3, 5e-3)  # already looser
    assert cross_tolerances("float64", tf32=True) == (1e-10, 1e-9)  # TF32 is for float32 only


def test_framework_text():
    tf = {"backend": "tensorflow", "tensorflow": "2.21.0", "keras": "3.15.1", "tf32": None}
    jax = {"backend": "jax", "jax": "0.10.2", "keras": "3.15.1", "tf32": True}
    assert framework_text(tf) == "TensorFlow 2.21.0, Keras 3.15.1"
    assert framework_text(jax) == "JAX 0.10.2, Keras 3.15.1, TF32 on"
    both = {**tf, "backends": {"tensorflow": tf, "jax": jax}}
    assert (
        framework_text(both) == "TensorFlow 2.21.0, Keras 3.15.1; JAX 0.10.2, Keras 3.15.1, TF32 on"
    )


def test_missing_backend_is_exit_3_with_the_pip_line(runner, monkeypatch):
    from tdcheck.cli import cli
    from tdcheck.engines import base

    monkeypatch.setattr(base, "installed", lambda name: name == "tensorflow")
    result = runner.invoke(cli, ["compare", "--backend", "torch"])
    assert result.exit_code == 3
    assert result.output == (
        "tdcheck: error: the torch backend needs 'torch', which is not installed; install it: "
        f"{REQUIRES['torch'][1]}\n"
    )
    result = runner.invoke(cli, ["compare", "--backends", "tensorflow,keras2"])
    assert result.exit_code == 3
    assert result.output == (
        "tdcheck: error: the keras2 backend needs 'tf_keras', which is not installed; install "
        "it: pip install 'tensorflow>=2.16,<3' 'tf_keras>=2.16' (or, in a checkout of tdcheck: "
        "pip install '.[keras2]')\n"
    )


def test_comparison_round_trips_through_json():
    from tdcheck.core.result import Comparison
    from tdcheck.core.stats import compare_arrays
    from tdcheck.runners.protocol import comparison_from_dict

    a = np.array([1.0, np.inf, 3.0])
    stats = compare_arrays(a, np.array([1.0, 2.0, 3.0]), atol=1e-5, rtol=0)
    original = Comparison("gradient", "x", "y", stats, "input")
    back = comparison_from_dict(json.loads(json.dumps(original.to_dict())))
    assert back == original
    assert back.stats.max_abs_diff == float("inf")
    assert back.stats.worst_index == (1,)


def test_backend_validation_is_idempotent():
    cfg = CompareConfig(backends="tensorflow,jax").validated()
    assert cfg.validated() == cfg
    assert cfg.backends == ("tensorflow", "jax") and cfg.backend is None
    assert cfg.to_dict()["backends"] == ["tensorflow", "jax"]
    single = CompareConfig(backend="torch").validated()
    assert single.validated() == single


def test_tf32_cross_device_rule():
    from tdcheck.core.backends import tf32_cross_device

    assert tf32_cross_device("float32", (None, None), True) == (2.0**-9, 2.0**-9)
    assert tf32_cross_device("float32", (None, None), False) is None
    assert tf32_cross_device("float32", (None, None), None) is None  # no GPU
    assert tf32_cross_device("float64", (None, None), True) is None
    assert tf32_cross_device("float32", (1e-6, 0.0), True) is None  # the user's tolerances


def test_cross_device_uses_tf32_tolerances_when_tf32_is_on(monkeypatch, tf_keras):
    # No GPU here: stand a second CPU in for the GPU and report TF32 on, to check the wiring.
    import tdcheck
    from tdcheck.engines.tensorflow import TensorFlowEngine

    monkeypatch.setattr(TensorFlowEngine, "select_devices", lambda self, r: ["CPU:0", "CPU:0"])
    monkeypatch.setattr(TensorFlowEngine, "tf32", lambda self: True)
    run = tdcheck.compare(device="both")
    cross = [c for c in run.comparisons if c.kind == "cross-device"]
    assert [(c.a, c.b) for c in cross] == [
        ("dense@CPU:0", "dense@CPU:0"), ("time-distributed@CPU:0", "time-distributed@CPU:0"),
    ]  # fmt: skip
    assert all((c.stats.atol, c.stats.rtol) == (2.0**-9, 2.0**-9) for c in cross)
    others = [c for c in run.comparisons if c.kind != "cross-device"]
    assert all((c.stats.atol, c.stats.rtol) == (1e-5, 1.3e-6) for c in others)
    assert any(note.startswith("TF32 is on: float32 matmuls on the GPU") for note in run.notes)
    assert run.environment["tf32"] is True


@pytest.mark.gpu
def test_tf32_switch_on_a_gpu(has_gpu):
    import tdcheck

    if not has_gpu:
        pytest.skip("no GPU")
    on = tdcheck.compare(device="both", tf32="on", hidden=64, seq=20, input="random")
    assert on.environment["tf32"] is True
    assert {c.stats.atol for c in on.comparisons if c.kind == "cross-device"} == {2.0**-9}
    off = tdcheck.compare(device="both", tf32="off", hidden=64, seq=20, input="random")
    assert off.environment["tf32"] is False
    assert {c.stats.atol for c in off.comparisons if c.kind == "cross-device"} == {1e-5}
    assert off.passed


@pytest.mark.parametrize(
    "argv",
    [["compare", "--help"], ["compare", "--backend", "jax", "--keras", "2"],
     ["compare", "--backends", "jax"], ["compare", "--backend", "torch", "--time-dim", "dynamic"],
     ["sweep", "--backend", "jax,mxnet"]],
)  # fmt: skip
def test_help_and_argument_errors_import_no_framework(argv):
    code = (
        "import sys\nfrom tdcheck.cli import cli\n"
        f"try:\n    cli.main({argv!r}, prog_name='tdcheck')\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('\\n' + ','.join(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    modules = set(proc.stderr.strip().split("\n")[-1].split(","))
    assert "click" in modules  # the probe itself worked
    for heavy in ("jax", "torch", "tensorflow", "keras", "tf_keras", "numpy"):
        assert heavy not in modules, heavy


def test_bench_backend_option_wins_over_keras_backend(runner, monkeypatch, tmp_path):
    # bench follows $KERAS_BACKEND like compare (tests/test_bench.py); --backend overrides it.
    from tdcheck.cli import cli

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    out = tmp_path / "b.json"
    result = runner.invoke(cli, ["bench", "--backend", "tensorflow", "--seq", "2", "--repeats",
                                 "1", "--warmup", "0", "--output", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["backend"] == "tensorflow"
    assert doc["environment"]["tensorflow"]
