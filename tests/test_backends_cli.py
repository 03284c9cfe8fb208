"""compare --backend/--backends/--baseline end to end (workers are real processes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.engines.base import installed

needs_jax = pytest.mark.skipif(not installed("jax"), reason="jax not installed")
needs_keras2 = pytest.mark.skipif(not installed("keras2"), reason="tf_keras not installed")


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@needs_jax
def test_backends_adds_cross_backend_comparisons(runner):
    result = run(runner, "compare", "--backends", "tensorflow,jax", "--grad", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    cross = [c for c in doc["comparisons"] if c["kind"] == "cross-backend"]
    quantities = ["head.bias", "head.kernel", "input", "trunk.bias", "trunk.kernel",
                  "trunk.recurrent_kernel"]  # fmt: skip
    assert [(c["a"], c["b"], c["quantity"]) for c in cross] == [
        *[("dense@jax", "dense@tensorflow", q) for q in quantities],
        *[("time-distributed@jax", "time-distributed@tensorflow", q) for q in quantities],
        ("dense@jax", "dense@tensorflow", "output"),
        ("time-distributed@jax", "time-distributed@tensorflow", "output"),
    ]
    for c in cross:
        assert c["passed"] is True
        assert (c["atol"], c["rtol"]) == (1e-5, 1.3e-6)
    outputs = [c for c in cross if c["quantity"] in ("output", "input")]
    assert all(0 < c["max_abs_diff"] < 1e-7 for c in outputs)  # measured 3.7e-9, 6.5e-9
    own = [(c["a"], c["b"]) for c in doc["comparisons"] if c["kind"] == "output"]
    assert own == [
        ("time-distributed@tensorflow", "dense@tensorflow"), ("trunk@tensorflow", "oracle"),
        ("dense@tensorflow", "oracle"), ("time-distributed@tensorflow", "oracle"),
        ("time-distributed@jax", "dense@jax"), ("trunk@jax", "oracle"),
        ("dense@jax", "oracle"), ("time-distributed@jax", "oracle"),
    ]  # fmt: skip
    env = doc["environment"]
    assert set(env["backends"]) == {"tensorflow", "jax"}
    assert env["backends"]["jax"]["jax"] and env["backends"]["tensorflow"]["tensorflow"]
    assert doc["config"]["backends"] == ["tensorflow", "jax"]
    assert doc["notes"][0].startswith(
        "--backends: every variant on jax is compared with tensorflow (kind cross-backend) "
        "with atol 1e-05, rtol 1.3e-06"
    )


@needs_jax
def test_backend_jax_runs_in_a_worker_here(runner, tf_keras):
    # TensorFlow's Keras is loaded in this test process: JAX must run in a worker.
    result = run(runner, "compare", "--backend", "jax", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["environment"]["backend"] == "jax"
    assert doc["config"]["backend"] == "jax"
    assert "tensorflow" not in doc["environment"]
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [
        ("time-distributed", "dense"), ("trunk", "oracle"), ("dense", "oracle"),
        ("time-distributed", "oracle"),
    ]  # fmt: skip


@needs_keras2
def test_keras2_is_bitwise_keras3_on_tensorflow(runner):
    result = run(runner, "compare", "--backends", "tensorflow,keras2", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    cross = [c for c in doc["comparisons"] if c["kind"] == "cross-backend"]
    assert len(cross) == 2 and all(c["bitwise_equal"] for c in cross)
    assert doc["environment"]["backends"]["keras2"]["keras"].startswith("2.")


@needs_jax
def test_backends_share_the_first_backends_weights(runner):
    # Keras's seeded glorot_uniform draws other head weights on JAX than on TensorFlow.
    result = run(runner, "compare", "--backends", "tensorflow,jax", "--initializer",
                 "glorot_uniform", "--hidden", "8", "--input", "random", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["notes"][1] == (
        "--backends: jax drew other initial weights than tensorflow (Keras's seeded random "
        "initializers differ per backend), so it ran from tensorflow's weights"
    )
    cross = [c for c in doc["comparisons"] if c["kind"] == "cross-backend"]
    assert len(cross) == 2 and all(c["max_abs_diff"] < 1e-6 for c in cross)


def _save(runner, path, *extra):
    result = run(runner, "compare", "--quiet", "--input", "random", "--grad",
                 "--save-arrays", str(path), *extra)  # fmt: skip
    assert result.exit_code == 0, result.output


def test_baseline_same_machine_is_bitwise(runner, tmp_path):
    base = tmp_path / "base.npz"
    _save(runner, base)
    with np.load(base, allow_pickle=False) as data:
        report = json.loads(data["meta/report.json"].tobytes())["report"]
        config, env = report["config"], report["environment"]
    assert config["hidden"] == 5 and config["input"] == "random"
    assert env["backend"] == "tensorflow"
    result = run(runner, "compare", "--input", "random", "--grad", "--baseline", str(base),
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    found = [(c["a"], c["b"], c["quantity"]) for c in doc["comparisons"] if c["kind"] == "baseline"]
    quantities = ["head.bias", "head.kernel", "input", "trunk.bias", "trunk.kernel",
                  "trunk.recurrent_kernel"]  # fmt: skip
    assert found == [
        *[("dense", "dense@baseline", q) for q in quantities],
        *[("time-distributed", "time-distributed@baseline", q) for q in quantities],
        ("dense", "dense@baseline", "output"),
        ("time-distributed", "time-distributed@baseline", "output"),
    ]
    assert all(c["bitwise_equal"] for c in doc["comparisons"] if c["kind"] == "baseline")
    assert doc["notes"][-2].startswith(f"--baseline: 14 comparison(s) against {base} (TensorFlow")
    assert doc["notes"][-1].startswith("--baseline: the model started from the baseline's weights")


def test_baseline_refuses_another_configuration(runner, tmp_path):
    base = tmp_path / "base.npz"
    _save(runner, base)
    result = run(runner, "compare", "--input", "random", "--hidden", "8", "--seed", "3",
                 "--baseline", str(base))  # fmt: skip
    assert result.exit_code == 2
    assert result.output == (
        f"tdcheck: error: --baseline: {str(base)!r} was made with another configuration: "
        "hidden (5 vs 8); seed (0 vs 3)\n"
    )
    result = run(runner, "compare", "--baseline", str(base))  # ones, not random
    assert result.exit_code == 2
    assert "was made from another input (its values differ: 12 of 12 elements)" in result.output


def test_baseline_refuses_files_that_are_not_archives(runner, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    result = run(runner, "compare", "--baseline", str(junk))
    assert result.exit_code == 2
    assert "is not an archive written by --save-arrays" in result.output
    bare = tmp_path / "bare.npz"
    np.savez(bare, input=np.ones((1, 3, 4), np.float32))
    result = run(runner, "compare", "--baseline", str(bare))
    assert result.exit_code == 2
    assert "has no meta/report.json" in result.output
    result = run(runner, "compare", "--baseline", str(tmp_path / "missing.npz"))
    assert result.exit_code == 2
    assert "--baseline: no such file" in result.output


def test_baseline_judges_a_changed_output(runner, tmp_path):
    base = tmp_path / "base.npz"
    _save(runner, base)
    with np.load(base, allow_pickle=False) as data:
        arrays = dict(data)
    arrays["outputs/dense"] = arrays["outputs/dense"] + np.float32(1e-3)
    np.savez(base, **arrays)
    result = run(
        runner, "compare", "--input", "random", "--baseline", str(base), "--format", "json"
    )
    assert result.exit_code == 1
    doc = json.loads(result.output)
    (bad,) = [c for c in doc["comparisons"] if not c["passed"]]
    assert (bad["kind"], bad["a"], bad["b"]) == ("baseline", "dense", "dense@baseline")
    assert doc["verdict"].startswith(  # was: "(the variants disagree)"
        "NOT EQUIVALENT: 1 of 6 comparisons failed (this run disagrees with the baseline); "
        "worst dense vs dense@baseline at [0, "
    )
    assert (bad["mismatched"], bad["total"]) == (6, 6)
    assert bad["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)


@needs_jax
def test_baseline_from_tensorflow_judged_on_jax(runner, tmp_path, tf_keras):
    base = tmp_path / "base.npz"
    _save(runner, base)
    result = run(runner, "compare", "--input", "random", "--grad", "--backend", "jax",
                 "--baseline", str(base), "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    judged = [c for c in doc["comparisons"] if c["kind"] == "baseline"]
    assert len(judged) == 14  # 2 outputs, 2 x 6 gradients
    assert not all(c["bitwise_equal"] for c in judged)  # another backend's kernels
    assert all(c["passed"] for c in judged)
    assert all(c["max_abs_diff"] < 1e-7 for c in judged if c["quantity"] in ("output", "input"))


@needs_jax
def test_training_on_jax_against_tensorflow(runner):
    result = run(runner, "compare", "--backends", "tensorflow,jax", "--train-steps", "3",
                 "--optimizer", "adam", "--input", "random", "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    trained = [(c["a"], c["b"]) for c in doc["comparisons"]
               if c["kind"] == "cross-backend" and c["quantity"] == "trained output"]  # fmt: skip
    assert trained == [
        ("dense@jax", "dense@tensorflow"), ("time-distributed@jax", "time-distributed@tensorflow"),
    ]  # fmt: skip
    jax_own = [c for c in doc["comparisons"] if c["a"] == "time-distributed@jax"
               and c["kind"] in ("trained-weights", "trained-output")]  # fmt: skip
    assert len(jax_own) == 6  # 3 trunk + 2 head weights + the trained output
    assert all(c["passed"] for c in doc["comparisons"])
    assert len(doc["training"]["losses"]["dense"]) == 3


@needs_jax
def test_sweep_backend_axis_reuses_one_worker(runner, tf_keras):
    result = run(runner, "sweep", "--backend", "tensorflow,jax", "--hidden", "4,6",
                 "--format", "json", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASSED: 4 passed, 0 failed, 0 errored of 4 cases")
    result = run(runner, "sweep", "--backend", "tensorflow,jax", "--hidden", "4,6",
                 "--format", "json")  # fmt: skip
    doc = json.loads(result.output)
    assert [c["name"] for c in doc["cases"]] == [
        "lstm4-f4-u2-s3-b1-float32-dense+time-distributed-backend=tensorflow",
        "lstm6-f4-u2-s3-b1-float32-dense+time-distributed-backend=tensorflow",
        "lstm4-f4-u2-s3-b1-float32-dense+time-distributed-backend=jax",
        "lstm6-f4-u2-s3-b1-float32-dense+time-distributed-backend=jax",
    ]
    assert set(doc["environment"]["backends"]) == {"tensorflow", "jax"}
    assert doc["environment"]["backends"]["jax"]["backend"] == "jax"


def test_worker_runner_reuses_one_process_per_engine(monkeypatch):
    import numpy as np

    from tdcheck.commands import backends
    from tdcheck.commands.compare import prepare

    started = []

    class FakeWorker:
        def __init__(self, engine):
            started.append(engine)
            self.engine = engine

        def submit(self, cfg, x):
            self.cfg = cfg

        def result(self):
            return self.cfg.hidden

        def close(self, abort=False):
            started.append(f"closed {self.engine}")

    monkeypatch.setattr("tdcheck.runners.engine_runner.Worker", FakeWorker)
    monkeypatch.setattr("tdcheck.engines.base.can_load_here", lambda name: False)
    monkeypatch.setattr("tdcheck.engines.base.installed", lambda name: True)
    with backends.EngineRunner() as runner:
        got = []
        for backend in ("jax", "torch", "jax", "torch"):
            cfg, x = prepare(backend=backend, hidden=len(got) + 1)
            got.append(runner.run(cfg, x))
    assert got == [1, 2, 3, 4]
    assert started == ["jax", "torch", "closed jax", "closed torch"]
    assert isinstance(x, np.ndarray)


@needs_jax
def test_baseline_judges_every_backend_of_a_backends_run(runner, tmp_path, tf_keras):
    base = tmp_path / "base.npz"
    _save(runner, base)
    result = run(runner, "compare", "--input", "random", "--backends", "tensorflow,jax",
                 "--baseline", str(base), "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    judged = [(c["a"], c["b"]) for c in doc["comparisons"]
              if c["kind"] == "baseline" and c["quantity"] == "output"]  # fmt: skip
    assert judged == [
        ("dense@tensorflow", "dense@baseline"),
        ("time-distributed@tensorflow", "time-distributed@baseline"),
        ("dense@jax", "dense@baseline"),
        ("time-distributed@jax", "time-distributed@baseline"),
    ]
