"""``tdcheck export`` and artifacts in ``tdcheck models`` (issue 16).

Exporting costs seconds, so every artifact is written once per module (fixtures) and the
tests share them. The independent checks load the artifacts with ``tf.saved_model.load``
and ``onnxruntime`` directly, at shapes tdcheck was never told about.
"""

from __future__ import annotations

import errno
import json
import os

import export_models
import numpy as np
import pytest

from tdcheck.cli import cli

# batch/length pairs no probe of tdcheck's uses (its defaults: 3x5, 5x2, 1x4, 2x7)
UNSEEN = [(6, 9), (2, 13), (7, 3)]


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".tdcheck"))


def unseen_input(name, batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    if name == "tagger":
        return rng.integers(0, 20, size=(batch, seq)).astype("int32")
    if name == "video":
        return rng.standard_normal((batch, seq, 6, 6, 1)).astype("float32")
    return rng.standard_normal((batch, seq, export_models.FEATURES)).astype("float32")


def has_onnx():
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return False
    return True


FORMATS = ["savedmodel", pytest.param("onnx", marks=pytest.mark.skipif(
    not has_onnx(), reason="the onnx extra (tf2onnx, onnxruntime) is not installed"))]  # fmt: skip


@pytest.fixture(scope="module")
def zoo(tf_keras, tmp_path_factory):
    """The issue's models saved as .keras, and their plain model.export() artifacts."""
    from tdcheck.engines.artifacts import write_artifact
    from tdcheck.engines.tensorflow import quiet

    keras = tf_keras[1]
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    with quiet():
        for name, build in export_models.BUILDERS.items():
            model = build(keras)
            paths[name] = str(folder / f"{name}.keras")
            model.save(paths[name])
    for name in ("tagger", "forecaster", "video"):
        model = keras.models.load_model(paths[name])
        paths[f"{name}/savedmodel"] = str(folder / f"{name}_plain")
        write_artifact(model, paths[f"{name}/savedmodel"], "savedmodel")
        if has_onnx():
            paths[f"{name}/onnx"] = str(folder / f"{name}_plain.onnx")
            write_artifact(model, paths[f"{name}/onnx"], "onnx")
    return paths


@pytest.fixture(scope="module")
def exported(zoo, tmp_path_factory):
    """``tdcheck export`` of each model in each installable format (CLI, JSON report)."""
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("exported")
    done = {}
    formats = ["savedmodel"] + (["onnx"] if has_onnx() else [])
    for name in ("tagger", "forecaster", "video"):
        for fmt in formats:
            out = str(folder / (name + ("" if fmt == "savedmodel" else ".onnx")))
            # the first one also probes the plain export (the report's before column)
            extra = [] if (name, fmt) == ("tagger", "savedmodel") else ["--no-plain"]
            result = run(CliRunner(), "export", zoo[name], out, "--format", "json", *extra)
            done[(name, fmt)] = (out, result)
    assert leftovers(str(folder)) == []
    return done


# -- tdcheck models catches the plain exports ---------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["tagger", "forecaster", "video"])
def test_models_catches_the_plain_export(runner, zoo, name, fmt):
    result = run(runner, "models", zoo[name], zoo[f"{name}/{fmt}"], "--checks", "0",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["b"]["class"] == {"savedmodel": "SavedModel", "onnx": "ONNX"}[fmt]
    assert [c["check"] for c in doc["comparisons"]] == [
        "batch 3, seq 5", "batch 5, seq 2", "batch 1, seq 4", "batch 2, seq 7"
    ]  # fmt: skip
    first = doc["comparisons"][0]
    assert not first["passed"]
    if name == "video" and fmt == "onnx":  # onnxruntime's Conv refuses the looped shape
        assert first["note"].startswith("the exported model raises for batch 3, seq 5: ")
        assert doc["verdict"].startswith("NOT EQUIVALENT: 4 of 4 checks failed; the exported")
        return
    units = {"tagger": 4, "forecaster": 1, "video": 2}[name]
    headline = (
        f"the exported model returns (3, 3, {units}) for batch 3, seq 5; "
        f"Keras returns (3, 5, {units})"
    )
    assert first["note"] == headline
    assert doc["verdict"] == f"NOT EQUIVALENT: 4 of 4 checks failed; {headline}"
    # batch > length: the loop runs past the sequence
    assert "raises for batch 5, seq 2" in doc["comparisons"][1]["note"]


# -- tdcheck export writes artifacts that are right ---------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["tagger", "forecaster", "video"])
def test_export_is_right_at_shapes_it_was_never_told_about(tf_keras, zoo, exported, name, fmt):
    out, result = exported[(name, fmt)]
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["written"] is True and doc["passed"] is True
    assert doc["verdict"].startswith(
        f"EXPORTED: the {'SavedModel' if fmt == 'savedmodel' else 'ONNX'} artifact gives IN's outputs on all 4 probes"
    )
    assert [p["out"].split(" (")[0] for p in doc["probes"]] == ["right"] * 4
    tf, keras = tf_keras
    reference = keras.models.load_model(zoo[name])
    # an independent check: the artifact loaded with its runtime directly
    if fmt == "savedmodel":
        serve = tf.saved_model.load(out).signatures["serving_default"]
        (input_name,) = serve.structured_input_signature[1]
        call = lambda x: serve(**{input_name: tf.constant(x)})["output_0"].numpy()  # noqa: E731
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
        call = lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]  # noqa: E731
    for batch, seq in UNSEEN:
        x = unseen_input(name, batch, seq)
        want = np.asarray(reference(x, training=False))
        got = call(x)
        assert got.shape == want.shape == (batch, seq, want.shape[-1])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_export_report_before_after(exported):
    out, result = exported[("tagger", "savedmodel")]
    doc = json.loads(result.output)
    assert doc["findings"] == [
        "plain model.export() is WRONG on 4 of 4 probes: the plain export returns (3, 3, 4) "
        "for batch 3, seq 5; Keras returns (3, 5, 4)"
    ]
    assert doc["probes"][0]["plain"] == "(3, 3, 4) wrong"
    assert doc["probes"][1]["plain"].startswith("raises: ")
    assert [t["name"] for t in doc["replaced"]] == ["td_1", "td_2"]
    assert doc["folded"] == []
    assert doc["artifact"]["size_bytes"] == sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs
    )
    assert doc["artifact"]["load_s"] > 0 and doc["artifact"]["first_call_s"] > 0
    assert doc["artifact"]["inputs"] == [{"name": "tokens", "shape": [None, None],
                                          "dtype": "int32"}]  # fmt: skip


def test_export_folds_what_cannot_become_dense(exported):
    doc = json.loads(exported[("video", "savedmodel")][1].output)
    assert doc["replaced"] == []
    assert doc["folded"] == ["video/td_conv", "video/td_pool"]
    assert doc["plain_comparisons"] is None  # --no-plain
    assert any("folded (time into the batch axis" in n for n in doc["notes"])
    nested = json.loads(exported[("forecaster", "savedmodel")][1].output)
    assert nested["folded"] == ["forecaster/td_head"]


def test_models_accepts_the_exported_artifact_both_ways(runner, zoo, exported):
    out, _ = exported[("forecaster", "savedmodel")]
    result = run(runner, "models", out, zoo["forecaster"], "--checks", "1", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("EQUIVALENT")
    import tdcheck

    res = tdcheck.compare_models(zoo["forecaster"], out, checks=0)
    assert res.passed and len(res.comparisons) == 4
    assert res.a["class"] == "Functional" and res.b["class"] == "SavedModel"
    with pytest.raises(AssertionError, match="the exported model returns \\(3, 3, 1\\)"):
        tdcheck.assert_equivalent(zoo["forecaster"], zoo["forecaster/savedmodel"], checks=0)


def test_models_table_with_an_artifact(runner, zoo, exported):
    out, _ = exported[("video", "savedmodel")]
    result = run(runner, "models", zoo["video"], out, "--checks", "0")
    assert result.exit_code == 0, result.output
    assert "Parameters by layer" not in result.output  # an artifact has no layers
    assert "note: " + out + " is a SavedModel artifact, run with TensorFlow" in result.output


# -- refusals, bad input, atomic writes ---------------------------------------------------


def test_a_model_it_cannot_fix_is_refused_and_nothing_written(tf_keras, tmp_path):
    import tdcheck

    keras = tf_keras[1]

    class Steps(keras.layers.Layer):  # a custom layer hides its TimeDistributed
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.td = keras.layers.TimeDistributed(keras.layers.Dense(3))

        def call(self, x):
            return self.td(x)

    x = keras.Input((None, 4), name="x")
    model = keras.Model(x, Steps(name="steps")(x), name="hidden")
    out = tmp_path / "hidden"
    result = tdcheck.export(model, str(out), plain=False)
    assert result.exit_code == 1 and not result.written
    assert result.verdict() == (
        "NOT EXPORTED: the SavedModel export is still wrong after rewriting and folding every "
        "TimeDistributed layer (the exported model returns (3, 3, 3) for batch 3, seq 5; Keras "
        "returns (3, 5, 3)); tdcheck cannot look inside custom layers (steps (Steps)), where a "
        "TimeDistributed may hide; nothing written"
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda p: (p / "out").mkdir(), ["out"],
         "OUT 'out' exists; --force replaces an existing SavedModel"),
        (lambda p: ((p / "out").mkdir(), (p / "out" / "notes.txt").write_text("x")),
         ["out", "--force"], "is a folder that is not a SavedModel; refusing to replace it"),
        (lambda p: (p / "out.onnx").mkdir(), ["out.onnx"], "exists and is not a regular file"),
        (lambda p: None, ["out.keras"], "for a .keras file use tdcheck rewrite"),
        (lambda p: None, ["missing/out"], "the folder 'missing' does not exist"),
        (lambda p: None, ["out", "--probes", "3by5"], "expected BATCHxLENGTH pairs"),
        (lambda p: None, ["out", "--format", "onnx", "--to", "tflite"],
         "--format onnx and --to tflite disagree"),
    ],
)  # fmt: skip
def test_bad_out_is_exit_2_before_any_work(runner, zoo, tmp_path, monkeypatch, setup, args,
                                           message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = run(runner, "export", zoo["lstm"], *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_force_replaces_an_existing_savedmodel(runner, zoo, exported, tmp_path):
    import shutil

    out = tmp_path / "serving"
    shutil.copytree(exported[("video", "savedmodel")][0], out)
    (out / "stale.txt").write_text("old")
    result = run(runner, "export", zoo["lstm"], str(out), "--force", "--no-plain", "-q")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and (out / "saved_model.pb").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("when", ["interrupt", "disk full"])
def test_interrupt_or_full_disk_leaves_nothing(runner, zoo, tmp_path, monkeypatch, when):
    from tdcheck.commands import export as export_module

    def fail(*args, **kwargs):
        if when == "interrupt":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")

    if when == "interrupt":  # after the export was written and checked
        monkeypatch.setattr(export_module, "_place", fail)
    else:
        from tdcheck.engines import artifacts

        monkeypatch.setattr(artifacts, "write_artifact", fail)
    out = tmp_path / "m"
    result = run(runner, "export", zoo["lstm"], str(out), "--no-plain")
    if when == "interrupt":
        assert result.exit_code == 130
        assert result.output.strip().endswith("tdcheck: error: interrupted")
    else:
        assert result.exit_code == 3
        assert "the disk is full (No space left on device); nothing written" in result.output
    assert os.listdir(tmp_path) == []


def test_hostile_artifacts_in_models_are_one_line(runner, tf_keras, zoo, tmp_path):
    tf = tf_keras[0]
    no_signature = tmp_path / "nosig"
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(no_signature))
    not_saved = tmp_path / "folder"
    not_saved.mkdir()
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"not a flatbuffer at all")
    cases = [
        (no_signature, "a SavedModel without a 'serving_default' serving signature"),
        (not_saved, "a folder without saved_model.pb, not a TensorFlow SavedModel"),
        (fake, "not a LiteRT model (no TFL3 FlatBuffer identifier at byte 4)"),
    ]
    if has_onnx():
        with open(zoo["forecaster/onnx"], "rb") as handle:
            data = handle.read()
        truncated = tmp_path / "truncated.onnx"
        truncated.write_bytes(data[: len(data) // 2])
        cases.append((truncated, "onnxruntime cannot load it"))
    for path, message in cases:
        result = run(runner, "models", zoo["lstm"], str(path))
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_signature_mismatch_names_both(runner, zoo):
    result = run(runner, "models", zoo["lstm"], zoo["tagger/savedmodel"])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"tdcheck: error: {zoo['tagger/savedmodel']} and {zoo['lstm']} do not match: input "
        "'tokens' vs 'x'"
    )
    assert "takes tokens (None, None) int32" in result.output
    assert "takes x (None, None, 4) float32" in result.output


def test_missing_runtime_is_exit_3_with_the_install_line(runner, zoo, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    result = run(runner, "models", zoo["lstm"], str(model))
    assert result.exit_code == 3
    assert "running an ONNX model needs onnxruntime: pip install '.[onnx]' in a clone" in (
        result.output
    )
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    result = run(runner, "export", zoo["lstm"], str(tmp_path / "new.onnx"))
    assert result.exit_code == 3
    assert "Keras exports ONNX through tf2onnx, which is not installed" in result.output
    assert not (tmp_path / "new.onnx").exists()


# -- LiteRT -------------------------------------------------------------------------------


def test_litert_video_model_exports_right(runner, zoo, tmp_path):
    out = tmp_path / "video.tflite"
    result = run(runner, "export", zoo["video"], str(out), "--no-plain", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["format"] == "tflite" and doc["written"]
    assert out.read_bytes()[4:8] == b"TFL3"
    again = run(runner, "models", zoo["video"], str(out), "--checks", "0", "-q")
    assert again.exit_code == 0, again.output


def test_litert_lstm_needs_flex_which_the_interpreter_lacks(runner, zoo, tmp_path):
    result = run(runner, "export", zoo["lstm"], str(tmp_path / "lstm.tflite"), "--no-plain")
    assert result.exit_code == 3, result.output
    assert "uses TensorFlow select ops (Flex), which this Python LiteRT interpreter cannot" in (
        result.output
    )
    assert os.listdir(tmp_path) == []


# -- scan and rewrite ---------------------------------------------------------------------


def test_scan_warns_that_exports_are_affected(runner, zoo):
    result = run(runner, "scan", zoo["video"], "--format", "json")
    doc = json.loads(result.output)
    assert doc["files"][0]["export_warning"].startswith("exports affected: model.export()")
    assert "td_conv, td_pool" in doc["files"][0]["export_warning"]
    table = run(runner, "scan", zoo["video"])
    assert "exports affected: model.export()" in table.output


def test_rewrite_says_whether_the_rewritten_model_exports_right(zoo, tmp_path):
    import tdcheck

    result = tdcheck.rewrite(zoo["lstm"], str(tmp_path / "fast.keras"), checks=1, timing=False)
    assert result.written
    line = next(n for n in result.notes if "exports" in n)
    formats = "SavedModel and ONNX export give" if has_onnx() else "SavedModel export gives"
    assert line.startswith(f"the rewritten model exports right: its {formats} the original's "
                           "outputs on 4 probe shapes (batch 3, seq 5;")  # fmt: skip
