"""``tdcheck scan``: reading saved models without TensorFlow, the rule table, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import h5py
import pytest

from tdcheck.cli import cli
from tdcheck.core import model_file, rules
from tdcheck.core.rules import INFERENCE_ONLY, NOT_REWRITABLE, REWRITABLE, judge


def run(runner, *args, columns="200"):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": columns})


def scan_json(runner, *paths):
    result = run(runner, "scan", *paths, "--format", "json")
    return result, json.loads(result.stdout)


# -- reading files ------------------------------------------------------------------------


def test_functional_keras_file(runner, saved_models):
    result, doc = scan_json(runner, saved_models["functional"])
    assert result.exit_code == 1
    assert result.stderr == ""
    (f,) = doc["files"]
    assert (f["format"], f["model"], f["model_class"], f["keras_version"]) == (
        "keras", "outer", "Functional", "3.15.1",
    )  # fmt: skip
    assert f["counts"] == {"rewritable": 1, "inference only": 0, "not rewritable": 0}
    assert f["time_distributed"] == [
        {
            "path": "outer/td",
            "name": "td",
            "wrapped_class": "Dense",
            "wrapped_config": "units=3, activation=linear",
            "input_shape": [None, None, 4],
            "verdict": "rewritable",
            "reason": "acts on the last axis only: the same weights at every timestep",
        }
    ]
    assert doc["verdict"] == (
        "1 of 1 TimeDistributed layers rewritable in 1 file (tdcheck rewrite IN OUT replaces them)"
    )


def test_table_names_path_class_shape_and_verdict(runner, saved_models):
    result = run(runner, "scan", saved_models["nested"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{saved_models['nested']}: Functional 'outer' (Keras 3.15.1), 1 TimeDistributed layer"
    )
    row = next(line for line in lines if line.startswith(" outer/inner/td_1"))
    assert row.split() == ["outer/inner/td_1", "Dense(units=3,", "activation=linear)", "(None,",
                           "None,", "4)", "rewritable"]  # fmt: skip
    assert (
        "  outer/inner/td_1: acts on the last axis only: the same weights at every timestep"
        in lines
    )


def test_narrow_table_fits_and_reasons_stay_whole(runner, saved_models):
    result = run(runner, "scan", saved_models["conv"], columns="80")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    table = lines[1 : lines.index("")]  # stacked at 80 columns: the layer on its own line
    assert max(len(line) for line in table) <= 80
    assert [line.split()[-2:] for line in table[-1:]] == [["not", "rewritable"]]
    # prose is never wrapped when piped (grep finds whole lines)
    assert (
        "  video/td_conv: convolves the spatial axes after the batch axis: the time axis would "
        "become one of them" in lines
    )


def test_sequential_two_layers_and_h5(runner, saved_models):
    result, doc = scan_json(runner, saved_models["sequential"], saved_models["h5"])
    assert result.exit_code == 1
    seq, h5 = doc["files"]
    assert [t["path"] for t in seq["time_distributed"]] == ["seq/td_a", "seq/td_b"]
    assert seq["model_class"] == "Sequential"
    assert (h5["format"], h5["counts"]["rewritable"]) == ("h5", 1)
    assert h5["time_distributed"][0]["path"] == "outer/td"
    assert h5["time_distributed"][0]["input_shape"] == [None, None, 4]  # from the inbound node


def test_conv_is_left_alone_and_exits_0(runner, saved_models):
    result, doc = scan_json(runner, saved_models["conv"])
    assert result.exit_code == 0
    (t,) = doc["files"][0]["time_distributed"]
    assert (t["wrapped_class"], t["verdict"]) == ("Conv2D", "not rewritable")
    assert t["wrapped_config"] == "filters=2, kernel_size=[3, 3], activation=linear"


def test_masked_model_and_two_layers(runner, saved_models):
    _, doc = scan_json(runner, saved_models["masked"], saved_models["two"])
    masked, two = doc["files"]
    assert masked["counts"]["rewritable"] == 1
    assert [(t["name"], t["wrapped_class"], t["verdict"]) for t in two["time_distributed"]] == [
        ("shared", "Dense", "rewritable"), ("norm", "LayerNormalization", "rewritable"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("weights", "an HDF5 file without a model_config: weights only, no layer structure; "
                    "save the model with model.save('model.keras')"),
        ("truncated", "corrupt or truncated .keras archive"),
        ("text", "not a Keras model file (neither a .keras archive nor HDF5); save the model "
                 "with model.save('model.keras')"),
    ],
)  # fmt: skip
def test_unreadable_files_exit_2_with_one_line(runner, saved_models, key, message):
    result = run(runner, "scan", saved_models[key])
    assert result.exit_code == 2
    line = f"tdcheck: error: {saved_models[key]}: {message}"
    assert result.stderr.startswith(line)
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_savedmodel_folder_names_the_keras_format(runner, tmp_path):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    result = run(runner, "scan", str(folder))
    assert result.exit_code == 2
    assert result.stderr == (
        f"tdcheck: error: {folder}: a TensorFlow SavedModel holds a traced graph, no Keras layer "
        "structure to scan or rewrite; save the model with model.save('model.keras') "
        "(the .keras format)\n"
    )


def test_pipes_and_devices_are_refused_without_blocking(runner, tmp_path):
    fifo = str(tmp_path / "model.keras")
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    result = run(runner, "scan", fifo, "/dev/zero")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"tdcheck: error: {fifo}: is not a regular file (a pipe or a device?); give a model file",
        "tdcheck: error: /dev/zero: is not a regular file (a pipe or a device?); give a model file",
    ]


def test_activity_regularizer_is_inference_only():
    from tdcheck.core import rules

    verdict = rules.judge("Dense", {"name": "d", "units": 3, "activity_regularizer": "l1"})
    assert (verdict.verdict, verdict.reason) == (
        rules.INFERENCE_ONLY,
        f"{rules.ACTIVITY_REASON}; {rules.INFERENCE_ONLY_HINT}",
    )
    assert verdict.config == {"name": "d", "units": 3, "activity_regularizer": "l1"}
    plain = rules.judge("Dense", {"name": "d", "units": 3, "activity_regularizer": None})
    assert plain.verdict == rules.REWRITABLE


def test_missing_file_and_plain_folder(runner, tmp_path):
    result = run(runner, "scan", str(tmp_path / "nope.keras"), str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"tdcheck: error: {tmp_path / 'nope.keras'}: no such file",
        f"tdcheck: error: {tmp_path}: is a folder, not a .keras or .h5 model file",
    ]


def test_worst_exit_code_wins_and_good_files_are_still_reported(runner, saved_models):
    result, doc = scan_json(runner, saved_models["conv"], saved_models["text"],
                            saved_models["functional"])  # fmt: skip
    assert result.exit_code == 2
    assert [f["error"] is None for f in doc["files"]] == [True, False, True]
    assert doc["verdict"].endswith("; 1 unreadable")


def test_zip_without_config(runner, tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    result = run(runner, "scan", str(path))
    assert result.exit_code == 2
    assert "a zip archive without config.json: not a Keras model" in result.stderr


def test_config_size_is_capped_before_reading(runner, saved_models, monkeypatch):
    monkeypatch.setattr(model_file, "MAX_CONFIG_BYTES", 100)
    result = run(runner, "scan", saved_models["functional"])
    assert result.exit_code == 2
    with zipfile.ZipFile(saved_models["functional"]) as archive:
        size = archive.getinfo("config.json").file_size
    assert result.stderr == (
        f"tdcheck: error: {saved_models['functional']}: config.json is {size:,} bytes, more "
        "than the 100 tdcheck reads\n"
    )


def test_config_that_is_not_a_model(runner, tmp_path):
    path = tmp_path / "list.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "[1, 2]")
    result = run(runner, "scan", str(path))
    assert result.exit_code == 2
    assert result.stderr.endswith("config.json does not describe a Keras model\n")


def test_keras2_style_h5_config(runner, tmp_path):
    """A tf.keras / Keras 2 model_config: no "module" keys, batch_input_shape on the layer."""
    config = {
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, None, 4],
                                                    "name": "in"}},
            {"class_name": "TimeDistributed", "config": {
                "name": "time_distributed", "batch_input_shape": [None, None, 4],
                "layer": {"class_name": "Dense", "config": {"name": "dense", "units": 3}}}},
        ]},
    }  # fmt: skip
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config).encode()
        handle.attrs["keras_version"] = b"2.15.0"
    result, doc = scan_json(runner, str(path))
    assert result.exit_code == 1
    (f,) = doc["files"]
    assert f["keras_version"] == "2.15.0"
    assert f["time_distributed"][0]["input_shape"] == [None, None, 4]
    assert f["time_distributed"][0]["path"] == "sequential/time_distributed"


def test_tf_keras_files(runner, tmp_path):
    """A tf.keras (Keras 2) model: both of its formats scan; Keras 3 loads and rewrites the
    .h5, and refuses tf.keras' own .keras format, which rewrite reports in one line."""
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.layers.TimeDistributed(
        tf_keras.layers.Dense(3), input_shape=(None, 4))])  # fmt: skip
    h5, native = str(tmp_path / "tfk.h5"), str(tmp_path / "tfk.keras")
    with pytest.warns(UserWarning, match="HDF5 file"):  # tf.keras calls .h5 legacy
        model.save(h5)
    model.save(native)
    result, doc = scan_json(runner, h5, native)
    assert result.exit_code == 1
    assert [(f["format"], f["keras_version"], f["counts"]["rewritable"]) for f in doc["files"]] == [
        ("h5", tf_keras.__version__, 1), ("keras", tf_keras.__version__, 1),
    ]  # fmt: skip
    rewrite = run(runner, "rewrite", h5, str(tmp_path / "fast.keras"), "--checks", "2",
                  "--no-timing", "--format", "json")  # fmt: skip
    assert rewrite.exit_code == 0, rewrite.output
    assert json.loads(rewrite.stdout)["findings"][0].startswith(
        "model.predict gives the WRONG SHAPE on a new size of axis 1 (5 -> 7), input (2, 7, 4): "
        "(2, 2, 3) instead of (2, 7, 3)"
    )
    refused = run(runner, "rewrite", native, "--dry-run")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"tdcheck: error: {native}: Keras cannot load it (")


def test_markdown(runner, saved_models):
    result = run(runner, "scan", saved_models["conv"], "--format", "markdown")
    lines = result.stdout.splitlines()
    assert lines[0] == "## tdcheck scan"
    assert "| layer | wraps | input shape | verdict | reason |" in lines
    assert lines[-1] == "**0 of 1 TimeDistributed layers rewritable in 1 file**"


def test_output_file(runner, saved_models, tmp_path):
    out = tmp_path / "scan.json"
    result = run(runner, "scan", saved_models["functional"], "--output", str(out))
    assert result.exit_code == 1
    assert json.loads(out.read_text())["files"][0]["counts"]["rewritable"] == 1


def test_scan_never_imports_tensorflow(saved_models):
    code = (
        "import sys\nfrom tdcheck.cli import cli\n"
        f"code = cli.main(['scan', {saved_models['functional']!r}, {saved_models['h5']!r}], "
        "prog_name='tdcheck', standalone_mode=False)\n"
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ})  # fmt: skip
    assert out.stdout.splitlines()[-1] == "1 False False"


def test_api_truth_value_is_the_gate(saved_models):
    import tdcheck

    result = tdcheck.scan(saved_models["functional"])
    assert not result and result.exit_code == 1
    assert [t.path for t in result.rewritable] == ["outer/td"]
    assert tdcheck.scan(saved_models["conv"])


# -- the rule table -----------------------------------------------------------------------

NOT_REWRITABLE_CASES = {
    **{name: {"filters": 2, "kernel_size": 3} for name in (
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")},
    **{name: {} for name in (
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "Flatten",
        "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D",
        "UpSampling3D", "LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D",
        "ConvLSTM2D", "ConvLSTM3D", "TimeDistributed", "Functional", "Sequential", "Model",
        "Lambda", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NOT_REWRITABLE_CASES))
def test_not_rewritable_entries(name):
    verdict = judge(name, NOT_REWRITABLE_CASES[name])
    assert verdict.verdict == NOT_REWRITABLE
    assert verdict.config is None
    assert verdict.reason == rules.RULES[name].reason


def test_every_entry_has_its_test():
    from test_rewrite import REWRITE_CASES

    assert set(rules.RULES) == set(NOT_REWRITABLE_CASES) | set(REWRITE_CASES)
    for name in REWRITE_CASES:
        assert rules.RULES[name].verdict in (REWRITABLE, INFERENCE_ONLY)


def test_unknown_layers_are_left_alone():
    assert judge("MyAttention", {"units": 3}) == rules.Verdict(
        NOT_REWRITABLE, "unknown layer, left alone"
    )


def test_a_custom_class_named_like_a_builtin_is_unknown():
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "module": "my_package.layers", "class_name": "Dense", "registered_name": "Custom>Dense",
            "config": {"name": "dense", "units": 3}}}}]}}  # fmt: skip
    (t,) = model_file.time_distributed_layers(config)
    assert (t.verdict.verdict, t.verdict.reason) == (NOT_REWRITABLE, "unknown layer, left alone")


@pytest.mark.parametrize(
    ("equation", "output_shape", "expected", "expected_shape"),
    [
        ("ab,bc->ac", 3, "adb,bc->adc", [None, 3]),
        ("abc,cd->abd", [2, 3], "aebc,cd->aebd", [None, 2, 3]),
        ("...b,bc->...c", [3], "...b,bc->...c", [3]),
    ],
)
def test_einsum_equation_gains_the_time_axis(equation, output_shape, expected, expected_shape):
    v = judge("EinsumDense", {"equation": equation, "output_shape": output_shape})
    assert v.verdict == REWRITABLE
    assert (v.config["equation"], v.config["output_shape"]) == (expected, expected_shape)


def test_einsum_that_moves_the_batch_axis_is_refused():
    v = judge("EinsumDense", {"equation": "ab,bc->ca", "output_shape": 3})
    assert v.verdict == NOT_REWRITABLE
    assert v.reason == "equation 'ab,bc->ca' does not keep the batch axis first"


@pytest.mark.parametrize(
    ("name", "config", "reason"),
    [("EinsumDense", {"equation": "ab,bc->ac", "output_shape": 3},
      "EinsumDense drops the Keras mask that TimeDistributed passes on; this model uses masks"),
     ("Softmax", {"axis": -1},
      "Softmax applies a Keras mask itself, and TimeDistributed hands it one timestep's mask at "
      "a time; this model uses masks")],
)  # fmt: skip
def test_mask_sensitive_layers_keep_the_wrapper_in_masked_models(name, config, reason):
    assert judge(name, config).verdict == REWRITABLE
    assert judge(name, config, masked=True) == rules.Verdict(NOT_REWRITABLE, reason)
    assert judge("Dense", {"units": 3}, masked=True).verdict == REWRITABLE


@pytest.mark.parametrize(
    ("axis", "expected"), [(-1, -1), (1, 2), ([1, 2], [2, 3]), ([-2, -1], [-2, -1])]
)
def test_positive_axes_shift_by_one(axis, expected):
    assert judge("LayerNormalization", {"axis": axis}).config["axis"] == expected


def test_an_axis_over_the_batch_is_refused():
    assert judge("LayerNormalization", {"axis": 0}).reason == "axis includes the batch axis 0"


def test_dropout_with_noise_shape_is_inference_only():
    v = judge("Dropout", {"rate": 0.5, "noise_shape": [None, 1]})
    assert v.verdict == INFERENCE_ONLY
    assert v.config == {"rate": 0.5, "noise_shape": None}
    assert judge("Dropout", {"rate": 0.5, "noise_shape": None}).verdict == REWRITABLE


def test_rewrite_config_keeps_name_inputs_and_drops_the_mask_argument():
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "TimeDistributed", "name": "td", "build_config": {"input_shape": [None, None, 4]},
         "inbound_nodes": [{"args": ["x"], "kwargs": {"training": False, "mask": None}}],
         "config": {"name": "td", "trainable": False, "layer": {
             "module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": "dense", "units": 3, "trainable": True}}}}]}}  # fmt: skip
    new, done = model_file.rewrite_config(config)
    entry = new["config"]["layers"][0]
    assert entry == {
        "class_name": "Dense", "module": "keras.layers", "registered_name": None, "name": "td",
        "build_config": {"input_shape": [None, None, 4]},
        "inbound_nodes": [{"args": ["x"], "kwargs": {"training": False}}],
        "config": {"name": "td", "units": 3, "trainable": False},
    }  # fmt: skip
    assert [t.path for t in done.replaced] == ["m/td"]
    assert config["config"]["layers"][0]["class_name"] == "TimeDistributed"  # not modified


def test_docs_rule_table_lists_every_entry():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    for rule in rules.RULES_LIST:
        names = ", ".join(f"`{c}`" for c in rule.classes)
        assert f"| {names} | {rule.verdict} | {rule.reason} |" in doc, rule.classes


@pytest.mark.parametrize("depth", [150, 900, 5000])
def test_deeply_nested_config(runner, tmp_path, depth):
    path = tmp_path / "deep.keras"
    deep = '{"class_name": "Functional", "config": {"layers": ' + "[" * depth + "]" * depth + "}}"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", deep)
    result = run(runner, "scan", str(path))
    if depth == 150:
        assert (result.exit_code, result.stderr) == (0, "")
        assert "0 of 0 TimeDistributed layers rewritable in 1 file" in result.stdout
    elif depth == 900:  # parsed, then refused: deeper than any Keras model (issue 17)
        assert result.exit_code == 2
        assert result.stderr == (
            f"tdcheck: error: {path}: config.json is nested more than 200 levels deep\n"
        )
    else:
        assert result.exit_code == 2
        (line,) = result.stderr.splitlines()  # CPython's wording varies by version
        assert line.startswith(f"tdcheck: error: {path}: config.json cannot be read as JSON (")
        assert "recursion" in line


def test_quiet_prints_only_the_verdict(runner, saved_models):
    result = run(runner, "scan", "-q", saved_models["conv"], saved_models["functional"])
    assert result.exit_code == 1
    assert result.stdout == (
        "1 of 2 TimeDistributed layers rewritable in 2 files (tdcheck rewrite IN OUT replaces "
        "them)\n"
    )


# -- real-world shapes (issue 17) ---------------------------------------------------------


def _td(name, layer):
    return {"class_name": "TimeDistributed", "config": {"name": name, "layer": layer}}


def _dense(name, units):
    return {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": name, "units": units}}  # fmt: skip


def test_a_td_inside_a_td_wrapped_model_is_listed_with_its_path():
    encoder = {"module": "keras.src.models.functional", "class_name": "Functional",
               "registered_name": "Functional",
               "config": {"name": "encoder", "layers": [_td("word_proj", _dense("d", 4))]}}  # fmt: skip
    config = {"class_name": "Functional", "config": {"name": "han", "layers": [
        _td("sentences", encoder)]}}  # fmt: skip
    found = model_file.time_distributed_layers(config)
    assert [(t.path, t.wrapped_class, t.verdict.verdict, t.verdict.reason) for t in found] == [
        ("han/sentences", "Functional", NOT_REWRITABLE,
         "wraps a whole model: the wrapper stays (it runs the model on each timestep); the "
         "model's own TimeDistributed layers are listed under it"),
        ("han/sentences/encoder/word_proj", "Dense", REWRITABLE,
         "acts on the last axis only: the same weights at every timestep"),
    ]  # fmt: skip
    rewritten, done = model_file.rewrite_config(config)
    assert [t.path for t in done.replaced] == ["han/sentences/encoder/word_proj"]
    inner = rewritten["config"]["layers"][0]["config"]["layer"]["config"]["layers"][0]
    assert (inner["class_name"], inner["config"]) == ("Dense", {"name": "word_proj", "units": 4})


def test_a_file_whose_only_td_dense_sits_in_a_wrapped_encoder_exits_1(runner, tf_keras,
                                                                      tmp_path):  # fmt: skip
    import model_files

    path = str(tmp_path / "han.keras")
    model_files.han(tf_keras[1]).save(path)
    result, doc = scan_json(runner, path)
    assert result.exit_code == 1
    (f,) = doc["files"]
    assert [(t["path"], t["wrapped_class"], t["input_shape"], t["verdict"])
            for t in f["time_distributed"]] == [
        ("han/sentences", "Functional", [None, None, 5], NOT_REWRITABLE),
        ("han/sentences/encoder/word_proj", "Dense", [None, 5, 4], REWRITABLE),
    ]  # fmt: skip
    assert doc["verdict"].startswith("1 of 2 TimeDistributed layers rewritable in 1 file")


def test_keras2_sequential_input_shapes_are_carried_from_the_model_input():
    config = {"class_name": "Sequential", "config": {"name": "tagger", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, None]}},
        {"class_name": "Embedding", "config": {"name": "e", "output_dim": 5}},
        {"class_name": "Bidirectional", "config": {"name": "bi", "layer": {
            "class_name": "LSTM", "config": {"units": 4, "return_sequences": True}}}},
        _td("td_1", {"class_name": "Dense", "config": {"units": 3}}),
        {"class_name": "Dropout", "config": {"rate": 0.1}},
        _td("td_2", {"class_name": "Dense", "config": {"units": 2}}),
        {"class_name": "Flatten", "config": {}},
        _td("td_3", {"class_name": "Dense", "config": {"units": 2}}),
    ]}}  # fmt: skip
    shapes = [t.input_shape for t in model_file.time_distributed_layers(config)]
    assert shapes == [[None, None, 8], [None, None, 3], None]  # Flatten: not carried


def test_keras2_functional_input_shapes_follow_the_inbound_nodes():
    config = {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 10, 4], "name": "x"}},
        {"class_name": "GRU", "name": "gru", "inbound_nodes": [[["x", 0, 0, {}]]],
         "config": {"name": "gru", "units": 7, "return_sequences": True}},
        {**_td("td", {"class_name": "Dense", "config": {"units": 3}}), "name": "td",
         "inbound_nodes": [[["gru", 0, 0, {}]]]},
    ]}}  # fmt: skip
    (t,) = model_file.time_distributed_layers(config)
    assert t.input_shape == [None, 10, 7]


def test_keras2_conversion_drops_only_harmless_keys():
    lstm = {"class_name": "LSTM", "config": {"name": "l", "units": 2, "time_major": False}}
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Bidirectional", "config": {"name": "bi", "layer": lstm}},
        {"class_name": "GRU", "config": {"name": "g", "time_major": False}}]}}  # fmt: skip
    converted, dropped = model_file.keras2_conversion(config, "m.h5")
    assert dropped == ["l: time_major=False", "g: time_major=False"]
    assert "time_major" not in json.dumps(converted)
    assert "time_major" in json.dumps(config)  # the caller's config is not changed
    lstm["config"]["time_major"] = True
    with pytest.raises(model_file.ConfigError, match="time_major=True, which Keras 3 cannot"):
        model_file.keras2_conversion(config, "m.h5")


def test_inference_only_reasons_name_the_option(runner, tmp_path):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        _td("bn", {"class_name": "BatchNormalization", "config": {"axis": -1}})]}}  # fmt: skip
    path = tmp_path / "bn.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    result = run(runner, "scan", str(path))
    assert result.exit_code == 0
    assert ("  s/bn: uses its moving statistics per feature in inference (equal); in training "
            "TimeDistributed normalises each timestep over the batch, the layer alone over batch "
            "and time; rewritten only with tdcheck rewrite --inference-only (OUT then trains "
            "differently)") in result.stdout  # fmt: skip


def test_unreadable_file_error_is_on_stderr_only(runner, saved_models):
    result = run(runner, "scan", saved_models["text"], saved_models["functional"])
    assert result.exit_code == 2
    message = "not a Keras model file (neither a .keras archive nor HDF5)"
    assert message in result.stderr and message not in result.stdout
    assert result.stderr.count("\n") == 1
    assert result.stdout.splitlines()[-1] == (
        "1 of 1 TimeDistributed layers rewritable in 2 files (tdcheck rewrite IN OUT replaces "
        "them); 1 unreadable"
    )
    assert saved_models["text"] not in result.stdout
