"""What the JAX and PyTorch engines share: importing Keras 3 for a backend, stateless calls,
and naming gradients like :func:`tdcheck.engines.gradients.keras_gradients` does."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from tdcheck.engines.common import _without_pyplot, debug_enabled, quiet_native_stderr
from tdcheck.engines.keras_model import TRUNK_WEIGHTS
from tdcheck.errors import EnvironmentProblem


def load_keras(backend: str) -> Any:
    """Import Keras 3 with ``KERAS_BACKEND=backend`` (set before the import), quietly."""
    # Keras reads KERAS_BACKEND once, at import; the user's value is put back afterwards so
    # that it stays the default for the next comparison (see core.backends.default_backend).
    saved = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = backend
    if not debug_enabled():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore", module=r"(keras|jax|torch|absl)(\.|$)")
    with quiet_native_stderr(), _without_pyplot():
        try:
            import keras
        except ImportError as exc:
            raise EnvironmentProblem(f"Keras cannot be imported ({exc})") from None
        except Exception as exc:  # a broken backend install
            raise EnvironmentProblem(
                f"Keras cannot start on {backend} ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            _restore("KERAS_BACKEND", saved)
    if not keras.__version__.startswith("3"):
        raise EnvironmentProblem(f"tdcheck needs Keras 3, found Keras {keras.__version__}")
    if keras.backend.backend() != backend:
        raise EnvironmentProblem(
            f"Keras was imported on {keras.backend.backend()}, not {backend} "
            "(KERAS_BACKEND is read once, when Keras is first imported)"
        )
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return keras


@contextlib.contextmanager
def without_tensorflow_seed() -> Iterator[None]:
    """Keep ``keras.utils.set_random_seed`` from importing TensorFlow (2-5 s) on JAX or torch.

    Keras seeds TensorFlow's RNG too whenever TensorFlow is installed (for ``tf.data``
    pipelines); tdcheck draws its numbers from NumPy and seeded initializers, so a JAX or torch
    process needs no TensorFlow. Uses Keras's lazy-module flag; if that ever changes, Keras
    simply imports TensorFlow as before.
    """
    if "tensorflow" in sys.modules:
        yield
        return
    try:
        from keras.src.utils import rng_utils

        lazy = rng_utils.tf
        saved = lazy._available
    except (ImportError, AttributeError):
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = saved


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def stateless_outputs(built: Any, values: Any, x: Any) -> list[Any]:
    """The heads' outputs of ``model.stateless_call`` with the given variable values.

    ``values`` is ``(trainable, non_trainable)`` or one list in ``model.variables`` order.
    """
    model = built.model
    if isinstance(values, tuple):
        trainable, frozen = values
    else:
        position = {id(v): i for i, v in enumerate(model.variables)}
        trainable = [values[position[id(v)]] for v in model.trainable_variables]
        frozen = [values[position[id(v)]] for v in model.non_trainable_variables]
    out, _ = model.stateless_call(trainable, frozen, x, training=False)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def trainable_index(
    built: Any, variant: str, input_grad: np.ndarray, grads: list[Any]
) -> dict[str, np.ndarray]:
    """Name the gradients (one per ``model.trainable_variables``) of one variant's loss:
    ``input``, ``trunk.kernel``..., ``head.kernel`` (as ``(d, units)``), ``head.bias``."""
    position = {id(v): i for i, v in enumerate(built.model.trainable_variables)}
    named = {"input": input_grad}
    if built.trunk is not None:
        for name, var in zip(TRUNK_WEIGHTS, built.trunk.trainable_weights, strict=True):
            named[f"trunk.{name}"] = to_numpy(grads[position[id(var)]])
    kernel_var, bias_var = built.heads[variant].trainable_weights
    bias = to_numpy(grads[position[id(bias_var)]])
    named["head.kernel"] = to_numpy(grads[position[id(kernel_var)]]).reshape(-1, bias.shape[-1])
    named["head.bias"] = bias
    return named


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy copy of a JAX array or a torch tensor (detached, on the CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            import ml_dtypes

            return np.asarray(value.float().numpy()).astype(ml_dtypes.bfloat16)
        return np.asarray(value.numpy())
    return np.asarray(value)
