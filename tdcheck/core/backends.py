"""Backend names, their parsing, and the tolerances of comparisons across backends and devices.

Pure Python: nothing here imports a framework (the engines live in :mod:`tdcheck.engines`).

Cross-backend tolerances
------------------------
Two backends run the same float32 model with different kernels (oneDNN, XLA:CPU, ATen): the
summation order differs, so the outputs differ by rounding that grows with the work per
output, exactly as a variant differs from the float64 oracle. A cross-backend pair is
therefore judged with each side's allowance against the float64 reference
(:mod:`tdcheck.core.judge.cross`); :func:`cross_tolerances` is what judges where the user gave
``--atol/--rtol`` or an old baseline lacks the arrays an allowance needs.

TF32
----
On Ampere and newer NVIDIA GPUs, TensorFlow and JAX run float32 matmuls in TF32 by default
(PyTorch: cuDNN convolutions): the inputs are rounded to a 10-bit mantissa, unit roundoff
``u = 2**-11`` (4.9e-4), where float32 has ``2**-24``. A float32 comparison across devices
with TF32 on one side cannot meet float32 tolerances: its bounds use ``u = 2**-11`` on the
TF32 side, and a tolerance becomes :data:`TF32_TOLERANCES`: ``atol = rtol = 4u`` (1.95e-3):
two rounded operands per product (2u) and a factor 2 for what the recurrent trunk carries
over its timesteps.

>>> engine_name("tensorflow", 2)
'keras2'
>>> cross_tolerances("float32", tf32=True)
(0.001953125, 0.001953125)
"""

from __future__ import annotations

import os
from typing import Any

from tdcheck.core.tolerances import default_tolerances, unit_roundoff
from tdcheck.errors import ConfigError

#: Keras 3 backends (``--backend``).
BACKENDS = ("tensorflow", "jax", "torch")
#: Engines: the Keras 3 backends and Keras 2 (``--keras 2``, or ``keras2`` in ``--backends``).
ENGINE_NAMES = (*BACKENDS, "keras2")
#: Human names, and the environment key holding each framework's version.
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "keras2": "TensorFlow"}
VERSION_KEYS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "keras2": "tensorflow"}
TF32_CHOICES = ("default", "on", "off")
#: Engines that can run ``--train-steps``.
TRAINING_ENGINES = ENGINE_NAMES
#: TF32 unit roundoff: a 10-bit mantissa, 2**-11 (:func:`tdcheck.core.tolerances.unit_roundoff`).
TF32_UNIT_ROUNDOFF = unit_roundoff("tf32")
TF32_TOLERANCES = (4 * TF32_UNIT_ROUNDOFF, 4 * TF32_UNIT_ROUNDOFF)


def default_backend() -> str:
    """``$KERAS_BACKEND`` when it names a supported backend, else ``tensorflow``."""
    value = os.environ.get("KERAS_BACKEND", "").strip().lower()
    return value if value in BACKENDS else "tensorflow"


def engine_name(backend: str, keras: int = 3) -> str:
    """The engine for ``--backend`` and ``--keras``: ``("tensorflow", 2) -> "keras2"``."""
    if keras == 2:
        if backend != "tensorflow":
            raise ConfigError(
                f"--keras 2 runs on TensorFlow only (tf_keras); got --backend {backend}"
            )
        return "keras2"
    return backend


def parse_engines(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Parse ``--backends tensorflow,jax,keras2``: known names, no repeats, at least two.

    >>> parse_engines("tensorflow, jax")
    ('tensorflow', 'jax')
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(item.strip().lower() for item in items if item.strip())
    for name in names:
        if name not in ENGINE_NAMES:
            raise ConfigError(
                f"--backends: unknown backend {name!r}; choose from {', '.join(ENGINE_NAMES)}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"--backends: a backend is listed twice in {','.join(names)!r}")
    if len(names) < 2:
        raise ConfigError("--backends: give at least two, e.g. tensorflow,jax")
    return names


def check_supported(engine: str, *, time_dim: str, train_steps: int, dtype: str = "") -> None:
    """Refuse (exit 2), before anything loads, what an engine cannot do yet."""
    if train_steps and engine == "keras2" and dtype == "mixed_float16":
        raise ConfigError(
            "--train-steps with mixed_float16 is not supported with Keras 2 (its loss-scale "
            "optimizer has another API)"
        )
    if train_steps and engine == "jax" and dtype == "mixed_float16":
        raise ConfigError(
            "--train-steps with mixed_float16 is not supported on jax yet (Keras's loss-scale "
            "optimizer keeps its scale in a variable that jax.grad cannot trace)"
        )
    if time_dim == "dynamic" and engine not in ("tensorflow", "keras2"):
        raise ConfigError(
            f"--time-dim dynamic traces TensorFlow's tf.function; not available on {engine}"
        )
    if train_steps and engine not in TRAINING_ENGINES:
        raise ConfigError(
            f"--train-steps is not supported on {engine} yet (supported: "
            f"{', '.join(TRAINING_ENGINES)})"
        )


def cross_tolerances(dtype: str, *, tf32: bool) -> tuple[float, float]:
    """``(atol, rtol)`` for a comparison across backends or devices.

    The dtype's defaults; with TF32 on a GPU side of a float32 comparison, the looser of those
    and :data:`TF32_TOLERANCES`.
    """
    atol, rtol = default_tolerances(dtype)
    if tf32 and dtype in ("float32", "mixed_float16"):
        return max(atol, TF32_TOLERANCES[0]), max(rtol, TF32_TOLERANCES[1])
    return atol, rtol


def framework_text(env: dict[str, Any]) -> str:
    """``TensorFlow 2.21.0, Keras 3.15.1`` (one per backend for a cross-backend run).

    >>> framework_text({"backend": "jax", "jax": "0.10.2", "keras": "3.15.1", "tf32": None})
    'JAX 0.10.2, Keras 3.15.1'
    """
    if isinstance(env.get("backends"), dict):
        return "; ".join(framework_text(e) for e in env["backends"].values())
    name = env.get("backend", "tensorflow")
    version = env.get(VERSION_KEYS.get(name, "tensorflow"), "?")
    text = f"{LABELS.get(name, name)} {version}, Keras {env.get('keras', '?')}"
    if env.get("tf32"):
        text += ", TF32 on"
    return text
