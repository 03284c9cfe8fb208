"""Running deployment artifacts in their own runtimes, and writing them with Keras.

* SavedModel: ``tf.saved_model.load`` and its ``serving_default`` signature (what TF
  Serving calls), inputs by keyword, outputs as the signature names them.
* ONNX: ``onnxruntime.InferenceSession`` on the CPU.
* LiteRT: ``ai_edge_litert``'s interpreter (TensorFlow's deprecated ``tf.lite.Interpreter``
  when it is not installed), inputs resized to each probe's shape.

An artifact is never re-imported as Keras. Its input and output signature is read from
the artifact itself (:class:`Artifact`), so ``commands`` can match it with a Keras
model's. A runtime that is missing is exit 3 with the install line; a file the runtime
cannot read is exit 2, one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.artifact_file import (
    FORMAT_NAMES,
    INSTALL,
    artifact_size,
    check_artifact_file,
)
from tdcheck.engines.tensorflow import error_text, load_tensorflow, quiet
from tdcheck.errors import ConfigError, EnvironmentProblem

SIGNATURE = "serving_default"
ONNX_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool",
    "tensor(bfloat16)": "bfloat16",
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as the artifact declares it (unknown sizes are None)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


class ArtifactRaised(Exception):
    """The artifact's runtime raised on an input (one line of text)."""


class NeedsFlex(EnvironmentProblem):
    """A LiteRT file with TensorFlow select ops, which the Python interpreter cannot run."""


@dataclass
class Artifact:
    """A loaded artifact: its signature and a function that runs it."""

    path: str
    format: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    runner: Callable[[Sequence[np.ndarray]], list[np.ndarray]] = field(repr=False)
    size_bytes: int = 0
    load_s: float = 0.0
    weights: int | None = None  # stored weight elements, where the format tells them
    runtime: str = ""

    @property
    def kind(self) -> str:
        return FORMAT_NAMES[self.format]

    def run(self, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs in :attr:`outputs` order; :class:`ArtifactRaised` when the runtime raises."""
        try:
            with quiet():
                return [np.asarray(y) for y in self.runner(xs)]
        except (EnvironmentProblem, ConfigError):
            raise
        except Exception as exc:
            raise ArtifactRaised(error_line(exc)) from None


def error_line(exc: BaseException) -> str:
    """The one line of a runtime's error worth showing (TensorFlow's and onnxruntime's
    errors carry node traces and C++ source locations)."""
    text = error_text(exc)
    if "Status Message:" in text:  # onnxruntime: the innermost node's own words
        text = text.rsplit("Status Message:", 1)[1].strip()
        text = re.sub(r"^/\S+:[0-9]+ [^ ].*?\) ", "", text)  # the C++ source location
    # TensorFlow's graph errors start with "Graph execution error:" and a node trace.
    lines = [ln.strip() for ln in text.replace("\\n", "\n").splitlines() if ln.strip()]
    for line in lines:
        if re.search(
            r"(out of bounds|Incompatible|must be|[Ii]nvalid|[Ee]rror:|mismatch)", line
        ) and not line.startswith(("Detected at node", "Graph execution error")):
            return line[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def open_artifact(path: str, fmt: str) -> Artifact:
    """Load ``path`` as a ``savedmodel``/``onnx``/``tflite`` artifact and read its signature."""
    check_artifact_file(path, fmt)
    start = time.perf_counter()
    artifact = {"savedmodel": _open_savedmodel, "onnx": _open_onnx, "tflite": _open_tflite}[fmt](
        path
    )
    artifact.load_s = time.perf_counter() - start
    artifact.size_bytes = artifact_size(path)
    return artifact


# -- SavedModel ---------------------------------------------------------------------------


def _spec_info(name: str, spec: Any) -> TensorInfo:
    shape = tuple(None if d is None else int(d) for d in spec.shape.as_list())
    return TensorInfo(name, shape, str(spec.dtype.name))


def _output_order(names: list[str]) -> list[str]:
    """Keras names a signature's outputs ``output_0``, ``output_1``...: in that order."""
    numbered = [re.fullmatch(r"output_([0-9]+)", n) for n in names]
    if all(numbered):
        return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))
    return sorted(names)


def _open_savedmodel(path: str) -> Artifact:
    tf, _ = load_tensorflow()
    try:
        with quiet():
            loaded = tf.saved_model.load(path)
    except Exception as exc:
        raise ConfigError(
            f"{path}: TensorFlow cannot load it as a SavedModel ({error_line(exc)})"
        ) from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if SIGNATURE not in signatures:
        found = ", ".join(sorted(signatures)) or "none"
        raise ConfigError(
            f"{path}: a SavedModel without a {SIGNATURE!r} serving signature (signatures: "
            f"{found}); export it with model.export(path) or tf.saved_model.save(..., "
            "signatures=...)"
        )
    function = signatures[SIGNATURE]
    args, kwargs = function.structured_input_signature
    if args:
        raise ConfigError(f"{path}: its {SIGNATURE!r} signature takes positional inputs")
    inputs = [_spec_info(name, spec) for name, spec in kwargs.items()]
    outputs_spec = function.structured_outputs
    if not isinstance(outputs_spec, dict) or not outputs_spec:
        raise ConfigError(f"{path}: its {SIGNATURE!r} signature declares no named outputs")
    order = _output_order(list(outputs_spec))
    outputs = [_spec_info(name, outputs_spec[name]) for name in order]
    names = [i.name for i in inputs]
    dtypes = [i.dtype for i in inputs]

    def run(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feed = {n: tf.constant(x, dtype=d) for n, x, d in zip(names, xs, dtypes, strict=True)}
        result = function(**feed)
        return [result[name].numpy() for name in order]

    weights = sum(int(np.prod(v.shape)) for v in getattr(loaded, "variables", []))
    return Artifact(path, "savedmodel", inputs, outputs, run, weights=weights,
                    runtime=f"TensorFlow {tf.__version__} (tf.saved_model.load)")  # fmt: skip


# -- ONNX ---------------------------------------------------------------------------------


def _import_onnxruntime() -> Any:
    load_tensorflow()  # first, quietly: onnxruntime's import logs through absl too
    try:
        with quiet():
            import onnxruntime
    except ImportError:
        raise EnvironmentProblem(
            f"running an ONNX model needs onnxruntime: {INSTALL['onnx']}"
        ) from None
    return onnxruntime


def _onnx_info(item: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (item.shape or []))
    return TensorInfo(str(item.name), shape, ONNX_TYPES.get(str(item.type), str(item.type)))


def _open_onnx(path: str) -> Artifact:
    ort = _import_onnxruntime()
    ort.set_default_logger_severity(4)  # runtime errors come back as exceptions
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        with quiet():
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(f"{path}: onnxruntime cannot load it ({error_line(exc)})") from None
    inputs = [_onnx_info(i) for i in session.get_inputs()]
    outputs = [_onnx_info(o) for o in session.get_outputs()]
    names = [i.name for i in inputs]

    def run(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(session.run(None, dict(zip(names, xs, strict=True))))

    return Artifact(path, "onnx", inputs, outputs, run,
                    runtime=f"onnxruntime {ort.__version__}")  # fmt: skip


# -- LiteRT -------------------------------------------------------------------------------


def _interpreter_class() -> tuple[Any, str]:
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '')}".strip()
    except ImportError:
        pass
    try:
        tf, _ = load_tensorflow()
        return tf.lite.Interpreter, f"TensorFlow {tf.__version__} tf.lite.Interpreter"
    except (EnvironmentProblem, AttributeError):
        raise EnvironmentProblem(
            f"running a LiteRT model needs ai-edge-litert: {INSTALL['tflite']}"
        ) from None


FLEX_TEXT = "Select TensorFlow op"


def _flex(path: str) -> NeedsFlex:
    return NeedsFlex(
        f"{path}: the LiteRT model uses TensorFlow select ops (Flex), which this Python LiteRT "
        "interpreter cannot run, so it cannot be checked here; Keras converts LSTM/GRU layers "
        "with an unknown batch size that way. Run it where the Flex delegate is linked "
        "(an app built with select TF ops), or export SavedModel/ONNX"
    )


def _open_tflite(path: str) -> Artifact:
    interpreter_class, runtime = _interpreter_class()
    try:
        with quiet():
            interpreter = interpreter_class(model_path=path)
    except Exception as exc:
        raise ConfigError(
            f"{path}: the LiteRT interpreter cannot load it ({error_line(exc)})"
        ) from None
    details = interpreter.get_input_details()
    out_details = interpreter.get_output_details()
    signature = _tflite_signature(interpreter)

    def info(item: dict[str, Any], name: str) -> TensorInfo:
        shape = item.get("shape_signature", item["shape"])
        return TensorInfo(name, tuple(None if int(d) < 0 else int(d) for d in shape),
                          np.dtype(item["dtype"]).name)  # fmt: skip

    in_names = signature[0] if signature else [_tflite_name(d["name"]) for d in details]
    out_names = signature[1] if signature else [_tflite_name(d["name"]) for d in out_details]
    if len(in_names) != len(details) or len(out_names) != len(out_details):
        in_names = [_tflite_name(d["name"]) for d in details]
        out_names = [_tflite_name(d["name"]) for d in out_details]
    inputs = [info(d, n) for d, n in zip(details, in_names, strict=True)]
    outputs = [info(d, n) for d, n in zip(out_details, out_names, strict=True)]
    try:
        with quiet():
            interpreter.allocate_tensors()
    except Exception as exc:
        if FLEX_TEXT in str(exc):
            raise _flex(path) from None
        raise ConfigError(
            f"{path}: the LiteRT interpreter cannot prepare it ({error_line(exc)})"
        ) from None

    def run(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for d, x in zip(details, xs, strict=True):
            interpreter.resize_tensor_input(d["index"], list(x.shape), strict=False)
        try:
            interpreter.allocate_tensors()
            for d, x in zip(details, xs, strict=True):
                interpreter.set_tensor(d["index"], np.ascontiguousarray(x, dtype=d["dtype"]))
            interpreter.invoke()
        except Exception as exc:
            if FLEX_TEXT in str(exc):
                raise _flex(path) from None
            raise
        return [np.array(interpreter.get_tensor(d["index"])) for d in out_details]

    return Artifact(path, "tflite", inputs, outputs, run, runtime=runtime)


def _tflite_name(name: str) -> str:
    """``serving_default_x:0`` -> ``x``."""
    name = name.split(":", 1)[0]
    return name[len(SIGNATURE) + 1 :] if name.startswith(SIGNATURE + "_") else name


def _tflite_signature(interpreter: Any) -> tuple[list[str], list[str]] | None:
    """Input and output names from the ``serving_default`` signature, in tensor order."""
    try:
        signatures = interpreter.get_signature_list()
        runner_info = signatures.get(SIGNATURE)
        if not runner_info:
            return None
        runner = interpreter.get_signature_runner(SIGNATURE)
        ins = runner.get_input_details()
        outs = runner.get_output_details()
        by_index_in = {v["index"]: k for k, v in ins.items()}
        by_index_out = {v["index"]: k for k, v in outs.items()}
        order_in = [by_index_in[d["index"]] for d in interpreter.get_input_details()]
        order_out = [by_index_out[d["index"]] for d in interpreter.get_output_details()]
        return order_in, order_out
    except Exception:  # an old file or interpreter without signature runners
        return None


# -- writing ------------------------------------------------------------------------------

KERAS_FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}


def check_exporter(fmt: str) -> None:
    """Exit 3 with the install line when Keras cannot write ``fmt`` here (looked up, not
    imported: tf2onnx imports TensorFlow, which must be loaded quietly first)."""
    if fmt == "onnx":
        for module in ("tf2onnx", "onnx"):
            if not installed(module):
                raise EnvironmentProblem(
                    f"Keras exports ONNX through {module}, which is not installed: "
                    f"{INSTALL['onnx']}"
                )


def installed(module: str) -> bool:
    """True when ``module`` can be imported (found, not imported)."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    names = ("tf2onnx", "onnx", "absl")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def write_artifact(model: Any, path: str, fmt: str) -> None:
    """``model.export(path, format=...)``, quietly; a failure is one line (exit 1 is the
    caller's: the model cannot be exported in that format)."""
    check_exporter(fmt)
    with (
        quiet(),
        _quiet_loggers(),
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        model.export(path, format=KERAS_FORMATS[fmt], verbose=False)


class ExportFailed(Exception):
    """Keras could not export the model (one line of text)."""


def export(model: Any, path: str, fmt: str) -> None:
    try:
        write_artifact(model, path, fmt)
    except (EnvironmentProblem, KeyboardInterrupt, OSError):
        raise
    except Exception as exc:
        raise ExportFailed(error_line(exc)) from None


# -- folding time into the batch ----------------------------------------------------------


def fold_time_distributed(model: Any) -> tuple[Any, list[str]]:
    """``model`` with every ``TimeDistributed`` layer (at any depth) computed as one call
    of its layer on ``(batch * time, ...)``, reshaped back: plain ``keras.ops`` reshapes,
    no loop over an unknown axis, so a traced export is right for any batch and length.

    The layers (and their weights) are shared with ``model``; only the wrappers are new.
    Returns the model and the paths of the folded layers (the model itself when none).
    """
    _, keras = load_tensorflow()
    folded_class = _folded_class(keras)
    folded: list[str] = []

    def clone(layer: Any, path: str) -> Any:
        if type(layer).__name__ == "TimeDistributed":
            inner = layer.layer
            if _is_graph(inner):
                inner = fold_graph(inner, f"{path}/{layer.name}")
            folded.append(f"{path}/{layer.name}")
            return folded_class(inner, name=layer.name)
        if _is_graph(layer):
            return fold_graph(layer, f"{path}/{layer.name}")
        return layer

    def fold_graph(graph: Any, path: str) -> Any:
        if not _contains_td(graph):
            return graph
        with quiet():
            return keras.models.clone_model(graph, clone_function=lambda layer: clone(layer, path))

    result = fold_graph(model, model.name)
    return result, folded


def custom_layers(model: Any) -> list[str]:
    """Names of the layers (at any depth of the graph) that are not Keras' own classes."""
    found: list[str] = []
    for layer in getattr(model, "layers", []) or []:
        if _is_graph(layer):
            found += custom_layers(layer)
        elif type(layer).__name__ != "FoldedTimeDistributed" and not (
            type(layer).__module__.startswith("keras.")
        ):
            found.append(f"{layer.name} ({type(layer).__name__})")
    return found


def _is_graph(layer: Any) -> bool:
    return type(layer).__name__ in ("Functional", "Sequential")


def _contains_td(layer: Any) -> bool:
    for sub in getattr(layer, "layers", []) or []:
        if type(sub).__name__ == "TimeDistributed" or (_is_graph(sub) and _contains_td(sub)):
            return True
    return False


_FOLDED: Any = None


def _folded_class(keras: Any) -> Any:
    """A ``TimeDistributed`` whose call folds time into the batch (built once)."""
    global _FOLDED
    if _FOLDED is not None:
        return _FOLDED
    ops = keras.ops

    class FoldedTimeDistributed(keras.layers.TimeDistributed):
        """TimeDistributed computed as ``layer(reshape(x, (-1, *inner)))`` reshaped back."""

        def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
            shape = ops.shape(inputs)
            flat = ops.reshape(inputs, (-1, *shape[2:]))
            kwargs: dict[str, Any] = {}
            if self.layer._call_has_training_arg:
                kwargs["training"] = training
            if self.layer._call_has_mask_arg and mask is not None:
                kwargs["mask"] = ops.reshape(mask, (-1, *ops.shape(mask)[2:]))
            outputs = self.layer.call(flat, **kwargs)
            return ops.reshape(outputs, (shape[0], shape[1], *ops.shape(outputs)[1:]))

    _FOLDED = FoldedTimeDistributed
    return _FOLDED


def call_keras(model: Any, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The Keras model called eagerly (the reference); :class:`ArtifactRaised` on error."""
    _, keras = load_tensorflow()
    try:
        with quiet():
            out = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        return [np.asarray(t) for t in keras.tree.flatten(out)]
    except Exception as exc:
        raise ArtifactRaised(error_line(exc)) from None


def keras_inputs(model: Any) -> list[tuple[str, tuple[int | None, ...], str]]:
    """``(name, shape, dtype)`` of each input, named as an export names them: after the
    input layer (an in-memory tensor is called ``keras_tensor_N``)."""
    specs = []
    for tensor in getattr(model, "inputs", None) or []:
        history = getattr(tensor, "_keras_history", None)
        layer = history[0] if history else None
        name = str(getattr(layer, "name", None) or getattr(tensor, "name", "input"))
        shape = tuple(None if d is None else int(d) for d in tensor.shape)
        specs.append((name, shape, str(tensor.dtype)))
    return specs


def keras_outputs(model: Any) -> list[TensorInfo]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return [
        TensorInfo(n, tuple(None if d is None else int(d) for d in t.shape), str(t.dtype))
        for n, t in zip(names, model.outputs, strict=True)
    ]
