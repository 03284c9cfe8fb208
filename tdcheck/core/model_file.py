"""Reading a saved Keras model's layer structure without TensorFlow or Keras.

A ``.keras`` file is a zip archive holding ``config.json`` (the model's structure),
``metadata.json`` and the weights; a legacy ``.h5`` file holds the structure in its
``model_config`` attribute (h5py reads it). The format is told by the file's first
bytes, not its name. Only the config is read, at most :data:`MAX_CONFIG_BYTES`, and
nothing is ever unpickled or executed.

:func:`time_distributed_layers` walks a config (nested sub-models included) and judges
every ``TimeDistributed`` layer with :mod:`tdcheck.core.rules`; :func:`rewrite_config`
returns the config with each rewritable wrapper replaced by its layer (the wrapper's
name, inputs and build shape kept), which ``tdcheck rewrite`` rebuilds with Keras.

>>> config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
...     {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
...         "class_name": "Dense", "config": {"name": "dense", "units": 3}}}}]}}
>>> [(t.path, t.wrapped_class, t.verdict.verdict) for t in time_distributed_layers(config)]
[('s/td', 'Dense', 'rewritable')]
>>> rewrite_config(config)[0]["config"]["layers"][0]["config"]
{'name': 'td', 'units': 3}
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tdcheck.core import rules
from tdcheck.errors import ConfigError, one_line

MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: The deepest JSON nesting a model config may have (a Keras model nested ten deep is ~60).
MAX_CONFIG_DEPTH = 200
MAX_METADATA_BYTES = 64 * 1024
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MODEL_CLASSES = ("Functional", "Sequential", "Model")
MASK_PRODUCERS = ("Masking",)
#: Where Keras says its own classes live in a saved config (a model wrapped by a layer is
#: saved with its implementation module).
KERAS_MODULES = (None, "keras.layers", "keras.models", "keras", "keras.src.models.functional",
                 "keras.src.models.sequential", "keras.src.models.model")  # fmt: skip

T = TypeVar("T")
SAVE_HINT = "save the model with model.save('model.keras')"


@dataclass
class ModelFile:
    """A model's structure as read from a file."""

    path: str
    format: str  # "keras" or "h5"
    config: dict[str, Any]
    keras_version: str | None = None
    size_bytes: int = 0
    compiled: bool = False  # the file holds compile settings (loss, metrics, optimizer)


@dataclass
class WrappedLayer:
    """One ``TimeDistributed`` layer found in a config, with its verdict."""

    path: str  # "outer/inner/td_1"
    name: str
    wrapped_class: str
    wrapped_summary: str
    input_shape: list[Any] | None
    verdict: rules.Verdict
    trainable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "wrapped_class": self.wrapped_class,
            "wrapped_config": self.wrapped_summary,
            "input_shape": self.input_shape,
            "verdict": self.verdict.verdict,
            "reason": self.verdict.reason,
        }


def _refuse(path: str, text: str) -> ConfigError:
    return ConfigError(f"{path}: {text}")


def read_model_file(path: str) -> ModelFile:
    """Read ``path``'s model config; :class:`ConfigError` (exit 2) with one line otherwise."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise _refuse(
                path,
                "a TensorFlow SavedModel holds a traced graph, no Keras layer structure to "
                f"scan or rewrite; {SAVE_HINT} (the .keras format)",
            )
        raise _refuse(path, "is a folder, not a .keras or .h5 model file")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or device would block or never end
            raise _refuse(path, "is not a regular file (a pipe or a device?); give a model file")
        with open(path, "rb") as handle:
            head = handle.read(8)
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise _refuse(path, "no such file") from None
    except OSError as exc:
        raise _refuse(path, f"cannot read ({exc.strerror or exc})") from None
    if head.startswith(ZIP_MAGIC):
        model = _read_keras(path)
    elif head == HDF5_MAGIC:
        model = _read_h5(path)
    else:
        raise _refuse(
            path, f"not a Keras model file (neither a .keras archive nor HDF5); {SAVE_HINT}"
        )
    model.size_bytes = size
    return model


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise _refuse(
            path, f"{name} is {info.file_size:,} bytes, more than the {limit:,} tdcheck reads"
        )
    with archive.open(info) as member:
        data = member.read(limit + 1)  # the header's size may lie
    if len(data) > limit:
        raise _refuse(path, f"{name} holds more than the {limit:,} bytes tdcheck reads")
    return data


def _read_keras(path: str) -> ModelFile:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise _refuse(
                    path, f"a zip archive without config.json: not a Keras model; {SAVE_HINT}"
                )
            raw = _read_member(archive, "config.json", MAX_CONFIG_BYTES, path)
            version = None
            if "metadata.json" in names:
                try:
                    meta = json.loads(
                        _read_member(archive, "metadata.json", MAX_METADATA_BYTES, path)
                    )
                    version = _text(meta.get("keras_version")) if isinstance(meta, dict) else None
                except (ValueError, ConfigError):
                    version = None
    except ConfigError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise _refuse(path, f"corrupt or truncated .keras archive ({exc})") from None
    config = _parse_config(raw, path, "config.json")
    return ModelFile(path, "keras", config, version, compiled=bool(config.get("compile_config")))


def _text(value: Any) -> str | None:
    """A version string as found, lone surrogates replaced; None for anything else."""
    if not isinstance(value, str):
        return None
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


#: How long reading an ``.h5`` file's attributes may take: the HDF5 library can loop forever
#: (or crash) on a damaged file, so it reads in a child process that is stopped after this.
H5_READ_SECONDS = 30.0

#: The child's program: read the attributes scan needs, print them as JSON (bytes in base64).
_H5_READER = """
import base64, json, sys
def out(**kw):
    print(json.dumps(kw)); sys.exit(0)
def raw(value):
    if value is None: return None
    if isinstance(value, str): value = value.encode("utf-8", "surrogateescape")
    elif not isinstance(value, bytes): value = str(value).encode("utf-8", "replace")
    return base64.b64encode(value).decode()
try:
    import h5py
except ImportError:
    out(status="no-h5py")
try:
    with h5py.File(sys.argv[1], "r") as handle:
        if "model_config" not in handle.attrs:
            out(status="weights-only")
        if handle.attrs.get_id("model_config").get_storage_size() > int(sys.argv[2]):
            out(status="too-big")
        config = raw(handle.attrs["model_config"])
        out(status="ok", config=config, version=raw(handle.attrs.get("keras_version")),
            compiled="training_config" in handle.attrs)
except Exception as exc:
    out(status="error", error=f"{type(exc).__name__}: {exc}"[:300])
"""


def _read_h5(path: str) -> ModelFile:
    import base64
    import subprocess
    import sys

    try:
        proc = subprocess.run(
            [sys.executable, "-c", _H5_READER, os.path.abspath(path), str(MAX_CONFIG_BYTES)],
            capture_output=True, timeout=H5_READ_SECONDS, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise _refuse(
            path, f"reading the HDF5 file did not finish in {H5_READ_SECONDS:g} s (corrupt?)"
        ) from None
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise _refuse(path, f"corrupt HDF5 file (the HDF5 reader stopped: {why})") from None
    status = answer.get("status")
    if status == "no-h5py":  # pragma: no cover - h5py comes with TensorFlow
        raise _refuse(path, "an HDF5 file, and h5py is not installed to read it")
    if status == "weights-only":
        raise _refuse(
            path,
            "an HDF5 file without a model_config: weights only, no layer structure; " + SAVE_HINT,
        )
    if status == "too-big":
        raise _refuse(
            path, f"model_config holds more than the {MAX_CONFIG_BYTES:,} bytes tdcheck reads"
        )
    if status != "ok":
        raise _refuse(path, f"corrupt or truncated HDF5 file ({answer.get('error')})")
    raw = base64.b64decode(answer["config"])
    version: Any = answer.get("version")
    version = None if version is None else base64.b64decode(version)
    compiled = bool(answer.get("compiled"))
    if version is not None:  # h5py hands invalid UTF-8 over as lone surrogates: replaced
        version = version.decode("utf-8", "replace")
    return ModelFile(path, "h5", _parse_config(raw, path, "model_config"),
                     None if version is None else str(version), compiled=compiled)  # fmt: skip


#: A ``\\uXXXX`` escape of a UTF-16 surrogate pair (kept) or of a lone surrogate (which no
#: UTF-8 stream or file can hold: replaced by U+FFFD before the JSON is decoded).
_SURROGATE_ESCAPE = re.compile(
    r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\ud[89a-f][0-9a-f]{2}", re.IGNORECASE
)


def _parse_config(raw: bytes, path: str, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(
            path, f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    text = _SURROGATE_ESCAPE.sub(lambda m: m.group(0) if m.group(1) else "\\ufffd", text)
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _refuse(path, f"{what} cannot be read as JSON ({exc})") from None
    if not (isinstance(config, dict) and isinstance(config.get("class_name"), str)):
        raise _refuse(path, f"{what} does not describe a Keras model")
    if json_depth(config) > MAX_CONFIG_DEPTH:
        raise _refuse(path, f"{what} is nested more than {MAX_CONFIG_DEPTH} levels deep")
    return config


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (iterative: any depth is measured)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


#: What a malformed config makes the pure-Python walk below raise (a string where a dict
#: belongs, a number where a list does...); :func:`_guarded` turns it into exit 2.
MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


def _guarded(function: Callable[..., T]) -> Callable[..., T]:
    """Run ``function`` on a user's config: a config of the wrong shape is a
    :class:`ConfigError` (exit 2, the caller names the file), never a crash."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except ConfigError:
            raise
        except MALFORMED as exc:
            raise ConfigError(
                f"the model config is malformed ({type(exc).__name__}: {exc})"
            ) from None

    return guarded


# -- walking a config ---------------------------------------------------------------------


def _inner(entry: dict[str, Any]) -> dict[str, Any]:
    config = entry.get("config")
    return config if isinstance(config, dict) else {}


def _layers(model: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The layer entries of a model config (Keras 3, Keras 2 and old list-style Sequential)."""
    config = model.get("config")
    if isinstance(config, list):
        return [e for e in config if isinstance(e, dict)]
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        return [e for e in config["layers"] if isinstance(e, dict)]
    return None


def model_name(model: dict[str, Any]) -> str:
    """The model's name for reports (control characters escaped: a name holding a newline or
    an escape sequence cannot break a table row or recolour the terminal)."""
    name = _inner(model).get("name") or model.get("name")
    return one_line(str(name) if name else str(model.get("class_name", "model")))


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a nested config (lists and dicts, at any depth), outer ones first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def uses_masks(model: dict[str, Any]) -> bool:
    """True when any layer, at any depth, produces a Keras mask."""
    for value in _dicts(model):
        name = value.get("class_name")
        config = value.get("config")
        if isinstance(config, dict) and (
            name in MASK_PRODUCERS or (name == "Embedding" and config.get("mask_zero"))
        ):
            return True
    return False


def _shape(value: Any) -> list[int | None] | None:
    """``value`` when it is a shape (whole numbers and None; a list in a file, a tuple in
    memory), else None."""
    if isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value
    ):
        return list(value)
    return None


def _input_shape(
    entry: dict[str, Any], wrapped: dict[str, Any], known: dict[int, list[Any]] | None = None
) -> list[Any] | None:
    build = entry.get("build_config")
    if isinstance(build, dict) and _shape(build.get("input_shape")) is not None:
        return _shape(build["input_shape"])
    for source in (_inner(entry), _inner(wrapped)):
        for key in ("batch_input_shape", "batch_shape"):
            if _shape(source.get(key)) is not None:
                return _shape(source[key])
    nodes = entry.get("inbound_nodes")  # Keras 3 records the first call's input tensor
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
        args = nodes[0].get("args")
        first = args[0] if isinstance(args, list) and args else None
        if isinstance(first, dict) and _shape(_inner(first).get("shape")) is not None:
            return _shape(_inner(first)["shape"])
    if known and id(entry) in known:  # Keras 2: carried from the model's input
        return _shape(known[id(entry)])
    return None


# Keras 2 (.h5) configs record the model's input shape but no layer's: the shapes a
# TimeDistributed layer sees are carried through the common layers from the input.
_SAME_SHAPE = frozenset(("Dropout", "AlphaDropout", "GaussianNoise", "GaussianDropout",
    "SpatialDropout1D", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
    "Masking", "BatchNormalization", "LayerNormalization", "UnitNormalization", "Rescaling",
    "ActivityRegularization", "Identity"))  # fmt: skip
_RECURRENT = frozenset(("LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU"))


def _next_shape(entry: dict[str, Any], shape: list[Any] | None) -> list[Any] | None:
    """The output shape of the layer ``entry`` given its input ``shape``; None when unknown."""
    kind, config = entry.get("class_name"), _inner(entry)
    if kind == "InputLayer":
        given = config.get("batch_input_shape", config.get("batch_shape"))
        return list(given) if isinstance(given, list) else None
    if shape is None:
        return None
    if kind in _SAME_SHAPE:
        return list(shape)
    if kind == "Dense" and isinstance(config.get("units"), int):
        return [*shape[:-1], config["units"]]
    if kind == "Conv1D" and isinstance(config.get("filters"), int) and len(shape) == 3:
        same = config.get("padding") in ("same", "causal") and config.get("strides") in (1, [1])
        return [shape[0], shape[1] if same else None, config["filters"]]
    if kind == "Embedding" and isinstance(config.get("output_dim"), int):
        return [*shape, config["output_dim"]]
    if kind in _RECURRENT and isinstance(config.get("units"), int) and len(shape) == 3:
        return [*shape[:2], config["units"]] if config.get("return_sequences") else [
            shape[0], config["units"]]  # fmt: skip
    if kind == "Bidirectional" and isinstance(config.get("layer"), dict):
        inner = _next_shape(config["layer"], shape)
        if inner is not None and config.get("merge_mode", "concat") == "concat":
            inner = [*inner[:-1], 2 * inner[-1]] if isinstance(inner[-1], int) else None
        return inner
    if kind == "TimeDistributed" and isinstance(config.get("layer"), dict) and len(shape) > 2:
        step = _next_shape(config["layer"], [shape[0], *shape[2:]])
        return None if step is None else [shape[0], shape[1], *step[1:]]
    return None


def _keras2_shapes(model: dict[str, Any]) -> dict[int, list[Any]]:
    """``id(entry) -> input shape`` for each layer of a Keras 2 Sequential or functional
    config whose input shape follows from the model's (single-input layers only)."""
    shapes: dict[int, list[Any]] = {}
    entries = _layers(model) or []
    if model.get("class_name") == "Sequential":
        shape: list[Any] | None = None
        for n, entry in enumerate(entries):
            given = _inner(entry).get("batch_input_shape")
            if n == 0 and entry.get("class_name") != "InputLayer" and isinstance(given, list):
                shape = list(given)
            if shape is not None and entry.get("class_name") != "InputLayer":
                shapes[id(entry)] = shape
            shape = _next_shape(entry, shape)
        return shapes
    outputs: dict[str, list[Any] | None] = {}
    for entry in entries:
        nodes = entry.get("inbound_nodes")
        source = None
        if isinstance(nodes, list) and len(nodes) == 1 and isinstance(nodes[0], list):
            inbound = nodes[0]
            if len(inbound) == 1 and isinstance(inbound[0], list) and inbound[0]:
                source = outputs.get(str(inbound[0][0]))
        if source is not None:
            shapes[id(entry)] = source
        outputs[str(entry.get("name", _inner(entry).get("name")))] = _next_shape(entry, source)
    return shapes


def _judge(
    entry: dict[str, Any], path: str, masked: bool, known: dict[int, list[Any]] | None = None
) -> WrappedLayer:
    config = _inner(entry)
    wrapped = config.get("layer") if isinstance(config.get("layer"), dict) else {}
    assert isinstance(wrapped, dict)
    wrapped_class = str(wrapped.get("class_name", "?"))
    wrapped_config = _inner(wrapped)
    if wrapped.get("registered_name") not in (None, wrapped_class) or (
        wrapped.get("module") not in KERAS_MODULES
    ):  # a custom class that happens to share a built-in's name
        verdict = rules.Verdict(rules.NOT_REWRITABLE, rules.UNKNOWN_REASON)
    else:
        verdict = rules.judge(wrapped_class, wrapped_config, masked=masked)
    name = str(config.get("name", entry.get("name", "?")))  # as saved: rewrite keeps it
    return WrappedLayer(
        path=f"{path}/{one_line(name)}",
        name=name,
        wrapped_class=one_line(wrapped_class),
        wrapped_summary=one_line(rules.summary(wrapped_config)),
        input_shape=_input_shape(entry, wrapped, known),
        verdict=verdict,
        trainable=bool(config.get("trainable", True)),
    )


@_guarded
def time_distributed_layers(model: dict[str, Any]) -> list[WrappedLayer]:
    """Every ``TimeDistributed`` layer in ``model`` and its nested sub-models, in order."""
    masked = uses_masks(model)
    found: list[WrappedLayer] = []

    def walk(node: dict[str, Any], path: str) -> None:
        known = _keras2_shapes(node)
        for entry in _layers(node) or []:
            if entry.get("class_name") == "TimeDistributed":
                judged = _judge(entry, path, masked, known)
                found.append(judged)
                inner = wrapped_model(entry)
                if inner is not None:  # TimeDistributed(encoder): the encoder's own layers
                    walk(inner, f"{judged.path}/{model_name(inner)}")
            elif _layers(entry) is not None:
                walk(entry, f"{path}/{model_name(entry)}")

    walk(model, model_name(model))
    return found


def wrapped_model(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The model a ``TimeDistributed`` entry wraps (a hierarchical encoder), else None."""
    wrapped = _inner(entry).get("layer")
    return wrapped if isinstance(wrapped, dict) and _layers(wrapped) is not None else None


def _drop_mask_arguments(entry: dict[str, Any]) -> None:
    """TimeDistributed's saved calls name a ``mask`` argument that most layers' ``call``
    lacks; Keras passes masks on by itself (``compute_mask``), so the argument goes."""
    nodes = entry.get("inbound_nodes")
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
            node["kwargs"].pop("mask", None)


@dataclass
class Rewritten:
    """What :func:`rewrite_config` replaced and what it left alone."""

    replaced: list[WrappedLayer] = field(default_factory=list)
    kept: list[WrappedLayer] = field(default_factory=list)


@_guarded
def rewrite_config(
    model: dict[str, Any], *, inference_only: bool = False
) -> tuple[dict[str, Any], Rewritten]:
    """A copy of ``model`` with each rewritable ``TimeDistributed`` replaced by its layer.

    The replacement keeps the wrapper's name (so weights, inbound nodes and downstream
    code still match), its inputs, build shape and trainability. ``inference_only``
    also replaces the layers that are equal in inference only (BatchNormalization...).
    """
    result = copy.deepcopy(model)
    masked = uses_masks(model)
    done = Rewritten()

    def walk(node: dict[str, Any], path: str) -> None:
        for entry in _layers(node) or []:
            if entry.get("class_name") == "TimeDistributed":
                found = _judge(entry, path, masked)
                allowed = found.verdict.rewritable or (
                    inference_only and found.verdict.verdict == rules.INFERENCE_ONLY
                )
                if not (allowed and found.verdict.config is not None):
                    done.kept.append(found)
                    inner = wrapped_model(entry)
                    if inner is not None:  # the wrapper stays; its model's layers are rewritten
                        walk(inner, f"{found.path}/{model_name(inner)}")
                    continue
                wrapped = _inner(entry)["layer"]
                new_config = dict(found.verdict.config)
                new_config["name"] = found.name
                if "trainable" in new_config or not found.trainable:  # some layers take no
                    new_config["trainable"] = found.trainable and bool(  # trainable argument
                        new_config.get("trainable", True)
                    )
                for key in ("class_name", "module", "registered_name"):
                    if key in wrapped:
                        entry[key] = wrapped[key]
                    else:
                        entry.pop(key, None)
                entry["config"] = new_config
                _drop_mask_arguments(entry)
                done.replaced.append(found)
            elif _layers(entry) is not None:
                walk(entry, f"{path}/{model_name(entry)}")

    walk(result, model_name(result))
    return result, done


# -- Keras 2 configs ------------------------------------------------------------------------

#: Keras 2 arguments Keras 3 no longer takes, per layer class, with the one value that means
#: what Keras 3 does anyway (the argument can then be dropped without changing the model).
KERAS2_ONLY: dict[str, dict[str, Any]] = {
    name: {"time_major": False} for name in ("LSTM", "GRU", "SimpleRNN", "RNN", "CuDNNLSTM",
                                             "CuDNNGRU")
}  # fmt: skip


def keras2_conversion(model: dict[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
    """``model`` without the Keras 2 arguments Keras 3 refuses (``time_major=False`` of an
    LSTM, GRU or SimpleRNN, at any depth), and one text per dropped argument.

    Only an argument whose value means what Keras 3 does anyway is dropped; any other
    value (``time_major=True``: time first) is a :class:`ConfigError`, since dropping it
    would change the model.

    >>> cfg = {"class_name": "LSTM", "config": {"name": "l", "time_major": False}}
    >>> keras2_conversion(cfg, "m.h5")
    ({'class_name': 'LSTM', 'config': {'name': 'l'}}, ['l: time_major=False'])
    """
    result = copy.deepcopy(model)
    dropped: list[str] = []

    for value in list(_dicts(result)):
        config = value.get("config")
        keys = KERAS2_ONLY.get(str(value.get("class_name")), {})
        if isinstance(config, dict):
            for key, harmless in keys.items():
                if key not in config:
                    continue
                if config[key] != harmless:
                    raise _refuse(
                        path,
                        f"layer {config.get('name')!r} has the Keras 2 argument "
                        f"{key}={config[key]!r}, which Keras 3 cannot express; load it with "
                        "tf_keras (Keras 2) instead",
                    )
                dropped.append(f"{config.get('name')}: {key}={config.pop(key)!r}")
    return result, dropped
