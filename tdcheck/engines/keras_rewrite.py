"""All Keras work behind ``scan``'s siblings: load, rebuild without TimeDistributed, run, time.

The rewrite goes through the model's config: :func:`tdcheck.core.model_file.rewrite_config`
replaces each rewritable ``TimeDistributed`` entry by its wrapped layer (keeping the
wrapper's name and inbound nodes), Keras rebuilds the model from that config (Sequential,
functional, nested sub-models, shared layers, masks, several inputs and outputs alike),
and the weights are copied layer by layer, matched by name, with their shapes checked.
A subclassed model has no config to rebuild and gets a clear error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tdcheck.core.model_file import Rewritten, rewrite_config
from tdcheck.engines.common import error_text, quiet
from tdcheck.errors import ConfigError, EnvironmentProblem

GRAPH_CLASSES = ("Functional", "Sequential")

#: The Keras backend this module's models run on (set by :func:`use_backend`).
_BACKEND: str | None = None


def use_backend(backend: str) -> str:
    """Run the models of this process on Keras's ``backend`` (tensorflow, jax or torch).

    Keras picks its backend once, at import: when it is not imported yet it is imported for
    ``backend`` (JAX and torch without importing TensorFlow); when it already runs on
    another backend this raises :class:`~tdcheck.engines.base.EngineBusy` (the caller then
    uses a worker process or refuses). Returns the backend.
    """
    global _BACKEND
    from tdcheck.engines.base import EngineBusy, keras_owner, require_installed

    if backend not in ("tensorflow", "jax", "torch"):
        raise ConfigError(f"--backend: {backend!r} is not one of tensorflow, jax, torch")
    owner = keras_owner()
    if owner is not None and owner != backend:
        raise EngineBusy(f"this process already runs Keras on {owner}; {backend} needs its own")
    require_installed(backend)
    _BACKEND = backend
    _keras()
    return backend


def _keras() -> Any:
    """Keras for this module's backend (the default one, ``KERAS_BACKEND``, unless
    :func:`use_backend` chose another); TensorFlow is imported only on its own backend."""
    global _BACKEND
    if _BACKEND is None:
        from tdcheck.core.backends import default_backend
        from tdcheck.engines.base import keras_owner

        _BACKEND = keras_owner() or default_backend()
    if _BACKEND == "tensorflow":
        from tdcheck.engines.tensorflow import load_tensorflow

        return load_tensorflow()[1]
    if _BACKEND not in ("jax", "torch"):
        raise EnvironmentProblem(f"Keras runs on {_BACKEND}; tdcheck runs models on "
                                 "tensorflow, jax or torch")  # fmt: skip
    from tdcheck.engines.keras3 import load_keras

    return load_keras(_BACKEND)


@contextlib.contextmanager
def _without_tensorflow() -> Iterator[None]:
    """On JAX or torch, keep Keras's (de)serialisation from importing TensorFlow just to ask
    whether an object is a ``tf.TensorShape`` (see
    :func:`tdcheck.engines.keras3.without_tensorflow_seed`, the same switch)."""
    if _BACKEND in (None, "tensorflow"):
        yield
        return
    from tdcheck.engines.keras3 import without_tensorflow_seed

    with without_tensorflow_seed():
        yield


def keras_module() -> Any:
    """Keras, loaded for this module's backend (see :func:`use_backend`)."""
    return _keras()


def without_tensorflow() -> contextlib.AbstractContextManager[None]:
    """(De)serialise without Keras importing TensorFlow on JAX or torch."""
    return _without_tensorflow()


def backend_name() -> str:
    """The Keras backend the models run on."""
    _keras()
    assert _BACKEND is not None
    return _BACKEND


def load_model(path: str, *, unsafe: bool = False, compile: bool = False) -> Any:
    """Load a saved model with Keras (safe mode unless ``unsafe``), compiled only if asked
    (a legacy ``.h5`` file keeps its compile settings nowhere else)."""
    return load_model_noted(path, unsafe=unsafe, compile=compile)[0]


def load_model_noted(
    path: str, *, unsafe: bool = False, compile: bool = False
) -> tuple[Any, list[str]]:
    """:func:`load_model`, and notes on what loading had to do.

    A Keras 2 ``.h5`` file (most saved TimeDistributed models) can hold arguments Keras 3
    refuses (``time_major=False`` of every LSTM, GRU and SimpleRNN). They are dropped from
    a copy of the file's config (:func:`tdcheck.core.model_file.keras2_conversion`: only
    values that mean what Keras 3 does anyway), and Keras 3 loads that copy; the notes
    say what was dropped.
    """
    from tdcheck.core.model_file import HDF5_MAGIC, keras2_conversion, read_model_file

    try:
        with open(path, "rb") as handle:
            is_h5 = handle.read(8) == HDF5_MAGIC
    except OSError:  # a folder or an unreadable path: Keras says what it is
        is_h5 = False
    if not is_h5:
        return _load(path, path, unsafe=unsafe, compile=compile), []
    converted, dropped = keras2_conversion(read_model_file(path).config, path)
    if not dropped:
        return _load(path, path, unsafe=unsafe, compile=compile), []
    import h5py

    with tempfile.TemporaryDirectory(prefix="tdcheck-keras2-") as folder:
        copy = os.path.join(folder, "model.h5")
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as handle:
            handle.attrs["model_config"] = json.dumps(converted)
        model = _load(copy, path, unsafe=unsafe, compile=compile)
    note = (
        f"IN was saved by Keras 2: loaded with Keras 3 after dropping {len(dropped)} Keras 2 "
        f"argument(s) Keras 3 does not take and whose values it already follows "
        f"({'; '.join(dropped[:3])}{'; ...' if len(dropped) > 3 else ''})"
    )
    return model, [note]


def _load(path: str, shown: str, *, unsafe: bool, compile: bool) -> Any:
    keras = _keras()
    try:
        with quiet(), _without_tensorflow():
            return keras.models.load_model(path, compile=compile, safe_mode=not unsafe)
    except Exception as exc:
        text = error_text(exc)
        if "safe_mode" in text or "unsafe" in text.lower():
            raise ConfigError(
                f"{shown}: Keras' safe mode refuses to load it (it holds Python code, e.g. a "
                "Lambda layer); pass --unsafe only if you trust the file"
            ) from None
        error = ConfigError(f"{shown}: Keras cannot load it ({text})")
        error.reason = f"{type(exc).__name__}: {whole_sentence(str(exc))}"  # type: ignore[attr-defined]
        raise error from None


def whole_sentence(text: str, limit: int = 200) -> str:
    """``text`` on one line, up to the end of its first sentence when that is under
    ``limit`` characters, else cut at a word boundary with an ellipsis: never mid-word.

    >>> whole_sentence("Could not deserialize 'mse'. Please ensure it is registered.")
    "Could not deserialize 'mse'."
    >>> whole_sentence("a b c d", limit=4)
    'a b...'
    """
    text = " ".join(text.split())
    end = text.find(". ")
    if 0 < end < limit:
        return text[: end + 1]
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def check_graph_model(model: Any, what: str) -> None:
    """Refuse subclassed models: their layers are Python code, not a graph to rebuild."""
    kind = type(model).__name__
    if kind not in GRAPH_CLASSES:
        raise ConfigError(
            f"{what}: a subclassed model ({kind}) has no layer graph tdcheck can rebuild; "
            "replace TimeDistributed(layer) by layer in its call(), or build it as a "
            "functional or Sequential model"
        )


def model_config(model: Any) -> dict[str, Any]:
    keras = _keras()
    with _without_tensorflow():
        config: dict[str, Any] = keras.saving.serialize_keras_object(model)
    return config


def rebuild(
    model: Any, *, inference_only: bool = False, unsafe: bool = False
) -> tuple[Any, Rewritten]:
    """``model`` rebuilt with each rewritable TimeDistributed replaced by its layer.

    Returns the model itself (unchanged) when nothing was replaced.
    """
    keras = _keras()
    check_graph_model(model, model.name)
    new_config, done = rewrite_config(model_config(model), inference_only=inference_only)
    if not done.replaced:
        return model, done
    with quiet(), _without_tensorflow():
        try:
            new = keras.saving.deserialize_keras_object(new_config, safe_mode=not unsafe)
        except Exception as exc:
            raise ConfigError(f"cannot rebuild the rewritten model ({error_text(exc)})") from None
        copy_weights(model, new)
    return new, done


def copy_weights(old: Any, new: Any) -> None:
    """Copy every layer's weights from ``old`` to ``new``, matched by name, recursively.

    A ``TimeDistributed`` layer's weights are its wrapped layer's, in the same order, so
    they go straight into the layer that replaced it. Shapes are checked by Keras.
    """
    for layer in new.layers:
        source = old.get_layer(layer.name)
        if hasattr(layer, "layers") and hasattr(source, "layers"):
            copy_weights(source, layer)
        elif _wrapped_model(layer) is not None and _wrapped_model(source) is not None:
            copy_weights(_wrapped_model(source), _wrapped_model(layer))  # TimeDistributed(model)
        elif source.weights or layer.weights:
            layer.set_weights(source.get_weights())


def _wrapped_model(layer: Any) -> Any:
    """The model a TimeDistributed layer wraps (a hierarchical encoder), else None."""
    inner = getattr(layer, "layer", None)
    return inner if type(layer).__name__ == "TimeDistributed" and hasattr(inner, "layers") else None


def _sublayers(layer: Any) -> list[Any]:
    """The layers directly inside ``layer``: a model's, a wrapper's, a Bidirectional's."""
    found = list(getattr(layer, "layers", None) or [])
    for name in ("layer", "forward_layer", "backward_layer"):
        inner = getattr(layer, name, None)
        if inner is not None and hasattr(inner, "weights"):
            found.append(inner)
    return found


def stateful_layers(model: Any) -> list[Any]:
    """Every layer (at any depth) that keeps state between calls (``stateful=True`` RNNs)."""
    found: list[Any] = []
    for layer in _sublayers(model):
        if getattr(layer, "stateful", False) is True and hasattr(layer, "reset_state"):
            found.append(layer)
        else:
            found += stateful_layers(layer)
    return found


def reset_states(model: Any) -> None:
    """Reset every stateful layer, so each call starts from the same (zero) state."""
    for layer in stateful_layers(model):
        layer.reset_state()


def carry_compile(model: Any, compile_config: dict[str, Any] | None) -> str | None:
    """Compile ``model`` like the original (optimizer settings, loss, metrics; not the
    optimizer's state). Returns a note for the report."""
    if not compile_config:
        return None
    try:
        with quiet():
            model.compile_from_config(compile_config)
    except Exception as exc:
        return (
            f"the original's compile settings could not be carried over ({error_text(exc)}); "
            "compile OUT before training"
        )
    return "compile settings carried over (optimizer settings, loss, metrics); optimizer state not"


def compile_config_of(model: Any) -> dict[str, Any] | None:
    """An in-memory model's compile settings, if it was compiled."""
    try:
        config = model.get_compile_config() if getattr(model, "compiled", False) else None
    except Exception:  # a model compiled with objects Keras cannot serialise
        return None
    return config if isinstance(config, dict) else None


def input_specs(model: Any) -> list[tuple[str, tuple[int | None, ...], str]]:
    """``(name, shape, dtype)`` of each model input; unknown sizes are None."""
    specs: list[tuple[str, tuple[int | None, ...], str]] = []
    for tensor in model.inputs:
        shape = tuple(None if d is None else int(d) for d in tensor.shape)
        name = str(getattr(tensor, "name", "") or f"input_{len(specs)}")
        specs.append((name, shape, str(tensor.dtype)))
    return specs


def output_names(model: Any) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    n = len(model.outputs)
    return names if len(names) == n else [f"output_{i}" for i in range(n)]


def _flatten(outputs: Any) -> list[np.ndarray]:
    keras = _keras()
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(outputs)]


def _feed(xs: Sequence[np.ndarray]) -> Any:
    return xs[0] if len(xs) == 1 else list(xs)


class CallFailed(Exception):
    """The model raised when called (its one-line text is the message)."""


def call(model: Any, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model called eagerly in inference mode; one array per output.

    :class:`CallFailed` (one line) when the model raises: a Keras bug in the model
    itself (TimeDistributed(Softmax) under a mask), inputs it cannot take...
    """
    try:
        with quiet():
            reset_states(model)
            return _flatten(model(_feed(xs), training=False))
    except Exception as exc:
        raise CallFailed(error_text(exc)) from None


def predict(model: Any, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``model.predict`` on one batch (the traced path users run in production)."""
    with quiet():
        reset_states(model)
        return _flatten(model.predict(_feed(xs), verbose=0, batch_size=len(xs[0])))


def reset_predict(model: Any) -> None:
    """Forget the traced predict function, so the next call traces anew."""
    model.predict_function = None


def predict_series(model: Any, sets: Sequence[Sequence[np.ndarray]]) -> list[Any]:
    """``predict`` on each input set in turn, from a fresh trace: a list of outputs or
    the text of the error it raised."""
    reset_predict(model)
    results: list[Any] = []
    for xs in sets:
        try:
            results.append(predict(model, xs))
        except Exception as exc:
            results.append(error_text(exc))
    return results


def timings(model: Any, xs: Sequence[np.ndarray], repeats: int = 3) -> dict[str, float]:
    """Seconds for an eager call (median after a warm-up), the first ``predict`` call
    (tracing included) and steady-state ``predict`` (median of ``repeats``)."""
    call(model, xs)
    eager = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(model, xs)
        eager.append(time.perf_counter() - start)
    reset_predict(model)
    start = time.perf_counter()
    predict(model, xs)
    first = time.perf_counter() - start
    steady = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, xs)
        steady.append(time.perf_counter() - start)
    return {
        "call_s": statistics.median(eager),
        "predict_first_s": first,
        "predict_steady_s": statistics.median(steady),
    }


def count_params(model: Any) -> int:
    return int(model.count_params())


def layer_params(model: Any) -> list[tuple[str, str, int]]:
    """``(name, class, parameters)`` of each top-level layer."""
    return [(layer.name, _class_text(layer), int(layer.count_params())) for layer in model.layers]


def layer_weights(model: Any) -> dict[str, list[np.ndarray]]:
    """Each top-level layer's weights, by layer name, in Keras's order (``get_weights``).

    A ``TimeDistributed`` layer's weights are its wrapped layer's, in the same order, so a
    rewritten model's layer (which keeps the wrapper's name) lines up with the original's.
    """
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers}


def _class_text(layer: Any) -> str:
    kind = type(layer).__name__
    inner = getattr(layer, "layer", None)
    return f"{kind}({type(inner).__name__})" if kind == "TimeDistributed" and inner else kind


def count_time_distributed(model: Any) -> int:
    total = 0
    for layer in model.layers:
        if type(layer).__name__ == "TimeDistributed":
            total += 1
            if _wrapped_model(layer) is not None:
                total += count_time_distributed(_wrapped_model(layer))
        elif hasattr(layer, "layers"):
            total += count_time_distributed(layer)
    return total


def save(model: Any, path: str) -> None:
    """Save in the ``.keras`` format (the caller makes it atomic)."""
    with quiet(), _without_tensorflow():
        model.save(path)


def mask_value(model: Any) -> float | None:
    """The ``mask_value`` of the first Masking layer, if the model has one."""
    for layer in model.layers:
        if type(layer).__name__ == "Masking":
            return float(layer.mask_value)
        inner = layer if hasattr(layer, "layers") else _wrapped_model(layer)
        if inner is not None:
            found = mask_value(inner)
            if found is not None:
                return found
    return None


def is_keras_model(value: Any) -> bool:
    """True for a model object, false for a path (str, bytes, os.PathLike)."""
    return not isinstance(value, (str, bytes, os.PathLike))
