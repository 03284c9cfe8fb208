"""The exit-code contract under hostile input (issue 17): one line, exit 2, nothing clobbered.

Classes: names holding control characters, values a model cannot take, baselines whose
weights are broken, shards of different runs, output paths (links, pipes, full disks,
outputs that are inputs), the Python API's argument types, unreadable package metadata.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

import tdcheck
from tdcheck import files
from tdcheck.cli import cli
from tdcheck.commands.sweep import CaseResult, SweepResult, plan_sweep
from tdcheck.core import baseline
from tdcheck.core.config import CompareConfig
from tdcheck.core.grid import fingerprint_differences
from tdcheck.core.inputs import check_input_values
from tdcheck.errors import ConfigError, EnvironmentProblem, one_line


def run(runner, *args, env=None):
    return runner.invoke(cli, list(args), catch_exceptions=False,
                         env={"COLUMNS": "200", **(env or {})})  # fmt: skip


def one_line_error(result, needle):
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("tdcheck: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr


# -- names with control characters -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "a\nb.keras"],
        ["compare", "--input", "a\nb.npy"],
        ["merge", "a\nb.json"],
        ["models", "a\nb.keras", "c.keras"],
        ["sweep", "--input", "a\rb\x1b[31m.npy", "--list"],
    ],
)
def test_a_missing_file_whose_name_holds_a_newline_is_one_line(runner, args):
    result = run(runner, *args)
    assert result.exit_code == 2, result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("tdcheck: error: "), result.stderr
    assert "a\\nb" in errors[0] or "a\\rb\\x1b[31m" in errors[0]
    assert "\x1b" not in result.stderr


def test_every_error_message_is_one_line():
    for char in ["\n", "\r", "\x00", "\x1b", "\x7f", "\u2028", "\t"]:
        message = ConfigError(f"x{char}y").message
        assert "\n" not in message and char not in message
        assert message == one_line(f"x{char}y") and message.startswith("x\\")


# -- values a model cannot take ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "needle"),
    [
        (np.nan, "float32", "1 NaN or infinite value(s) (first at [0, 1, 0])"),
        (np.inf, "float64", "1 NaN or infinite value(s)"),
        (1e300, "float32", "do not fit the model's input dtype float32 (largest magnitude 1e+300"),
        (65520.0, "float16", "do not fit the model's input dtype float16"),
        (3.5e38, "bfloat16", "do not fit the model's input dtype bfloat16"),
    ],
)
def test_inputs_a_model_cannot_take_are_refused(value, dtype, needle):
    x = np.zeros((1, 3, 2))
    x[0, 1, 0] = value
    with pytest.raises(ConfigError, match=r"^--input x\.npy: ") as caught:
        check_input_values("--input x.npy", x, dtype)
    assert needle in caught.value.message


def test_inputs_at_the_edge_of_the_dtype_are_taken():
    check_input_values("x", np.array([65504.0, -65504.0]), "float16")
    check_input_values("x", np.array([1e300]), "float64")
    check_input_values("x", np.array([2**40], np.int64), "int32")  # integers: not judged here


def test_models_refuses_nan_and_overflowing_input_and_other_dtypes(saved_models, tmp_path):
    from model_files import random_input

    x = random_input(2, 5)
    x[0, 1, 2] = np.nan
    with pytest.raises(ConfigError, match=r"inputs\[0\]: array for 'x': 1 NaN"):
        tdcheck.compare_models(saved_models["functional"], saved_models["functional"], x)
    big = random_input(2, 5).astype(np.float64)
    big[1, 0, 0] = 1e300
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(ConfigError, match="do not fit the model's input dtype float32"):
        tdcheck.compare_models(saved_models["functional"], saved_models["functional"],
                               str(tmp_path / "big.npy"))  # fmt: skip

    import keras

    i = keras.Input((None, 4), dtype="float64", name="x")
    other = keras.Model(i, keras.layers.TimeDistributed(keras.layers.Dense(3), name="td")(i))
    with pytest.raises(ConfigError, match="inputs of different dtypes: float32 vs float64"):
        tdcheck.compare_models(saved_models["functional"], other)


# -- baselines whose weights are broken ------------------------------------------------------


def _npy(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _archive(path, weights):
    meta = {"report": {"config": {"hidden": 3}, "environment": {"backend": "tensorflow"}}}
    members = {
        "input.npy": _npy(np.ones((1, 2, 4), np.float32)),
        "outputs/dense.npy": _npy(np.zeros((1, 2, 2), np.float32)),
        "meta/report.json.npy": _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)),
        **{f"{k}.npy": _npy(v) for k, v in weights.items()},
    }
    with zipfile.ZipFile(path, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_baseline_with_non_finite_weights_is_blamed_itself(tmp_path, bad):
    kernel = np.ones((3, 2), np.float32)
    kernel[2, 1] = bad
    path = _archive(tmp_path / "b.npz", {"weights/dense/kernel": kernel})
    with pytest.raises(ConfigError) as caught:
        baseline.load(path)
    assert caught.value.message == (
        f"--baseline: {path!r} is broken: its weights/dense/kernel holds 1 NaN or infinite "
        "value(s) of 6; a run cannot start from these weights"
    )


def test_weights_of_another_shape_are_exit_2_naming_the_key():
    from tdcheck.engines.base import _fit

    with pytest.raises(ConfigError, match=r"weights/rnn/kernel has shape \(3, 3\), the layer's "
                                          r"weight has \(4, 20\)"):  # fmt: skip
        _fit("weights/rnn/kernel", np.zeros((3, 3)), np.zeros((4, 20), np.float32))
    fitted = _fit("weights/dense/bias", np.arange(4.0).reshape(2, 2), np.zeros(4, np.float32))
    assert fitted.shape == (4,) and fitted.dtype == np.float32


# -- shards of different runs ----------------------------------------------------------------


def _report(path, shard, env_vars, environment, monkeypatch):
    with monkeypatch.context() as patch:
        for name, value in env_vars.items():
            patch.setenv(name, value)
        plan = plan_sweep({"hidden": "3,4"}, CompareConfig(), shard=(shard, 2))
    result = SweepResult(
        cases=[CaseResult(c.index, c.name, {}, "passed", 0.5) for c in plan.cases],
        grid_size=plan.grid_size, shard=plan.shard, fingerprint=plan.fingerprint,
        plan=plan.plan_dict(), environment=environment,
    )  # fmt: skip
    path.write_text(result.to_json())
    return str(path), plan.fingerprint


def test_the_fingerprint_holds_the_backend_that_runs(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    plain = plan_sweep({"hidden": "3,4"}, CompareConfig()).fingerprint
    assert plain["axes"]["backend"] == ["tensorflow"]
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    jax = plan_sweep({"hidden": "3,4"}, CompareConfig()).fingerprint
    assert jax["axes"]["backend"] == ["jax"]
    assert fingerprint_differences(plain, jax) == ["axes.backend"]
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    onednn = plan_sweep({"hidden": "3,4"}, CompareConfig()).fingerprint
    assert fingerprint_differences(jax, onednn) == ["environment.TF_ENABLE_ONEDNN_OPTS"]


def test_merge_refuses_shards_run_on_different_backends(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    env = {"backend": "tensorflow", "keras": "3.15.1", "device": "CPU:0"}
    a, _ = _report(tmp_path / "a.json", 1, {}, env, monkeypatch)
    b, _ = _report(tmp_path / "b.json", 2, {"KERAS_BACKEND": "jax"}, env, monkeypatch)
    one_line_error(run(runner, "merge", a, b), "(they differ in axes.backend)")
    c, _ = _report(tmp_path / "c.json", 2, {}, {**env, "device": "GPU:0"}, monkeypatch)
    one_line_error(run(runner, "merge", a, c), 'ran differently (device: "CPU:0" vs "GPU:0")')
    d, _ = _report(tmp_path / "d.json", 2, {}, {**env, "keras": "3.9.0"}, monkeypatch)
    one_line_error(run(runner, "merge", a, d), "ran differently (keras:")
    e, _ = _report(tmp_path / "e.json", 2, {}, env, monkeypatch)
    assert run(runner, "merge", a, e, "-q").exit_code == 0


def test_keras_2_is_not_blamed_on_keras_backend(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    cfg = CompareConfig(keras=2).validated()
    assert (cfg.backend, cfg.engine) == ("tensorflow", "keras2")
    with pytest.raises(ConfigError, match="got --backend jax"):
        CompareConfig(keras=2, backend="jax").validated()


# -- output paths ------------------------------------------------------------------------------


def test_model_outputs_must_be_regular_files(tmp_path):
    fifo = tmp_path / "out.keras"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/null", "/dev/stdout"):
        with pytest.raises(ConfigError, match="is a device or a pipe"):
            files.check_file_output(path, "OUT")
    link = tmp_path / "link.keras"
    link.symlink_to(tmp_path / "missing-target.keras")
    files.check_file_output(str(link), "OUT")  # a dangling link: its target is created
    link2 = tmp_path / "far.keras"
    link2.symlink_to(tmp_path / "no" / "such" / "x.keras")
    with pytest.raises(ConfigError, match="does not exist"):
        files.check_file_output(str(link2), "OUT")


def test_atomic_path_writes_through_a_link_and_keeps_it(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.keras"
    target.write_text("old")
    link = tmp_path / "model.keras"
    link.symlink_to(target)
    with files.atomic_path(str(link), suffix=".keras") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path / "real")  # beside the target
        with open(tmp, "w") as handle:
            handle.write("new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "real")) == ["model.keras"]
    dangling = tmp_path / "d.keras"
    dangling.symlink_to(tmp_path / "real" / "created.keras")
    with files.atomic_path(str(dangling)) as tmp, open(tmp, "w") as handle:
        handle.write("x")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.keras").read_text() == "x"


def test_a_full_disk_leaves_no_temp_folder_and_the_target_untouched(tmp_path):
    target = tmp_path / "out.keras"
    target.write_text("before")
    made = []
    full = pytest.raises(EnvironmentProblem, match=r"cannot write .*out.keras.* \(No space left")
    with full, files.atomic_path(str(target), suffix=".keras"):
        work = tempfile.mkdtemp()  # what Keras does for a model's assets
        os.makedirs(os.path.join(work, "assets"))
        made.append(work)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert not os.path.exists(made[0])
    assert target.read_text() == "before"
    assert sorted(os.listdir(tmp_path)) == ["out.keras"]
    assert tempfile.tempdir is None or "tdcheck-scratch" not in tempfile.tempdir


def test_an_output_that_is_an_input_is_refused_before_running(tmp_path, runner):
    base = tmp_path / "b.npz"
    base.write_bytes(b"PK")
    one_line_error(run(runner, "compare", "--baseline", str(base), "--save-arrays", str(base)),
                   "--save-arrays and --baseline name the same file")  # fmt: skip
    alias = tmp_path / "alias.npz"
    alias.symlink_to(base)
    one_line_error(run(runner, "compare", "--baseline", str(base), "--save-arrays", str(alias)),
                   "--save-arrays and --baseline name the same file")  # fmt: skip
    assert base.read_bytes() == b"PK"


def test_a_fifo_out_is_refused_before_tensorflow_loads(tmp_path):
    fifo = tmp_path / "out.keras"
    os.mkfifo(fifo)
    code = (
        "import sys\nfrom tdcheck.cli import cli\n"
        f"rc = cli.main(['rewrite', 'in.keras', {str(fifo)!r}], standalone_mode=False)\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO_TF', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"tdcheck: error: OUT: {str(fifo)!r} is a device or a pipe; a model is written to a "
        "regular file",
        "NO_TF",
    ]


# -- the Python API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tdcheck.compare(initializer=0.1), "compare(): initializer must be str, not float"),
        (lambda: tdcheck.compare(hidden="5"), "compare(): hidden must be int, not str"),
        (lambda: tdcheck.compare(seq=True), "compare(): seq must be int or None, not bool"),
        (lambda: tdcheck.compare(nope=1), "compare() got an unexpected keyword argument 'nope'"),
        (lambda: tdcheck.compare(5), "compare(): config must be a CompareConfig or None"),
        (
            lambda: tdcheck.assert_equivalent(123, 456),
            "assert_equivalent(): a must be a Keras model or the path of a saved model",
        ),
        (lambda: tdcheck.compare_models("a.keras", 4.5), "compare_models(): b must be a Keras"),
        (lambda: tdcheck.compare_models("a", "b", inputs=5), "inputs must be a path, an array"),
        (lambda: tdcheck.compare_models("a", "b", [3]), "inputs[0] must be a path, an array"),
        (lambda: tdcheck.compare_models("a", "b", checks="3"), "checks must be int, not str"),
        (lambda: tdcheck.rewrite(123), "rewrite(): model must be a Keras model"),
        (lambda: tdcheck.rewrite("a.keras", 7), "rewrite(): out must be a file path"),
        (lambda: tdcheck.rewrite("a.keras", seq="5"), "seq must be a list of whole numbers"),
        (lambda: tdcheck.scan(0), "scan(): path must be a file path (str or os.PathLike), not int"),
        (lambda: tdcheck.scan(b"m.keras"), "scan(): path must be a file path"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(call, message):
    with pytest.raises(TypeError) as caught:
        call()
    assert message in str(caught.value), str(caught.value)


def test_scan_of_a_descriptor_number_leaves_the_callers_descriptors_alone():
    read, write = os.pipe()
    try:
        for fd in (0, read):
            with pytest.raises(TypeError):
                tdcheck.scan(fd)
        os.fstat(0)
        os.write(write, b"still open")
        assert os.read(read, 10) == b"still open"
    finally:
        os.close(read)
        os.close(write)


def test_empty_paths_are_value_errors():
    with pytest.raises(ValueError, match=r"scan\(\): path is an empty path"):
        tdcheck.scan("")


# -- package metadata --------------------------------------------------------------------------


def test_env_reports_unreadable_package_metadata(tmp_path, monkeypatch):
    from tdcheck.commands.env import other_backends

    info = tmp_path / "jax-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: jax\nVersion: 9.\xff\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert other_backends()["jax"] == "unreadable (UnicodeDecodeError)"


def test_control_characters_in_saved_names_cannot_break_a_report(tmp_path, runner):
    config = {"class_name": "Sequential", "config": {"name": "outer\x07", "layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td\x1b[31mRED\nsecond\r", "layer": {
            "class_name": "Dense", "config": {"name": "d", "units": 3}}}}]}}  # fmt: skip
    path = tmp_path / "ctrl.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": {"not": "a string"}}))
    for fmt in ("table", "markdown"):
        result = run(runner, "scan", "--format", fmt, str(path))
        assert result.exit_code == 1, result.output
        assert "\x1b" not in result.stdout and "\r" not in result.stdout
        assert "\x07" not in result.stdout
        assert "td\\x1b[31mRED\\nsecond\\r" in result.stdout
    doc = json.loads(run(runner, "scan", "--format", "json", str(path)).stdout)
    (layer,) = doc["files"][0]["time_distributed"]
    assert layer["name"] == "td\x1b[31mRED\nsecond\r"  # JSON keeps the saved name, escaped
    assert doc["files"][0]["keras_version"] is None


def test_an_h5_file_the_hdf5_library_loops_on_is_stopped(saved_models, runner, monkeypatch):
    """tests/data/hdf5_reader_loops.h5 is a Keras .h5 with a few flipped bytes (found by
    tests/test_fuzz_files.py): reading its model_config attribute never returns. scan reads
    .h5 attributes in a child process and stops it (H5_READ_SECONDS)."""
    from pathlib import Path

    from tdcheck.core import model_file

    monkeypatch.setattr(model_file, "H5_READ_SECONDS", 2.0)
    looping = str(Path(__file__).parent / "data" / "hdf5_reader_loops.h5")
    result = run(runner, "scan", "--format", "json", looping, saved_models["h5"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: {looping}: reading the HDF5 file did not finish in 2 s (corrupt?)\n"
    )
    files_ = json.loads(result.stdout)["files"]
    assert [f["error"] is None for f in files_] == [False, True]
    assert files_[1]["counts"]["rewritable"] == 1
