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


@pytest.fixture(scope="module")
def zoo(tf_keras, tmp_path_factory):
    """The issue's models saved as .keras, and a small TimeDistributed(Dense) model's
    plain exports (fast to write: no recurrent layer)."""
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
        x = keras.Input((None, export_models.FEATURES), name="x")
        small = keras.Model(x, keras.layers.TimeDistributed(keras.layers.Dense(3))(x))
    small(np.zeros((1, 2, export_models.FEATURES), "float32"))
    paths["small/savedmodel"] = str(folder / "small")
    write_artifact(small, paths["small/savedmodel"], "savedmodel")
    if has_onnx():
        paths["small/onnx"] = str(folder / "small.onnx")
        write_artifact(small, paths["small/onnx"], "onnx")
    return paths


def independent_check(tf_keras, reference, out, fmt, name):
    """The artifact loaded with its runtime directly, at shapes tdcheck never used."""
    tf, keras = tf_keras
    model = keras.models.load_model(reference)
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
        want = np.asarray(model(x, training=False))
        got = call(x)
        assert got.shape == want.shape == (batch, seq, want.shape[-1])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


UNITS = {"tagger": 4, "forecaster": 1, "video": 2}
KIND = {"savedmodel": "SavedModel", "onnx": "ONNX"}


@pytest.mark.parametrize("name", ["tagger", "forecaster", "video"])
def test_models_catches_the_plain_export_and_export_writes_a_right_one(
    runner, tf_keras, zoo, tmp_path, name
):
    """Issue 16's "done when", one model per test (each exports four times: seconds)."""
    from tdcheck.engines.artifacts import write_artifact

    keras = tf_keras[1]
    model = keras.models.load_model(zoo[name])
    model(unseen_input(name, 1, 2))  # Keras exports ONNX only from a model called once
    formats = ["savedmodel"] + (["onnx"] if has_onnx() else [])
    for fmt in formats:
        suffix = "" if fmt == "savedmodel" else ".onnx"
        plain = str(tmp_path / f"plain{suffix}")
        write_artifact(model, plain, fmt)
        # tdcheck models catches the plain model.export(): exit 1, the shape finding
        result = run(runner, "models", zoo[name], plain, "--checks", "0", "--format", "json")
        assert result.exit_code == 1, result.output
        doc = json.loads(result.output)
        assert doc["b"]["class"] == KIND[fmt]
        assert [c["check"] for c in doc["comparisons"]] == [
            "batch 3, seq 5", "batch 5, seq 2", "batch 1, seq 4", "batch 2, seq 7"
        ]  # fmt: skip
        assert not any(c["passed"] for c in doc["comparisons"])
        first = doc["comparisons"][0]
        if (name, fmt) == ("video", "onnx"):  # onnxruntime's Conv refuses the looped shape
            assert first["note"].startswith("the exported model raises for batch 3, seq 5: ")
        else:
            units = UNITS[name]
            headline = (
                f"the exported model returns (3, 3, {units}) for batch 3, seq 5; "
                f"Keras returns (3, 5, {units})"
            )
            assert first["note"] == headline
            assert doc["verdict"] == f"NOT EQUIVALENT: 4 of 4 checks failed; {headline}"
            # batch > length: the loop runs past the sequence
            assert "raises for batch 5, seq 2" in doc["comparisons"][1]["note"]

        # tdcheck export writes an artifact that is right
        out = str(tmp_path / f"{name}{suffix}")
        extra = [] if (name, fmt) == ("tagger", "savedmodel") else ["--no-plain"]
        result = run(runner, "export", zoo[name], out, "--format", "json", *extra)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["written"] is True and doc["passed"] is True
        assert doc["verdict"].startswith(
            f"EXPORTED: the {KIND[fmt]} artifact gives IN's outputs on all 4 probes"
        )
        assert [p["out"].split(" (")[0] for p in doc["probes"]] == ["right"] * 4
        independent_check(tf_keras, zoo[name], out, fmt, name)
        assert leftovers(tmp_path) == []
        check_report(name, fmt, doc, out)
        if (name, fmt) == ("forecaster", "savedmodel"):
            check_api_and_models_both_ways(runner, zoo, out, plain)


def check_report(name, fmt, doc, out):
    if name == "tagger" and fmt == "savedmodel":  # the before/after report
        assert doc["findings"] == [
            "plain model.export() is WRONG on 4 of 4 probes: the plain export returns "
            "(3, 3, 4) for batch 3, seq 5; Keras returns (3, 5, 4)"
        ]
        assert doc["probes"][0]["plain"] == "(3, 3, 4) wrong"
        assert doc["probes"][1]["plain"].startswith("raises: ")
        assert [t["name"] for t in doc["replaced"]] == ["td_1", "td_2"]
        assert doc["folded"] == []
        assert doc["artifact"]["size_bytes"] == sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs
        )
        assert doc["artifact"]["load_s"] > 0 and doc["artifact"]["first_call_s"] > 0
        assert doc["artifact"]["inputs"] == [
            {"name": "tokens", "shape": [None, None], "dtype": "int32"}
        ]
    elif name == "video":  # what cannot become Dense is folded
        assert doc["replaced"] == []
        assert doc["folded"] == ["video/td_conv", "video/td_pool"]
        assert doc["plain_comparisons"] is None  # --no-plain
        assert any("folded (time into the batch axis" in n for n in doc["notes"])
    elif name == "forecaster":
        assert doc["folded"] == ["forecaster/td_head"]  # a nested Sequential per step


def check_api_and_models_both_ways(runner, zoo, out, plain):
    import tdcheck

    result = run(runner, "models", out, zoo["forecaster"], "--checks", "1", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("EQUIVALENT")
    table = run(runner, "models", zoo["forecaster"], out, "--checks", "0")
    assert table.exit_code == 0, table.output
    assert "Parameters by layer" not in table.output  # an artifact has no layers
    assert f"note: {out} is a SavedModel artifact, run with TensorFlow" in table.output
    res = tdcheck.compare_models(zoo["forecaster"], out, checks=0)
    assert res.passed and len(res.comparisons) == 4
    assert res.a["class"] == "Functional" and res.b["class"] == "SavedModel"
    with pytest.raises(AssertionError, match=r"the exported model returns \(3, 3, 1\)"):
        tdcheck.assert_equivalent(zoo["forecaster"], plain, checks=0)


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


def test_force_replaces_an_existing_savedmodel(runner, zoo, tmp_path):
    import shutil

    out = tmp_path / "serving"
    shutil.copytree(zoo["small/savedmodel"], out)
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
        with open(zoo["small/onnx"], "rb") as handle:
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
    result = run(runner, "models", zoo["tagger"], zoo["small/savedmodel"])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"tdcheck: error: {zoo['small/savedmodel']} and {zoo['tagger']} do not match: input "
        "'x' vs 'tokens'"
    )
    assert "takes x (None, None, 4) float32" in result.output
    assert "takes tokens (None, None) int32" in result.output


def test_missing_runtime_is_exit_3_with_the_install_line(runner, zoo, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    result = run(runner, "models", zoo["lstm"], str(model))
    assert result.exit_code == 3
    assert "running an ONNX model needs onnxruntime: pip install 'tf2onnx>=1.17'" in result.output
    assert "(or, in a checkout of tdcheck: pip install '.[onnx]')" in result.output
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


@pytest.mark.slow
def test_real_process_has_clean_streams(zoo, tmp_path):
    """The console path: pure JSON on stdout, nothing on stderr (no TensorFlow, tf2onnx or
    onnxruntime log lines), the artifact written."""
    import subprocess
    import sys

    out = tmp_path / ("video.onnx" if has_onnx() else "video")
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TDCHECK_DEBUG")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tdcheck", "export", zoo["video"], str(out), "--format", "json"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["written"] is True and out.exists()
    assert doc["findings"][0].startswith("plain model.export() is WRONG on 4 of 4 probes")
