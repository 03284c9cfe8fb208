"""A Keras model's float64 clone, and its stored weights in float64: the same computation
in (nearly) exact arithmetic, for ``tdcheck models`` and ``tdcheck rewrite``.

The clone is rebuilt from the model's config with every floating dtype policy and input
dtype set to ``float64``, on the same backend, and given the model's stored weights cast
to float64 (exact: every float16, bfloat16 and float32 value is a float64 value). Where a
layer cannot be rebuilt or run in float64 the caller gets the reason instead of a clone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tdcheck.engines.tensorflow import error_text, load_tensorflow, quiet

_FLOATS = {"float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16"}


def float64_config(config: Any) -> Any:
    """A copy of a serialized Keras config with every float dtype (policy) set to float64.

    >>> policy = {"class_name": "DTypePolicy", "config": {"name": "float16"}}
    >>> float64_config({"dtype": policy, "layers": [{"dtype": "float32"}, {"dtype": "int32"}]})
    {'dtype': {'class_name': 'DTypePolicy', 'config': {'name': 'float64'}}, \
'layers': [{'dtype': 'float64'}, {'dtype': 'int32'}]}
    """
    if isinstance(config, list):
        return [float64_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "dtype" and isinstance(value, str) and value in _FLOATS:
            out[key] = "float64"
        elif (
            key == "config"
            and config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
            and isinstance(value, dict)
        ):
            out[key] = {**value, "name": "float64"}
        else:
            out[key] = float64_config(value)
    return out


def stored_weights(model: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every layer's stored weights in float64 (exact), keyed ``layer/index`` by layer name
    (nested models recursively; a TimeDistributed layer's are its wrapped layer's)."""
    out: dict[str, np.ndarray] = {}
    for layer in model.layers:
        name = f"{prefix}{layer.name}"
        if hasattr(layer, "layers"):
            out.update(stored_weights(layer, f"{name}/"))
            continue
        for i, w in enumerate(layer.get_weights()):
            out[f"{name}/{i}"] = np.asarray(w).astype(np.float64)
    return out


def _set_weights(source: Any, clone: Any) -> None:
    for layer in clone.layers:
        original = source.get_layer(layer.name)
        if hasattr(layer, "layers") and hasattr(original, "layers"):
            _set_weights(original, layer)
        elif original.weights or layer.weights:
            layer.set_weights([np.asarray(w).astype(np.float64) for w in original.get_weights()])


def float64_clone(model: Any, unsafe: bool = False) -> tuple[Any | None, str | None]:
    """``(clone, None)``, or ``(None, why)`` where the model cannot run in float64."""
    _, keras = load_tensorflow()
    if type(model).__name__ not in ("Functional", "Sequential"):
        return None, f"a subclassed model ({type(model).__name__}) has no config to rebuild"
    try:
        with quiet():
            config = float64_config(keras.saving.serialize_keras_object(model))
            clone = keras.saving.deserialize_keras_object(config, safe_mode=not unsafe)
            _set_weights(model, clone)
            wrong = [w.path for w in clone.weights if "float" in str(w.dtype)
                     and str(w.dtype) != "float64"]  # fmt: skip
    except Exception as exc:
        return None, f"it cannot be rebuilt in float64 ({error_text(exc)})"
    if wrong:
        return None, f"weights {', '.join(wrong[:3])} stay in another dtype in float64"
    return clone, None


def call64(model: Any, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The float64 clone called on the inputs (float inputs cast to float64, exactly)."""
    from tdcheck.engines import keras_rewrite as kr

    cast = [x.astype(np.float64) if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else x
            for x in xs]  # fmt: skip
    return kr.call(model, cast)
