"""The seam between tdcheck and a framework: one :class:`Engine` per Keras backend.

Commands talk to an engine only: it imports its framework quietly, lists devices, builds the
model from the NumPy-drawn weights of a config, runs it forward, takes gradients of the
projected loss, trains, compiles for bench, and reports its environment (versions, TF32).

=============  ===============================  ===================================
engine         what it runs                     extra (install hints: core/install.py)
=============  ===============================  ===================================
tensorflow     Keras 3 on TensorFlow            ``tensorflow`` (``gpu`` with CUDA)
jax            Keras 3 on JAX                   ``jax``
torch          Keras 3 on PyTorch               ``torch``
keras2         Keras 2 (``tf_keras``) on TF     ``keras2``
=============  ===============================  ===================================

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so a process holds at most one
Keras 3 backend: :func:`load_engine` refuses another with :class:`EngineBusy`, and callers run
that backend in a worker process instead (:mod:`tdcheck.commands.backends`).

Nothing here imports a framework; the names and their parsing are in
:mod:`tdcheck.core.backends`.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core.backends import ENGINE_NAMES, LABELS
from tdcheck.core.bounds import smallest_normal
from tdcheck.core.install import install_hint, pip_line
from tdcheck.errors import ConfigError, EnvironmentProblem

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig
    from tdcheck.engines.keras_model import BuiltModel
    from tdcheck.engines.training import TrainingRun

#: The module each engine needs, and the pip line that installs it.
REQUIRES = {
    "tensorflow": ("tensorflow", install_hint("tensorflow")),
    "jax": ("jax", install_hint("jax")),
    "torch": ("torch", install_hint("torch")),
    "keras2": ("tf_keras", install_hint("keras2")),
}


class EngineBusy(Exception):
    """This process already imported Keras for another backend (use a worker process)."""


def installed(name: str) -> bool:
    """Whether the engine's framework can be found, without importing it."""
    module, _ = REQUIRES[name]
    return importlib.util.find_spec(module) is not None


def require_installed(name: str) -> None:
    """Raise :class:`EnvironmentProblem` (exit 3) with the pip line when it is missing."""
    if not installed(name):
        module, line = REQUIRES[name]
        raise EnvironmentProblem(
            f"the {name} backend needs {module!r}, which is not installed; install it: {line}"
        )


_LOADED: dict[str, Engine] = {}


def keras_owner() -> str | None:
    """The engine whose Keras this process imported, or None when Keras is not imported."""
    for name, engine in _LOADED.items():
        if engine.owns_keras:
            return name
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    return str(backend()) if callable(backend) else "unknown"


def can_load_here(name: str) -> bool:
    """Whether :func:`load_engine` can give ``name`` in this process."""
    if name in _LOADED:
        return True
    owner = keras_owner()
    return owner is None or owner == name


def load_engine(name: str) -> Engine:
    """The loaded engine ``name`` (imported once per process, quietly).

    Raises :class:`EnvironmentProblem` (exit 3) when its framework is missing and
    :class:`EngineBusy` when this process already runs Keras on another backend.
    """
    if name in _LOADED:
        return _LOADED[name]
    if name not in ENGINE_NAMES:
        raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    require_installed(name)
    owner = keras_owner()
    if owner is not None and owner != name:
        raise EngineBusy(f"this process already runs Keras on {owner}; {name} needs its own")
    module = importlib.import_module(f"tdcheck.engines.{'tf_keras' if name == 'keras2' else name}")
    engine: Engine = module.ENGINE()
    engine.load()
    _LOADED[name] = engine
    return engine


class Engine(abc.ABC):
    """One framework behind Keras. Subclasses set :attr:`name` and implement the abstract
    methods; the Keras 3 engines share :class:`tdcheck.engines.keras3.Keras3Engine`."""

    name: str = ""
    #: How to get a GPU build, for the "no GPU" message.
    gpu_hint = f"install CUDA TensorFlow ({pip_line('gpu')})"
    #: Whether this engine's Keras is the module ``keras`` of this process.
    owns_keras: bool = True
    keras: Any = None

    @property
    def label(self) -> str:
        return "Keras 2" if self.name == "keras2" else LABELS[self.name]

    # -- start-up -----------------------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> None:
        """Import the framework and Keras quietly (``EnvironmentProblem`` when broken)."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """``{"keras": ..., "<framework>": ...}`` for the environment block."""

    def tf32_setting(self) -> bool | None:
        """The framework's TF32 switch as it stands (None: the framework has none)."""
        return None

    def tf32(self) -> bool | None:
        """Whether float32 matmuls may run in TF32 here: None without a GPU (TF32 is a GPU
        format, Ampere and newer), else the framework's switch."""
        return self.tf32_setting() if self.gpu_names() else None

    def set_tf32(self, on: bool) -> None:  # noqa: B027  (engines without TF32 do nothing)
        """Allow or forbid TF32 for float32 matmuls and convolutions."""

    def set_deterministic(self) -> None:  # noqa: B027
        """Turn on deterministic ops where the framework has such a switch."""

    # -- flush-to-zero --------------------------------------------------------------------
    def flush_to_zero(self, device: str) -> dict[str, bool | None]:
        """Per compute dtype, whether this framework on ``device`` flushes subnormals to zero
        (FTZ: a subnormal result becomes 0; DAZ: a subnormal operand is read as 0).

        A probe run once per device (:func:`flush_probe_operands`): a matrix product, a
        1-D convolution, an element-wise product and a sum whose operands and exact results
        are subnormal; any zero where a subnormal belongs means "flushes" (True). None: the
        probe could not run in that dtype. TensorFlow and XLA on x86 CPUs set the FTZ/DAZ
        bits of their compute threads; the bounds then allow what flushing loses
        (:func:`tdcheck.core.bounds.flush_allowance`).
        """
        cache: dict[str, dict[str, bool | None]] = self.__dict__.setdefault("_ftz", {})
        if device not in cache:
            found: dict[str, bool | None] = {}
            for dtype in FTZ_DTYPES:
                try:
                    with quiet(), self.on(device):
                        values = self.probe(dtype, device)
                except Exception:  # an op this framework lacks in this dtype
                    found[dtype] = None
                    continue
                found[dtype] = flushed(values, dtype)
            cache[device] = found
        return dict(cache[device])

    def probe(self, dtype: str, device: str) -> list[np.ndarray]:
        """The FTZ probe's results in ``dtype`` (see :func:`flush_probe_operands`), with
        Keras 3's ``keras.ops`` (the TensorFlow engines use ``tf`` directly)."""
        ops = self.keras.ops
        a, b, m, s = flush_probe_operands(dtype)

        def tensor(x: np.ndarray) -> Any:
            return ops.cast(ops.convert_to_tensor(x.astype(np.float32)), dtype)

        ta, tb = tensor(a), tensor(b)
        results = [
            ops.matmul(ta, tb),
            ops.multiply(ta, tensor(m)),
            ops.sum(ops.multiply(ta, tensor(s))),
        ]
        results.append(
            ops.conv(ops.reshape(ta, (1, 1, 2)), ops.reshape(tb, (1, 2, 2)), padding="valid")
        )
        return [_to_float64(r) for r in results]

    # -- accumulation -------------------------------------------------------------------
    def accumulation(self, dtype: str, device: str, rows: int, d: int, units: int) -> str | None:
        """The precision this framework's matrix products in ``dtype`` add in on ``device``,
        at a head's shape (``rows`` head-input rows of ``d`` features, ``units`` outputs):
        ``"float32"`` or the dtype itself (:func:`tdcheck.core.rounding.accumulation_found`),
        None where the probe could not run. float32 and float64 accumulate in themselves.

        A probe run once per shape: random operands exact in the dtype, multiplied as a
        Dense layer (a 3-D input) and as TimeDistributed (its 2-D reshape) multiply, each
        result compared with the exact product rounded once. The statistical rule then
        models each addition with the accumulator's unit roundoff
        (:func:`tdcheck.core.rounding.head_scale`); the bound rule assumes the dtype's.
        """
        from tdcheck.core import rounding
        from tdcheck.core.tolerances import compute_dtype

        name = compute_dtype(dtype)
        if name not in ("float16", "bfloat16"):
            return name
        cache: dict[tuple[Any, ...], str | None] = self.__dict__.setdefault("_accumulation", {})
        key = (name, device, rows, d, units)
        if key not in cache:
            operands = rounding.accumulation_operands(rows, d, units, name)
            try:
                with quiet(), self.on(device):
                    results = [self.matmul(a, b, name) for a, b in operands]
            except Exception:  # no matmul in this dtype here
                cache[key] = None
            else:
                flat = [r for pair in results for r in pair]
                doubled = [pair for pair in operands for _ in range(2)]
                cache[key] = rounding.accumulation_found(flat, doubled, name)
        return cache[key]

    def matmul(self, a: np.ndarray, b: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        """``a @ b`` in ``dtype`` (operands exact in it) with ``keras.ops.matmul``, on the
        2-D ``a`` and on ``a`` as one 3-D batch: ``(2-D result, 3-D result)`` as float64."""
        ops = self.keras.ops

        def tensor(x: np.ndarray) -> Any:
            return ops.cast(ops.convert_to_tensor(x.astype(np.float32)), dtype)

        ta, tb = tensor(a), tensor(b)
        flat = ops.matmul(ta, tb)
        batched = ops.matmul(ops.reshape(ta, (1, *a.shape)), tb)
        return _to_float64(flat), _to_float64(batched)

    # -- devices ------------------------------------------------------------------------
    @abc.abstractmethod
    def gpu_names(self) -> list[str]:
        """Names of the visible GPUs (empty without one)."""

    def select_devices(self, requested: str) -> list[str]:
        """Map ``auto``/``cpu``/``gpu``/``both`` to device names, ``"CPU:0"``/``"GPU:0"``.

        ``gpu`` or ``both`` with no GPU raises :class:`EnvironmentProblem` (exit 3).
        """
        if requested == "cpu":
            return ["CPU:0"]
        gpus = self.gpu_names()
        if requested in ("gpu", "both") and not gpus:
            raise EnvironmentProblem(
                f"--device {requested}: no GPU is visible to {self.label} "
                f"({self.gpu_hint} on a machine with a CUDA GPU, or use --device cpu)"
            )
        if requested == "both":
            return ["CPU:0", "GPU:0"]
        return ["GPU:0"] if gpus else ["CPU:0"]

    @abc.abstractmethod
    def on(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """A scope that places new variables and operations on ``device``."""

    # -- the model ----------------------------------------------------------------------
    def build(
        self, cfg: CompareConfig, device: str, variants: tuple[str, ...] | None = None
    ) -> BuiltModel:
        """The model of a validated, resolved config, its variables on ``device``."""
        from tdcheck.engines.keras_model import build_model

        with quiet(), self.on(device):
            return build_model(cfg, self.keras, variants)

    def input_dtype(self, built: BuiltModel) -> str:
        """The model input's dtype name (Keras 2 holds a ``tf.DType``)."""
        dtype = built.model.inputs[0].dtype
        return str(getattr(dtype, "name", dtype))

    @abc.abstractmethod
    def forward(
        self, built: BuiltModel, x: np.ndarray, device: str
    ) -> tuple[list[np.ndarray], str]:
        """Every head's output on ``device`` (inference), and the device that ran it."""

    @abc.abstractmethod
    def gradients(
        self, built: BuiltModel, x: np.ndarray, r: np.ndarray, device: str
    ) -> dict[str, dict[str, np.ndarray]]:
        """Per variant, the gradients of ``sum(R * y)`` (see :mod:`tdcheck.engines.gradients`)."""

    def train(
        self, cfg: CompareConfig, built: BuiltModel, x: np.ndarray, valid: np.ndarray, device: str
    ) -> TrainingRun:
        """Train one copy per variant (see :mod:`tdcheck.engines.training`)."""
        from tdcheck.engines.training import train

        return train(cfg, self, built, x, valid, device)

    @abc.abstractmethod
    def train_step(
        self, built: BuiltModel, optimizer: Any, x: np.ndarray, target: np.ndarray,
        weight: np.ndarray, device: str,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        """One optimizer step on ``loss = sum(weight * (y - target)**2)`` (the loss scaled
        by a mixed-precision optimizer's ``scale_loss``); returns the output before the update
        and the loss."""

    def head_input(
        self, built: BuiltModel, x: np.ndarray, device: str, dynamic: bool = False
    ) -> np.ndarray:
        """What every head read (the trunk's output, the masked input, or the input)."""
        with quiet(), self.on(device):
            return built.head_input(x)

    def dynamic_outputs(
        self, built: BuiltModel, x: np.ndarray, device: str
    ) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
        """Each head traced with an unknown sequence length (``--time-dim dynamic``)."""
        raise ConfigError(
            f"--time-dim dynamic is TensorFlow's tf.function path; not available on {self.name}"
        )

    # -- bench (``tdcheck bench``; the modes each engine offers are in commands.bench) ----
    def bench_tensor(self, array: np.ndarray, device: str) -> Any:
        """``array`` as this framework's tensor on ``device`` (the input of a timed call)."""
        raise NotImplementedError(f"tdcheck bench does not run on {self.name}")

    def bench_function(
        self, built: BuiltModel, index: int, mode: str, shape: tuple[int, int | None, int],
        backward: bool,
    ) -> Callable[[Any], Any]:  # fmt: skip
        """The callable bench times for head ``index`` in ``mode``: forward (inference), or
        with ``backward`` the gradients of ``sum(y)`` with respect to the input and the
        trainable weights. ``shape`` is what a compiled mode traces with (None: unknown)."""
        raise NotImplementedError(f"tdcheck bench does not run on {self.name}")

    def bench_matmul(self, mode: str, backward: bool) -> Callable[[Any, Any], Any]:
        """The reference ``a @ w`` (and its gradients with ``backward``) in ``mode``."""
        raise NotImplementedError(f"tdcheck bench does not run on {self.name}")

    def bench_sync(self, device: str) -> Callable[[Any], None]:
        """Wait until a call's result is computed (CPU frameworks that return at once: no-op)."""
        return lambda _: None

    def bench_environment(self, device: str) -> dict[str, Any]:
        """:meth:`environment` plus the device's name, for bench's headline."""
        name = self.gpu_names()[0] if "GPU" in device and self.gpu_names() else ""
        return {
            **self.environment(device),
            "device_name": name or platform.processor() or platform.machine(),
        }

    # -- reporting ----------------------------------------------------------------------
    def environment(self, device: str) -> dict[str, Any]:
        """Versions and the device used, for the report's environment block."""
        return {
            "python": platform.python_version(),
            **self.versions(),
            "numpy": np.__version__,
            "device": device or "unknown",
            "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "backend": self.name,
            "tf32": self.tf32(),
            "flush_to_zero": self.flush_to_zero(device) if device else None,
        }

    def error_text(self, exc: BaseException) -> str:
        from tdcheck.engines.common import error_text

        return error_text(exc)


#: The compute dtypes the flush-to-zero probe tries.
FTZ_DTYPES = ("float64", "float32", "float16", "bfloat16")


def flush_probe_operands(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, m, s)``: ``a = [[tiny/4, tiny]]`` (tiny: the smallest normal of ``dtype``),
    ``b = [[1, 0], [0, 1/2]]``, ``m = [[1, 1/2]]``, ``s = [[1, 0]]``. Exactly, ``a @ b`` and
    ``a * m`` are ``[tiny/4, tiny/2]`` (both subnormal: the first from a subnormal operand,
    the second a subnormal result), ``sum(a * s)`` is ``tiny/4``; every value is exact in
    ``dtype``, and the 1-D convolution of ``a`` (one step, two channels) with ``b`` is
    ``a @ b``."""
    tiny = smallest_normal(dtype)
    return (
        np.array([[tiny / 4, tiny]]),
        np.array([[1.0, 0.0], [0.0, 0.5]]),
        np.array([[1.0, 0.5]]),
        np.array([[1.0, 0.0]]),
    )


def _to_float64(value: Any) -> np.ndarray:
    """A JAX array or a torch tensor (detached, on the CPU; bfloat16 through float32, exact)
    as a flat float64 NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = (value.float() if "bfloat16" in str(value.dtype) else value).numpy()
    return np.asarray(value).astype(np.float64).ravel()


def flushed(values: list[np.ndarray], dtype: str) -> bool:
    """Whether the probe's results (matmul, multiply, sum[, conv]) show a flushed subnormal.

    >>> tiny = smallest_normal("float32")
    >>> good = [np.array([tiny / 4, tiny / 2])] * 2 + [np.array([tiny / 4])]
    >>> flushed(good, "float32"), flushed([np.zeros(2)] + good[1:], "float32")
    (False, True)
    """
    tiny = smallest_normal(dtype)
    pair, single = np.array([tiny / 4, tiny / 2]), np.array([tiny / 4])
    expected = [pair, pair, single] + [pair] * (len(values) - 3)
    return any(
        bool(np.any((np.asarray(v).ravel() == 0) & (e != 0)))
        for v, e in zip(values, expected, strict=True)
    )


def quiet() -> contextlib.AbstractContextManager[None]:
    """Silence native logging and Python warnings (see :func:`tdcheck.engines.common.quiet`)."""
    from tdcheck.engines.common import quiet as _quiet

    return _quiet()


def load_weights(built: BuiltModel, arrays: dict[str, np.ndarray]) -> None:
    """Set the trunk's and the heads' weights from ``--save-arrays`` keys
    (``weights/rnn/kernel``..., ``weights/<variant>/kernel``, ``weights/<variant>/bias``),
    reshaped to each layer's own shapes; variants the arrays do not hold keep theirs."""
    from tdcheck.engines.keras_model import TRUNK_WEIGHTS

    if built.trunk is not None and all(f"weights/rnn/{k}" in arrays for k in TRUNK_WEIGHTS):
        current = built.trunk.get_weights()
        built.trunk.set_weights(
            [_fit(f"weights/rnn/{k}", arrays[f"weights/rnn/{k}"], c)
             for k, c in zip(TRUNK_WEIGHTS, current, strict=True)]
        )  # fmt: skip
    for variant, layer in built.heads.items():
        keys = (f"weights/{variant}/kernel", f"weights/{variant}/bias")
        if all(k in arrays for k in keys):
            current = layer.get_weights()
            layer.set_weights(
                [_fit(k, arrays[k], c) for k, c in zip(keys, current, strict=True)]
            )  # fmt: skip


def _fit(key: str, array: Any, current: Any) -> np.ndarray:
    """``array`` in the shape and dtype of the layer's weight ``current``; exit 2 when it
    holds another number of values (an archive whose weights do not fit this model)."""
    array = np.asarray(array)
    if array.size != current.size:
        raise ConfigError(
            f"--baseline: its weights do not fit this model: {key} has shape {tuple(array.shape)}, "
            f"the layer's weight has {tuple(current.shape)}"
        )
    return array.reshape(current.shape).astype(current.dtype)


def weights_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``weights/...`` entries of a run's arrays."""
    return {k: v for k, v in arrays.items() if k.startswith("weights/")}
