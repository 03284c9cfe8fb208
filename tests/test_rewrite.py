"""``tdcheck rewrite``: every rule-table entry on a real model, the predict bug, writing."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import struct

import model_files
import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.errors import ConfigError


def run(runner, *args, columns="200"):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": columns})


def _bn(keras):
    layer = keras.layers.BatchNormalization()
    layer.build((None, 4))
    rng = np.random.default_rng(0)
    gamma, beta, mean = (rng.standard_normal(4).astype("float32") for _ in range(3))
    layer.set_weights([gamma, beta, mean, rng.uniform(0.5, 2, 4).astype("float32")])
    return layer


# class -> (layer factory, feature shape after (batch, time)); every rewritable and
# inference-only entry of tdcheck.core.rules (test_scan checks that the lists match).
REWRITE_CASES = {
    "Dense": (lambda k: k.layers.Dense(3, activation="tanh"), (4,)),
    "EinsumDense": (lambda k: k.layers.EinsumDense("ab,bc->ac", output_shape=3, bias_axes="c"),
                    (4,)),
    "Activation": (lambda k: k.layers.Activation("relu"), (4,)),
    "ReLU": (lambda k: k.layers.ReLU(max_value=0.5), (4,)),
    "LeakyReLU": (lambda k: k.layers.LeakyReLU(negative_slope=0.2), (4,)),
    "ELU": (lambda k: k.layers.ELU(), (4,)),
    "Identity": (lambda k: k.layers.Identity(), (4,)),
    "Rescaling": (lambda k: k.layers.Rescaling(2.0, offset=-1.0), (4,)),
    "Softmax": (lambda k: k.layers.Softmax(axis=1), (2, 4)),
    "LayerNormalization": (lambda k: k.layers.LayerNormalization(axis=[1, 2]), (2, 4)),
    "UnitNormalization": (lambda k: k.layers.UnitNormalization(), (4,)),
    "Dropout": (lambda k: k.layers.Dropout(0.5), (4,)),
    "AlphaDropout": (lambda k: k.layers.AlphaDropout(0.5), (4,)),
    "GaussianNoise": (lambda k: k.layers.GaussianNoise(0.5), (4,)),
    "GaussianDropout": (lambda k: k.layers.GaussianDropout(0.5), (4,)),
    "BatchNormalization": (_bn, (4,)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REWRITE_CASES))
def test_rule_entry_rewrites_to_the_same_outputs(tf_keras, name):
    import tdcheck
    from tdcheck.core.rules import RULES

    keras = tf_keras[1]
    make, features = REWRITE_CASES[name]
    x = keras.Input((None, *features))
    model = keras.Model(x, keras.layers.TimeDistributed(make(keras), name="td")(x), name="m")
    result = tdcheck.rewrite(model, checks=1, seq=(3,), batch=2, timing=False,
                             inference_only=True)  # fmt: skip
    assert result.passed, result.verdict()
    assert [t.wrapped_class for t in result.replaced] == [name]
    assert result.replaced[0].verdict.verdict == RULES[name].verdict
    layer = result.model.get_layer("td")
    assert type(layer).__name__ == name  # the wrapper is gone, the name is kept
    # the eager call, the float64 clones (same computation), predict
    label = "#1 " + "x".join(map(str, (2, 3, *features)))
    assert [c.check for c in result.comparisons] == [f"call {label}", f"float64 {label}",
                                                     f"predict {label}"]  # fmt: skip
    assert all(c.stats.total > 0 for c in result.comparisons)


def test_activity_regularizer_changes_the_training_loss_so_needs_the_opt_in(tf_keras):
    import tdcheck

    keras = tf_keras[1]
    x = keras.Input((None, 4))
    dense = keras.layers.Dense(3, activity_regularizer="l1")
    model = keras.Model(x, keras.layers.TimeDistributed(dense, name="td")(x))
    assert tdcheck.rewrite(model, checks=1, timing=False).replaced == []
    result = tdcheck.rewrite(model, checks=1, timing=False, inference_only=True)
    assert [t.name for t in result.replaced] == ["td"] and result.passed
    xs = model_files.random_input(2, 3)
    model(xs), result.model(xs)
    assert (len(model.losses), len(result.model.losses)) == (0, 1)  # what training would see


def test_inference_only_layers_need_the_opt_in(tf_keras):
    import tdcheck

    keras = tf_keras[1]
    x = keras.Input((None, 4))
    model = keras.Model(x, keras.layers.TimeDistributed(_bn(keras), name="td")(x))
    result = tdcheck.rewrite(model, checks=1, timing=False)
    assert result.replaced == []
    assert result.verdict() == (
        "NOTHING TO REWRITE: 1 TimeDistributed layer, none rewritable; nothing written"
    )


def test_the_original_predict_gives_the_wrong_shape_and_the_rewrite_does_not(
    saved_models, tf_keras, tmp_path
):
    import tdcheck

    out = str(tmp_path / "fast.keras")
    result = tdcheck.rewrite(saved_models["functional"], out, checks=2, seq=(5, 7), batch=2,
                             timing=False)  # fmt: skip
    assert result.findings == [
        "model.predict gives the WRONG SHAPE on a new size of axis 1 (5 -> 7), input "
        "(2, 7, 4): (2, 2, 3) instead of (2, 7, 3) for output 'td'"
    ]
    assert "the rewritten model's predict gives the right shapes on every input" in result.notes
    assert result.passed and result.written
    keras = tf_keras[1]
    fast = keras.models.load_model(out)
    assert [type(layer).__name__ for layer in fast.layers] == ["InputLayer", "LSTM", "Dense"]
    original = keras.models.load_model(saved_models["functional"])
    for model, shapes in ((original, [(2, 5, 3), (2, 2, 3)]), (fast, [(2, 5, 3), (2, 7, 3)])):
        got = [model.predict(model_files.random_input(2, s), verbose=0).shape for s in (5, 7)]
        assert got == shapes


def test_the_original_predict_raises_when_batch_exceeds_the_new_length(saved_models):
    import tdcheck

    result = tdcheck.rewrite(saved_models["functional"], checks=2, seq=(5, 3), batch=4,
                             timing=False)  # fmt: skip
    (finding,) = result.findings
    assert finding.startswith(
        "model.predict raises on a new size of axis 1 (5 -> 3), input (4, 3, 4): "
        "InvalidArgumentError"
    )
    assert result.passed


@pytest.mark.parametrize(
    ("key", "kept_classes"),
    [("sequential", ["Dense", "Dense"]), ("nested", ["InputLayer", "Functional"]),
     ("masked", ["InputLayer", "Masking", "LSTM", "Dense", "LSTM"]), ("h5", None),
     ("two", ["InputLayer", "Dense", "InputLayer", "LayerNormalization", "Add"])],
)  # fmt: skip
def test_models_of_every_shape(saved_models, tf_keras, tmp_path, key, kept_classes):
    import tdcheck

    out = str(tmp_path / "out.keras")
    result = tdcheck.rewrite(saved_models[key], out, checks=2, timing=False)
    assert result.passed, result.verdict()
    assert result.written and os.path.isfile(out)
    assert result.before["params"] == result.after["params"]
    assert result.after["time_distributed"] == 0
    model = tf_keras[1].models.load_model(out)
    if kept_classes is not None:
        assert [type(layer).__name__ for layer in model.layers] == kept_classes
    assert result.comparisons[-1].check == "reloaded OUT"
    # LayerNormalization over the whole tensor rounds differently (within float32 tolerance)
    bitwise = [c.stats.bitwise_equal for c in result.comparisons if c.check[:7] != "float64"]
    assert all(bitwise) or (key == "two" and all(c.passed for c in result.comparisons))
    assert all(c.passed for c in result.comparisons)  # float64: agree to float64 rounding


def test_nested_layer_is_rewritten_inside_the_sub_model(saved_models, tf_keras):
    import tdcheck

    result = tdcheck.rewrite(saved_models["nested"], checks=1, timing=False)
    assert [t.path for t in result.replaced] == ["outer/inner/td_1"]
    inner = result.model.get_layer("inner")
    assert [type(layer).__name__ for layer in inner.layers] == ["InputLayer", "Dense"]


def test_two_outputs_are_each_judged(saved_models):
    import tdcheck

    result = tdcheck.rewrite(saved_models["two"], checks=1, timing=False)
    assert [c.output for c in result.comparisons[:2]] == ["norm", "sum"]


def test_cli_report_leads_with_the_finding(runner, saved_models, tmp_path):
    out = tmp_path / "fast.keras"
    result = run(runner, "rewrite", saved_models["functional"], str(out), "--checks", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"tdcheck rewrite: {saved_models['functional']} -> {out}"
    assert lines[1] == (
        "FINDING: model.predict gives the WRONG SHAPE on a new size of axis 1 (5 -> 7), "
        "input (2, 7, 4): (2, 2, 3) instead of (2, 7, 3) for output 'td'"
    )
    text = result.stdout
    assert next(line for line in lines if line.startswith(" outer/td")).split() == [
        "outer/td", "TimeDistributed(Dense)", "Dense", "(None,", "None,", "4)",
    ]  # fmt: skip
    for expected in ("call #1 2x5x4",
                     "predict #2 2x7x4", "reloaded OUT", "parameters", "159",
                     "predict, first call", "speed-up"):  # fmt: skip
        assert expected in text, expected
    verdict = re.search(r"1 TimeDistributed layer rewritten\. .*", " ".join(text.split()))
    assert verdict is not None  # a long temp path wraps the line
    assert re.fullmatch(  # the float64 clones differ by float64 rounding, or not at all
        r"1 TimeDistributed layer rewritten\. EQUIVALENT: rewritten and original are bitwise "
        r"identical on all 5 float32 checks; the float64 clones (agree to [0-9.e-]+|are bitwise "
        r"identical too) on all 2 checks; written to " + re.escape(str(out)) + " note: .*",
        verdict.group(0),
    ), verdict.group(0)
    assert result.stderr == ""
    assert out.is_file()


def test_cli_json_dry_run_writes_nothing(runner, saved_models, tmp_path):
    out = tmp_path / "fast.keras"
    result = run(runner, "rewrite", saved_models["sequential"], str(out), "--dry-run",
                 "--format", "json", "--checks", "1")  # fmt: skip
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert (doc["written"], doc["dry_run"], doc["passed"]) == (False, True, True)
    assert [t["path"] for t in doc["replaced"]] == ["seq/td_a", "seq/td_b"]
    assert set(doc["before"]["timing"]) == {"call_s", "predict_first_s", "predict_steady_s"}
    assert doc["before"]["params"] == doc["after"]["params"] == 27
    assert doc["verdict"].endswith("; dry run, nothing written")
    assert not out.exists()


def test_failed_verification_writes_nothing_unless_forced(runner, saved_models, tmp_path,
                                                          monkeypatch):  # fmt: skip
    from tdcheck.engines import keras_rewrite

    copy = keras_rewrite.copy_weights

    def off_by_a_little(old, new):
        copy(old, new)
        layer = new.get_layer("td")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, bias + np.float32(1e-3)])

    monkeypatch.setattr(keras_rewrite, "copy_weights", off_by_a_little)
    out = tmp_path / "bad.keras"
    args = ["rewrite", saved_models["functional"], str(out), "--checks", "1", "--no-timing"]
    result = run(runner, *args)
    assert result.exit_code == 1
    assert not out.exists()
    assert "NOT EQUIVALENT: 3 of 3 checks failed; worst " in result.stdout
    assert "float64 #1 2x5x4" in result.stdout  # a different computation, not rounding
    assert "NOT written (--force writes anyway)" in result.stdout
    assert "30/30 mismatched" in result.stdout
    forced = run(runner, *args, "--force")
    assert forced.exit_code == 1 and out.is_file()


def test_nothing_to_rewrite_exits_0_and_writes_nothing(runner, saved_models, tmp_path):
    out = tmp_path / "same.keras"
    result = run(runner, "rewrite", saved_models["conv"], str(out), "--checks", "1")
    assert result.exit_code == 0
    assert "NOTHING TO REWRITE: 1 TimeDistributed layer, none rewritable; nothing written" in (
        result.stdout
    )
    assert "kept: convolves the spatial axes" in result.stdout
    assert not out.exists()


def test_user_inputs(runner, saved_models, tmp_path):
    npz = tmp_path / "batch.npz"
    np.savez(npz, x=model_files.random_input(3, 6))
    result = run(runner, "rewrite", saved_models["functional"], "--dry-run", "--checks", "1",
                 "--input", str(npz), "--format", "json", "--no-timing")  # fmt: skip
    assert result.exit_code == 0, result.output
    checks = [c["check"] for c in json.loads(result.stdout)["comparisons"]]
    assert "call input batch.npz" in checks
    assert json.loads(result.stdout)["comparisons"][1]["shape_a"] == [3, 6, 3]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)),
         "holds object values, not numbers a model can take"),
        (lambda p: np.save(p, np.zeros((2, 3, 5), "float32")),
         "array for 'x' has shape (2, 3, 5), the model expects (None, None, 4)"),
        (lambda p: np.save(p, np.array([[["a"] * 4] * 3] * 2)),
         "holds <U1 values, not numbers a model can take"),
        (lambda p: np.save(p, np.zeros((2, 3, 4), "complex64")),
         "holds complex64 values, not numbers a model can take"),
        (lambda p: np.save(p, np.zeros((2, 0, 4), "float32")),
         "array for 'x' has shape (2, 0, 4): no values"),
        (lambda p: _huge_npy(p),
         "an array of shape (100000, 100000, 4) is more than the 50,000,000 elements "
         "tdcheck loads"),
    ],
)  # fmt: skip
def test_bad_user_inputs_exit_2(runner, saved_models, tmp_path, make, message):
    path = str(tmp_path / "x.npy")
    make(path)
    result = run(runner, "rewrite", saved_models["functional"], "--dry-run", "--input", path)
    assert result.exit_code == 2
    assert result.stderr == f"tdcheck: error: --input {path}: {message}\n"


def _huge_npy(path):
    """An .npy whose header claims 4e10 float32 values (149 GiB) in a file of 200 bytes."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 4), }"
    header = header.ljust(117) + "\n"
    with open(path, "wb") as handle:
        handle.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        handle.write(bytes(64))


def test_npz_bomb_is_refused_before_loading(runner, saved_models, tmp_path):
    path = str(tmp_path / "bomb.npz")
    np.savez_compressed(path, x=np.zeros((60, 1_000_000, 1), "float32"))  # 240 MB in 230 kB
    result = run(runner, "rewrite", saved_models["functional"], "--dry-run", "--input", path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: --input {path} (x.npy): an array of shape (60, 1000000, 1) is more "
        "than the 50,000,000 elements tdcheck loads\n"
    )


def test_out_same_as_in_is_refused(runner, saved_models, tmp_path):
    path = str(tmp_path / "model.keras")
    shutil.copy(saved_models["functional"], path)
    before = pathlib.Path(path).read_bytes()
    result = run(runner, "rewrite", path, os.path.join(str(tmp_path), ".", "model.keras"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"tdcheck: error: OUT '{tmp_path}/./model.keras' is IN: ")
    assert pathlib.Path(path).read_bytes() == before


def test_dangling_symlink_out_names_the_missing_folder(runner, saved_models, tmp_path):
    link = tmp_path / "fast.keras"
    link.symlink_to(tmp_path / "gone" / "fast.keras")
    result = run(runner, "rewrite", saved_models["functional"], str(link))
    assert result.exit_code == 2
    assert result.stderr == f"tdcheck: error: OUT: the folder '{tmp_path}/gone' does not exist\n"


def _masked_softmax(keras):
    """Masking -> TD(Softmax): Keras 3.15 itself raises when this model is called."""
    x = keras.Input((None, 4), name="x")
    h = keras.layers.Masking()(x)
    h = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")(h)
    y = keras.layers.TimeDistributed(keras.layers.Softmax(), name="sm")(h)
    return keras.Model(x, keras.layers.LSTM(2, name="last")(y))


def test_an_original_that_raises_is_one_line_exit_2(runner, tf_keras, tmp_path):
    path = str(tmp_path / "broken.keras")
    _masked_softmax(tf_keras[1]).save(path)
    result = run(runner, "rewrite", path, "--dry-run", "--checks", "1", "--no-timing")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"tdcheck: error: the original model ({path}) raises when called on input #1 2x5x4 "
        "(ValueError: "
    )
    assert result.stderr.endswith("; nothing can be checked against it\n")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_h5_compile_settings_keras_cannot_read_are_said_lost(runner, tf_keras, tmp_path):
    keras = tf_keras[1]
    x = keras.Input((None, 4))
    model = keras.Model(x, model_files.td_dense(keras)(x))
    model.compile(optimizer="adam", loss="mse")
    path, out = str(tmp_path / "compiled.h5"), str(tmp_path / "fast.keras")
    with _quiet_legacy_warning():
        model.save(path)
    result = run(runner, "rewrite", path, out, "--checks", "1", "--no-timing", "--quiet")
    assert result.exit_code == 0, result.output
    import tdcheck

    notes = tdcheck.rewrite(path, str(tmp_path / "fast2.keras"), checks=1, timing=False).notes
    assert notes[-1] == (
        "IN's compile settings could not be carried over (ValueError: Could not deserialize "
        "'keras.metrics.mse' because it is not a KerasSaveable subclass); compile OUT before "
        "training"
    )


def _quiet_legacy_warning():
    import warnings

    context = warnings.catch_warnings()
    warnings.simplefilter("ignore")
    return context


@pytest.mark.parametrize(
    ("out", "message"),
    [("fast.h5", "OUT 'fast.h5' must end in .keras (the format Keras rebuilds layers from)"),
     ("missing/fast.keras", "OUT: the folder 'missing' does not exist")],
)  # fmt: skip
def test_bad_out_is_refused_before_loading(runner, saved_models, out, message):
    result = run(runner, "rewrite", saved_models["functional"], out)
    assert result.exit_code == 2
    assert result.stderr == f"tdcheck: error: {message}\n"


def test_out_or_dry_run_is_required(runner, saved_models):
    result = run(runner, "rewrite", saved_models["functional"])
    assert (result.exit_code, result.stderr) == (
        2, "tdcheck: error: give OUT (a .keras path) or --dry-run\n",
    )  # fmt: skip


def test_lambda_needs_unsafe(runner, tf_keras, tmp_path):
    keras = tf_keras[1]
    x = keras.Input((None, 4))
    y = keras.layers.TimeDistributed(keras.layers.Dense(3), name="td")(
        keras.layers.Lambda(lambda t: t * 2.0)(x)
    )
    path = str(tmp_path / "lambda.keras")
    keras.Model(x, y).save(path)
    result = run(runner, "rewrite", path, "--dry-run", "--checks", "1", "--no-timing")
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: {path}: Keras' safe mode refuses to load it (it holds Python code, "
        "e.g. a Lambda layer); pass --unsafe only if you trust the file\n"
    )
    unsafe = run(runner, "rewrite", path, "--dry-run", "--checks", "1", "--no-timing", "--unsafe")
    assert unsafe.exit_code == 0, unsafe.output


def test_subclassed_model_is_a_clear_error(tf_keras):
    import tdcheck

    keras = tf_keras[1]

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.td = keras.layers.TimeDistributed(keras.layers.Dense(3))

        def call(self, x):
            return self.td(x)

    model = Custom()
    model(np.zeros((1, 2, 4), "float32"))
    with pytest.raises(ConfigError) as info:
        tdcheck.rewrite(model, checks=1, timing=False)
    assert "a subclassed model (Custom) has no layer graph tdcheck can rebuild" in str(info.value)


def test_kept_layers_keep_the_bug_without_failing_the_rewrite(tf_keras):
    """TD(Conv2D) and TD(Flatten) stay wrapped, so predict stays wrong on a new length;
    that is the original's problem, not the rewrite's."""
    import tdcheck

    keras = tf_keras[1]
    v = keras.Input((None, 4, 4, 1))
    f = keras.layers.TimeDistributed(keras.layers.Conv2D(2, 3), name="conv")(v)
    f = keras.layers.TimeDistributed(keras.layers.Flatten(), name="flat")(f)
    model = keras.Model(v, keras.layers.TimeDistributed(keras.layers.Dense(3), name="td")(f),
                        name="model")  # fmt: skip
    result = tdcheck.rewrite(model, checks=2, seq=(3, 5), timing=False)
    assert [t.name for t in result.replaced] == ["td"]
    assert [t.name for t in result.kept] == ["conv", "flat"]
    assert result.passed and result.regressions == []
    assert result.findings == [
        "model.predict gives the WRONG SHAPE on a new size of axis 1 (3 -> 5), input "
        "(2, 5, 4, 4, 1): (2, 2, 3) instead of (2, 5, 3) for output 'td'"
    ]
    assert result.notes == [
        "the rewritten model still has the original's problem: " + result.findings[0],
        "OUT keeps 2 TimeDistributed layer(s) on a variable axis (model/conv, model/flat): on "
        "Keras 3.15 its model.predict (and a traced export) on a new size of that axis stays "
        "wrong, as IN's is",
    ]
    assert result.verdict().endswith(
        "; OUT's model.predict on a new input size stays WRONG, as IN's does "
        "(kept TimeDistributed layers)"
    )
    assert [c.check for c in result.comparisons] == [
        "call #1 2x3x4x4x1", "call #2 2x5x4x4x1", "float64 #1 2x3x4x4x1", "float64 #2 2x5x4x4x1",
        "predict #1 2x3x4x4x1",
    ]  # fmt: skip


def test_compile_settings_are_carried_over(tf_keras, tmp_path):
    import tdcheck

    keras = tf_keras[1]
    x = keras.Input((None, 4))
    model = keras.Model(x, model_files.td_dense(keras)(x))
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="mse", metrics=["mae"])
    out = str(tmp_path / "compiled.keras")
    result = tdcheck.rewrite(model, out, checks=1, timing=False)
    assert result.notes[-1] == (
        "compile settings carried over (optimizer settings, loss, metrics); optimizer state not"
    )
    reloaded = keras.models.load_model(out)
    config = reloaded.get_compile_config()
    assert (config["loss"], config["metrics"]) == ("mse", ["mae"])
    assert config["optimizer"]["config"]["learning_rate"] == pytest.approx(0.003)


def test_real_process_has_clean_streams_and_writes_out(saved_models, tmp_path):
    """The console path: pure JSON on stdout, nothing on stderr (no TensorFlow log noise),
    OUT complete even though the process skips the interpreter's teardown."""
    import subprocess
    import sys

    out = tmp_path / "fast.keras"
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TDCHECK_DEBUG")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tdcheck", "rewrite", saved_models["nested"], str(out),
         "--checks", "1", "--no-timing", "--format", "json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["written"] is True
    from tdcheck.core.model_file import read_model_file, time_distributed_layers

    assert time_distributed_layers(read_model_file(str(out)).config) == []


def test_one_sequence_length_warns_that_the_predict_bug_cannot_show(runner, tmp_path):
    missing = str(tmp_path / "missing.keras")
    result = run(runner, "rewrite", missing, "--dry-run", "--seq", "5")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "tdcheck: warning: one --seq length cannot show the predict-on-a-new-length bug; give "
        "two, e.g. --seq 5,7",
        f"tdcheck: error: {missing}: no such file",
    ]


@pytest.mark.parametrize(
    "argv",
    [["rewrite", "in.keras", "out.h5"], ["rewrite", "missing.keras", "--dry-run"],
     ["models", "a.keras", "b.keras", "--seq", "x"], ["models", "missing.keras", "b.keras"],
     ["rewrite", "--help"]],
)  # fmt: skip
def test_usage_errors_never_import_tensorflow(argv):
    from test_subprocess import modules_after

    modules = modules_after(argv)
    assert "click" in modules
    assert "tensorflow" not in modules and "keras" not in modules


def test_progress_steps(saved_models, tmp_path):
    import tdcheck

    steps = []
    out = str(tmp_path / "fast.keras")
    tdcheck.rewrite(saved_models["functional"], out, checks=2, on_step=steps.append)
    assert steps == [
        f"loading {saved_models['functional']}", "rebuilding without TimeDistributed",
        "the float64 clones of both models",
        "the original's predict on each input shape", "checking #1 2x5x4", "checking #2 2x7x4",
        "the rewritten model's predict on each input shape", "the same computation in float64",
        "timing the original at (2, 7, 4)", "timing the rewritten model at (2, 7, 4)",
        f"writing and reloading {out}", "checking the rewritten model's exports",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "alone"),
    [("Conv1D", lambda k: k.layers.Conv1D(2, 2), "raises"),
     ("Flatten", lambda k: k.layers.Flatten(), (2, 60)),
     ("LSTM", lambda k: k.layers.LSTM(2), "raises"),
     ("GlobalAveragePooling1D", lambda k: k.layers.GlobalAveragePooling1D(), "raises"),
     ("Reshape", lambda k: k.layers.Reshape((12,)), "raises")],
)  # fmt: skip
def test_not_rewritable_layers_really_differ_alone(tf_keras, name, make, alone):
    """Evidence for some 'not rewritable' entries: on (batch, time, 3, 4) the layer alone
    refuses the extra axis or computes another shape than under TimeDistributed."""
    from tdcheck.core.rules import NOT_REWRITABLE, RULES

    assert RULES[name].verdict == NOT_REWRITABLE
    keras = tf_keras[1]
    x = np.random.default_rng(0).standard_normal((2, 5, 3, 4)).astype("float32")
    assert keras.layers.TimeDistributed(make(keras))(x).shape[:2] == (2, 5)
    if alone == "raises":
        with pytest.raises(ValueError):
            make(keras)(x)
    else:
        assert tuple(make(keras)(x).shape) == alone


# -- real-world shapes (issue 17) ---------------------------------------------------------


@pytest.fixture(scope="module")
def real_world(tf_keras, tmp_path_factory):
    from tdcheck.engines.tensorflow import quiet

    with quiet():
        return model_files.save_real_world(tf_keras[1], str(tmp_path_factory.mktemp("real")))


def test_random_inputs_give_every_unknown_axis_its_own_sizes():
    from tdcheck.commands.models import random_sets

    specs = [("image", (None, None, None, 3), "float32"), ("text", (None, 8, None), "int32")]
    sets = random_sets(specs, checks=3, seq=(5, 7), batch=2, seed=0)
    assert [[x.shape for x in xs] for _, xs in sets] == [
        [(2, 5, 7, 3), (2, 8, 5)], [(2, 7, 5, 3), (2, 8, 7)], [(2, 5, 7, 3), (2, 8, 5)],
    ]  # fmt: skip


def test_ocr_width_axis_gets_its_predict_check_and_out_keeps_the_problem(real_world):
    """The CRNN's variable axis is the width (axis 2): its predict is checked on a new width,
    the finding leads, and OUT (which keeps TD(Conv1D) and TD(Flatten)) is said to keep it."""
    import tdcheck

    result = tdcheck.rewrite(real_world["ocr"], checks=2, seq=(5, 7), timing=False)
    assert [t.path for t in result.replaced] == ["crnn/td_dense", "crnn/ctc"]
    assert [t.path for t in result.kept] == ["crnn/td_conv", "crnn/td_flatten"]
    (finding,) = result.findings
    assert finding == (
        "model.predict gives the WRONG SHAPE on a new size of axis 2 (5 -> 7), input (2, 8, 7): "
        "(2, 2, 5) instead of (2, 7, 5) for output 'ctc'"
    )
    assert result.notes == [
        "the rewritten model still has the original's problem: " + finding,
        "OUT keeps 2 TimeDistributed layer(s) on a variable axis (crnn/td_conv, "
        "crnn/td_flatten): on Keras 3.15 its model.predict (and a traced export) on a new size "
        "of that axis stays wrong, as IN's is",
    ]
    assert result.passed
    assert result.verdict().endswith(
        "; OUT's model.predict on a new input size stays WRONG, as IN's does "
        "(kept TimeDistributed layers)"
    )
    assert [c.check for c in result.comparisons if c.check.startswith("predict")] == [
        "predict #1 2x8x5"  # #2 (width 7) is the original's problem, not judged
    ]


def test_stateful_rnn_states_are_reset_before_every_check(real_world):
    """Without resets the original's predict ran first and the call checks differed by 0.037."""
    import tdcheck

    result = tdcheck.rewrite(real_world["stateful"], checks=3, seq=(5, 7), timing=False)
    assert result.passed, result.verdict()
    calls = [c for c in result.comparisons if c.check.startswith("call")]
    assert [c.stats.shape_a for c in calls] == [(16, 5, 3), (16, 7, 3), (16, 5, 3)]  # batch 16
    assert all(c.stats.bitwise_equal for c in calls)
    assert result.notes[0] == (
        "IN is stateful (lstm; batch 16): the states of both models are reset before every call "
        "and predict, so each check starts from the same zero state"
    )


def test_reset_states_makes_calls_repeatable(real_world, tf_keras):
    from tdcheck.engines import keras_rewrite as kr

    model = tf_keras[1].models.load_model(real_world["stateful"])
    assert [layer.name for layer in kr.stateful_layers(model)] == ["lstm"]
    x = np.random.default_rng(0).integers(0, 6, (16, 4)).astype("int32")
    first = kr.call(model, [x])[0]
    model(x)  # advances the state
    assert np.array_equal(kr.call(model, [x])[0], first)


def test_td_inside_a_td_wrapped_encoder_is_rewritten(real_world, tf_keras, tmp_path):
    import tdcheck

    out = str(tmp_path / "han_fast.keras")
    result = tdcheck.rewrite(real_world["han"], out, checks=2, timing=False)
    assert [t.path for t in result.replaced] == ["han/sentences/encoder/word_proj"]
    assert [(t.path, t.verdict.reason) for t in result.kept] == [(
        "han/sentences",
        "wraps a whole model: the wrapper stays (it runs the model on each timestep); the "
        "model's own TimeDistributed layers are listed under it",
    )]  # fmt: skip
    assert result.passed and result.written, result.verdict()
    assert (result.before["time_distributed"], result.after["time_distributed"]) == (2, 1)
    fast = tf_keras[1].models.load_model(out)
    encoder = fast.get_layer("sentences").layer
    assert type(encoder.get_layer("word_proj")).__name__ == "Dense"
    original = tf_keras[1].models.load_model(real_world["han"])
    x = np.random.default_rng(1).integers(0, 6, (3, 4, 5)).astype("int32")
    assert np.array_equal(fast(x), original(x))


def _frcnn_json(runner, path, *extra):
    result = run(runner, "rewrite", path, "--dry-run", "--batch", "1", "--checks", "3",
                 "--no-timing", "--format", "json", *extra)  # fmt: skip
    return result, json.loads(result.stdout)


def test_batch_1_rounding_is_no_false_fail(runner, real_world):
    """Per-ROI products against one product for all ROIs: float32 rounding over 1024-term
    sums, beyond the fixed atol 1e-5; the float64 clones show it is the same computation."""
    fixed, doc = _frcnn_json(runner, real_world["frcnn"], "--atol", "1e-5", "--rtol", "1.3e-6")
    assert fixed.exit_code == 1  # what a fixed atol says (the false FAIL of the issue)
    assert doc["pass_rule"] is None
    result, doc = _frcnn_json(runner, real_world["frcnn"])
    assert result.exit_code == 0, doc["verdict"]
    assert doc["pass_rule"] == (
        "pass rule: the same computation in float64 (both models' float64 clones agree within "
        "16 u64 |a64| + 4 (u64/u) max|a - a64|), and |b - a| <= atol + rtol * |a| + 4 * "
        "max|a - a64| (max|a - a64|: the original's own float32 rounding against its float64 "
        "clone)"
    )
    f64 = [c for c in doc["comparisons"] if c["check"].startswith("float64")]
    f32 = [c for c in doc["comparisons"] if not c["check"].startswith("float64")]
    assert len(f64) == 6 and all(c["passed"] and c["max_abs_diff"] < 1e-12 for c in f64)
    assert max(c["max_abs_diff"] for c in f32) > 1e-5  # over the fixed atol...
    assert all(c["rule"] == "bound" and c["margin"] < 1 for c in f32)  # ...within the rule
    assert doc["verdict"].startswith("4 TimeDistributed layers rewritten. EQUIVALENT: the same "
                                     "computation, the float64 clones agree to ")  # fmt: skip


def test_a_changed_weight_fails_the_float64_check(runner, real_world, monkeypatch):
    """One kernel element off by 2**-20 of itself: a different computation, in float64."""
    from tdcheck.engines import keras_rewrite

    copy = keras_rewrite.copy_weights

    def off_by_one_element(old, new):
        copy(old, new)
        layer = new.get_layer("fc1")
        kernel, bias = layer.get_weights()
        kernel[0, 0] *= np.float32(1 + 2**-20)
        layer.set_weights([kernel, bias])

    monkeypatch.setattr(keras_rewrite, "copy_weights", off_by_one_element)
    result, doc = _frcnn_json(runner, real_world["frcnn"])
    assert result.exit_code == 1
    f64 = [c for c in doc["comparisons"] if c["check"].startswith("float64")]
    failed = [c for c in f64 if not c["passed"]]
    assert failed and all(c["max_abs_diff"] > 100 * c["allowed"] for c in failed)
    assert doc["verdict"].startswith("4 TimeDistributed layers rewritten. NOT EQUIVALENT: ")


def test_keras2_h5_with_an_lstm_is_converted_and_rewritten(runner, real_world, tmp_path):
    path = real_world["keras2_like"]
    scan = run(runner, "scan", path, "--quiet")
    assert scan.exit_code == 1  # the promise...
    import tdcheck

    assert tdcheck.scan(path).rewrite_blocked is None
    out = tmp_path / "fast.keras"
    result = run(runner, "rewrite", path, str(out), "--checks", "2", "--no-timing",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output  # ...is kept
    doc = json.loads(result.stdout)
    assert doc["notes"][0] == (
        "IN was saved by Keras 2: loaded with Keras 3 after dropping 1 Keras 2 argument(s) "
        "Keras 3 does not take and whose values it already follows (lstm: time_major=False)"
    )
    assert out.is_file()


def test_keras2_time_major_true_is_refused(runner, tf_keras, tmp_path):
    path = model_files.keras2_style_h5(tf_keras[1], str(tmp_path / "tm.h5"), time_major=True)
    result = run(runner, "rewrite", path, "--dry-run")
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: {path}: layer 'lstm' has the Keras 2 argument time_major=True, which "
        "Keras 3 cannot express; load it with tf_keras (Keras 2) instead\n"
    )
    # scan says so, instead of promising a rewrite that is then refused
    scan = run(runner, "scan", path, "--format", "json")
    assert scan.exit_code == 1  # the layer itself is rewritable
    doc = json.loads(scan.stdout)
    assert doc["files"][0]["rewrite_blocked"] == (
        "tdcheck rewrite cannot load this file: layer 'lstm' has the Keras 2 argument "
        "time_major=True, which Keras 3 cannot express; load it with tf_keras (Keras 2) instead"
    )
    assert doc["verdict"] == (
        "1 of 1 TimeDistributed layers rewritable in 1 file; 1 of them in files tdcheck "
        "rewrite cannot load (see the notes)"
    )
    table = run(runner, "scan", path)
    assert "  tdcheck rewrite cannot load this file: layer 'lstm'" in table.stdout


def test_a_tf_keras_h5_lstm_model_is_rewritten_with_its_weights(runner, tmp_path):
    tf_keras_module = pytest.importorskip("tf_keras")
    from tdcheck.engines.tensorflow import quiet

    with quiet():
        path = model_files.tf_keras_h5(tf_keras_module, str(tmp_path / "k2.h5"))
        keras2 = tf_keras_module.models.load_model(path, compile=False)
    import tdcheck

    result = tdcheck.rewrite(path, str(tmp_path / "fast.keras"), checks=2, timing=False)
    assert result.passed and result.written, result.verdict()
    assert "lstm: time_major=False" in result.notes[0]
    x = model_files.random_input(2, 6)
    want = np.asarray(keras2(x))
    (found,) = tdcheck.scan(path).layers  # the shape Keras 2 did not record, carried
    assert (found.path, found.input_shape) == ("tagger/td", [None, None, 4])
    assert np.max(np.abs(np.asarray(result.model(x)) - want)) <= 1e-6  # Keras 2's own weights


def test_inference_only_layers_name_the_option_and_the_training_change(tf_keras):
    import tdcheck

    keras = tf_keras[1]
    x = keras.Input((None, 4))
    model = keras.Model(x, keras.layers.TimeDistributed(_bn(keras), name="bn")(x), name="m")
    kept = tdcheck.rewrite(model, checks=1, seq=(3,), timing=False)
    assert kept.kept[0].verdict.reason.endswith(
        "; rewritten only with tdcheck rewrite --inference-only (OUT then trains differently)"
    )
    rewritten = tdcheck.rewrite(model, checks=1, seq=(3,), timing=False, inference_only=True)
    assert rewritten.passed
    assert rewritten.verdict().endswith("; in inference only: OUT TRAINS DIFFERENTLY")
    assert rewritten.notes[-1].startswith("--inference-only rewrote m/bn: OUT computes the same")


def test_a_too_short_default_seq_suggests_a_longer_one(runner, tf_keras, tmp_path):
    keras = tf_keras[1]
    x = keras.Input((None, 4))
    h = keras.layers.Conv1D(4, 9, name="wide")(x)  # needs 9 steps; --seq 5,7 gives fewer
    model = keras.Model(x, model_files.td_dense(keras)(h), name="m")
    path = str(tmp_path / "wide.keras")
    model.save(path)
    result = run(runner, "rewrite", path, "--dry-run", "--no-timing")
    assert result.exit_code == 2
    assert result.stderr.startswith("tdcheck: error: the original model (")
    assert result.stderr.endswith(
        "; it runs when the unknown axes are 32 long: give longer sizes, e.g. --seq 32,34\n"
    )
    assert run(runner, "rewrite", path, "--dry-run", "--no-timing", "--seq", "32,34").exit_code == 0
