"""Telling deployment artifacts from Keras model files, without TensorFlow.

An artifact is what ``model.export()`` writes: a TensorFlow SavedModel folder, an
``.onnx`` file, or a LiteRT ``.tflite`` file. It runs in its own runtime and is never
re-imported as Keras.

>>> artifact_format("model.onnx"), artifact_format("model.keras")
('onnx', None)
>>> output_format("out/model.tflite"), output_format("serving/model")
('tflite', 'savedmodel')
"""

from __future__ import annotations

import os
import stat

from tdcheck.core.install import install_hint
from tdcheck.errors import ConfigError

FORMATS = ("savedmodel", "onnx", "tflite")
FORMAT_NAMES = {"savedmodel": "SavedModel", "onnx": "ONNX", "tflite": "LiteRT"}
SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}
#: A FlatBuffer's file identifier sits at bytes 4-8; a LiteRT model's is ``TFL3``.
TFLITE_MAGIC = b"TFL3"
#: What ``pip install`` says for each format's runtime (tdcheck is on no package index).
INSTALL = {"onnx": install_hint("onnx"), "tflite": install_hint("litert")}


def artifact_format(path: object) -> str | None:
    """``savedmodel`` (any folder), ``onnx``, ``tflite`` (by suffix or the ``TFL3`` mark),
    or None for anything else (a Keras model file, or not a path at all)."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if os.path.isdir(path):
        return "savedmodel"
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            with open(path, "rb") as handle:
                if handle.read(8)[4:8] == TFLITE_MAGIC:
                    return "tflite"
    except OSError:
        pass
    return None


def output_format(path: str, given: str | None = None) -> str:
    """The format to write ``path`` in: ``given`` (``--format``), else ``.onnx``,
    ``.tflite``, else a SavedModel folder (``.keras``/``.h5`` are refused: they are not
    deployment artifacts)."""
    if given is not None:
        if given not in FORMATS:
            raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {given!r}")
        return given
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".keras", ".h5"):
        raise ConfigError(
            f"OUT {path!r}: tdcheck export writes deployment artifacts (a SavedModel folder, "
            ".onnx, .tflite); for a .keras file use tdcheck rewrite"
        )
    return SUFFIXES.get(suffix, "savedmodel")


def check_artifact_file(path: str, fmt: str) -> None:
    """One clear line (exit 2) for a path that cannot be the artifact it is taken for."""
    if fmt == "savedmodel":
        if not os.path.isdir(path):
            raise ConfigError(f"{path}: not a folder, so not a SavedModel")
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ConfigError(
                f"{path}: a folder without saved_model.pb, not a TensorFlow SavedModel"
            )
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: is not a regular file (a pipe or a device?)")
    if os.path.getsize(path) == 0:
        raise ConfigError(f"{path}: an empty file, no {FORMAT_NAMES[fmt]} model in it")
    if fmt == "tflite":
        with open(path, "rb") as handle:
            head = handle.read(8)
        if head[4:8] != TFLITE_MAGIC:
            raise ConfigError(
                f"{path}: not a LiteRT model (no TFL3 FlatBuffer identifier at byte 4)"
            )


def artifact_size(path: str) -> int:
    """Bytes on disk: the file, or every file under a SavedModel folder."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total
