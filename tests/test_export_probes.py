"""Probe shapes, artifact formats and scan's export warning: NumPy only, no TensorFlow."""

from __future__ import annotations

import os

import pytest

from tdcheck.core.artifact_file import (
    artifact_format,
    artifact_size,
    check_artifact_file,
    output_format,
)
from tdcheck.core.probes import (
    DEFAULT_PROBES,
    export_warning,
    parse_probes,
    probe_shapes,
    weak_probes,
)
from tdcheck.errors import ConfigError


def test_default_probes_catch_the_bug_class_by_construction():
    pairs = DEFAULT_PROBES
    assert all(b != s for b, s in pairs)  # batch == length is where broken exports are right
    assert any(b > s for b, s in pairs) and any(b < s for b, s in pairs)
    assert any(b == 1 for b, _ in pairs)
    assert len({s for _, s in pairs}) >= 3
    assert len({b for b, _ in pairs}) >= 3
    assert weak_probes(pairs) is None


def test_probe_shapes_fill_every_variable_axis():
    specs = [("frames", (None, None, None, None, 1), "float32"), ("meta", (None, 2), "int32")]
    probes = probe_shapes(specs, [(3, 5), (5, 2)])
    assert [p.label for p in probes] == [
        "batch 3, seq 5, axis 2 6, axis 3 4",
        "batch 5, seq 2, axis 2 6, axis 3 4",
    ]
    assert probes[0].shapes == [(3, 5, 6, 4, 1), (3, 2)]
    assert probes[1].shapes == [(5, 2, 6, 4, 1), (5, 2)]
    # the other axes never take the probe's batch or length
    assert probe_shapes([("x", (None, None, None), "float32")], [(6, 4)])[0].shapes == [(6, 4, 3)]


def test_a_fixed_length_varies_the_batch_only_and_drops_duplicates():
    probes = probe_shapes([("x", (None, 12, 4), "float32")], [(3, 5), (3, 7), (5, 2)])
    assert [(p.label, p.shapes) for p in probes] == [
        ("batch 3", [(3, 12, 4)]),
        ("batch 5", [(5, 12, 4)]),
    ]


def test_parse_probes_and_weak_probes():
    assert parse_probes("3x5, 5X2,1x4") == [(3, 5), (5, 2), (1, 4)]
    for bad in ("3x", "3*5", "0x5", "3x5000"):
        with pytest.raises(ConfigError, match="--probes"):
            parse_probes(bad)
    assert weak_probes([(4, 4), (2, 2)]) == (
        "every probe has batch == length, where the broken exports happen to be right"
    )
    assert "batch > length and batch < length" in weak_probes([(2, 5), (3, 7)])


def test_export_warning_names_the_layers_on_a_variable_length_axis():
    layers = [("m/td", [None, None, 8]), ("m/fixed", [None, 12, 8]), ("m/inner/td_2", None)]
    text = export_warning(layers)
    assert text is not None and text.startswith("exports affected: model.export() (SavedModel")
    assert "variable-length axis: td)" in text
    assert text.endswith("; tdcheck export writes a right one")
    assert export_warning([("m/fixed", [None, 12, 8])]) is None
    assert export_warning([]) is None


def test_artifact_format_by_folder_suffix_and_mark(tmp_path):
    assert artifact_format(str(tmp_path)) == "savedmodel"
    assert artifact_format(str(tmp_path / "m.onnx")) == "onnx"
    assert artifact_format(str(tmp_path / "m.TFLITE")) == "tflite"
    disguised = tmp_path / "model.bin"
    disguised.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 20)
    assert artifact_format(str(disguised)) == "tflite"
    assert artifact_format(str(tmp_path / "m.keras")) is None
    assert artifact_format(object()) is None
    assert artifact_size(str(disguised)) == 28


def test_output_format(tmp_path):
    assert output_format("out/model") == "savedmodel"
    assert output_format("m.onnx") == "onnx"
    assert output_format("m.tflite") == "tflite"
    assert output_format("m.onnx", "savedmodel") == "savedmodel"
    with pytest.raises(ConfigError, match=r"for a \.keras file use tdcheck rewrite"):
        output_format("m.keras")


@pytest.mark.parametrize(
    ("make", "fmt", "message"),
    [
        (lambda p: p.mkdir(), "savedmodel", "a folder without saved_model.pb, not a TensorFlow"),
        (lambda p: p.write_bytes(b"x" * 64), "tflite", "not a LiteRT model (no TFL3"),
        (lambda p: p.write_bytes(b""), "onnx", "an empty file, no ONNX model in it"),
        (lambda p: None, "onnx", "no such file"),
        (lambda p: os.mkfifo(p), "onnx", "is not a regular file"),
    ],
)
def test_hostile_artifact_files_are_one_line(tmp_path, make, fmt, message):
    path = tmp_path / "artifact"
    make(path)
    with pytest.raises(ConfigError) as info:
        check_artifact_file(str(path), fmt)
    assert message in info.value.message
    assert "\n" not in info.value.message
