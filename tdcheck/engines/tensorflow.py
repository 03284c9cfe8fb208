"""Everything that touches TensorFlow's start-up: quiet import, devices, environment.

TensorFlow writes C++ log lines to file descriptor 2 while it is imported and
when it first looks for CUDA; :func:`quiet_native_stderr` points that descriptor
at ``/dev/null`` for the duration, so the user sees only tdcheck's own output.
Set ``TDCHECK_DEBUG=1`` to see everything (and full tracebacks).
"""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tdcheck.core.install import install_hint, pip_line
from tdcheck.engines.base import Engine
from tdcheck.engines.common import (
    _without_pyplot,
    debug_enabled,
    error_text,
    quiet,
    quiet_native_stderr,
)
from tdcheck.errors import EnvironmentProblem

_LOADED: tuple[Any, Any] | None = None


def load_tensorflow() -> tuple[Any, Any]:
    """Import ``tensorflow`` and ``keras`` quietly; return both modules.

    Raises :class:`EnvironmentProblem` (exit 3) when TensorFlow is missing or is
    not Keras 3.
    """
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    if not debug_enabled():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl)(\.|$)")
    saved = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "tensorflow"  # read once, when Keras is imported
    with quiet_native_stderr(), _without_pyplot():
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise EnvironmentProblem(
                f"TensorFlow cannot be imported ({exc}); install it: {install_hint('tensorflow')}"
            ) from None
        try:
            import keras
        except ImportError as exc:
            raise EnvironmentProblem(f"Keras cannot be imported ({exc})") from None
        finally:  # the user's value stays the default backend of later comparisons
            if saved is None:
                os.environ.pop("KERAS_BACKEND", None)
            else:
                os.environ["KERAS_BACKEND"] = saved
    if not keras.__version__.startswith("3"):
        raise EnvironmentProblem(f"tdcheck needs Keras 3, found Keras {keras.__version__}")
    if not debug_enabled():
        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(ImportError):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    _LOADED = (tf, keras)
    return _LOADED


def gpu_names(tf: Any) -> list[str]:
    """Names of the visible GPUs (empty without one)."""
    with quiet_native_stderr():
        return [d.name for d in tf.config.list_physical_devices("GPU")]


def select_devices(tf: Any, requested: str) -> list[str]:
    """Map ``auto``/``cpu``/``gpu``/``both`` to TensorFlow device strings.

    The first is where the main run happens; ``both`` gives ``["/CPU:0", "/GPU:0"]``.
    ``gpu`` or ``both`` with no GPU visible raises :class:`EnvironmentProblem` (exit 3).
    """
    if requested == "cpu":
        return ["/CPU:0"]
    gpus = gpu_names(tf)
    if requested in ("gpu", "both") and not gpus:
        raise EnvironmentProblem(
            f"--device {requested}: no GPU is visible to TensorFlow "
            f"(install CUDA TensorFlow ({pip_line('gpu')}) on a machine with a CUDA GPU, or use "
            "--device cpu)"
        )
    if requested == "both":
        return ["/CPU:0", "/GPU:0"]
    return ["/GPU:0"] if gpus else ["/CPU:0"]


def short_device(device: str) -> str:
    """``/job:localhost/replica:0/task:0/device:CPU:0`` -> ``CPU:0``."""
    return device.rsplit("device:", 1)[-1].lstrip("/") if device else "unknown"


def environment(tf: Any, keras: Any, device: str) -> dict[str, Any]:
    """Versions and the device actually used, for the report."""
    import numpy as np

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "device": short_device(device),
        "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


class TensorFlowEngine(Engine):
    """Keras 3 on TensorFlow: the default engine."""

    name = "tensorflow"
    tf: Any = None

    def load(self) -> None:
        self.tf, self.keras = load_tensorflow()

    def versions(self) -> dict[str, str]:
        return {"tensorflow": self.tf.__version__, "keras": self.keras.__version__}

    def tf32_setting(self) -> bool | None:
        return bool(self.tf.config.experimental.tensor_float_32_execution_enabled())

    def set_tf32(self, on: bool) -> None:
        self.tf.config.experimental.enable_tensor_float_32_execution(on)

    def set_deterministic(self) -> None:
        self.tf.config.experimental.enable_op_determinism()

    def probe(self, dtype: str, device: str) -> list[np.ndarray]:
        """The FTZ probe with ``tf`` ops (see :meth:`Engine.flush_to_zero`)."""
        from tdcheck.engines.base import flush_probe_operands

        tf = self.tf
        a, b, m, s = (
            tf.cast(tf.constant(v, tf.float32), dtype) for v in flush_probe_operands(dtype)
        )
        results = [tf.matmul(a, b), a * m, tf.reduce_sum(a * s)]
        results.append(tf.nn.conv1d(tf.reshape(a, (1, 1, 2)), tf.reshape(b, (1, 2, 2)), 1, "VALID"))
        # to NumPy in the dtype itself: a cast in TensorFlow could flush on its own
        return [np.asarray(r.numpy()).astype(np.float64).ravel() for r in results]

    def matmul(self, a: np.ndarray, b: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        """The accumulation probe's products with ``tf.matmul`` (see :meth:`Engine.matmul`)."""
        tf = self.tf
        ta = tf.cast(tf.constant(a, tf.float32), dtype)
        tb = tf.cast(tf.constant(b, tf.float32), dtype)
        flat = tf.matmul(ta, tb)
        batched = tf.matmul(tf.reshape(ta, (1, *a.shape)), tb)
        return (np.asarray(flat.numpy()).astype(np.float64).ravel(),
                np.asarray(batched.numpy()).astype(np.float64).ravel())  # fmt: skip

    def gpu_names(self) -> list[str]:
        return gpu_names(self.tf)

    def on(self, device: str) -> contextlib.AbstractContextManager[Any]:
        return self.tf.device(device if device.startswith("/") else f"/{device}")

    def forward(self, built: Any, x: np.ndarray, device: str) -> tuple[list[np.ndarray], str]:
        with quiet(), self.on(device):
            tensors = built(x)
        return [np.asarray(t) for t in tensors], short_device(tensors[0].device)

    def gradients(
        self, built: Any, x: np.ndarray, r: np.ndarray, device: str
    ) -> dict[str, dict[str, np.ndarray]]:
        from tdcheck.engines.gradients import keras_gradients

        with quiet(), self.on(device):
            return keras_gradients(self.tf, built, x, r)

    def train_step(
        self, built: Any, optimizer: Any, x: np.ndarray, target: np.ndarray,
        weight: np.ndarray, device: str,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        tf = self.tf
        params = built.model.trainable_weights
        with quiet(), self.on(device):
            with tf.GradientTape() as tape:
                raw = built.model(x, training=True)
                y = tf.cast(raw, target.dtype.name)
                loss = tf.reduce_sum(weight * tf.square(y - target))
                scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            grads = tape.gradient(scaled, params)
            self.apply(optimizer, grads, params)
        return np.asarray(raw), float(loss)

    def apply(self, optimizer: Any, grads: list[Any], params: list[Any]) -> None:
        optimizer.apply(grads, params)

    def head_input(
        self, built: Any, x: np.ndarray, device: str, dynamic: bool = False
    ) -> np.ndarray:
        """What every head read; on the dynamic path traced the same way as the heads."""
        tf = self.tf
        with quiet(), self.on(device):
            if not dynamic or built.features_model is None:
                return built.head_input(x)
            spec = tf.TensorSpec([None, None, x.shape[-1]], built.model.inputs[0].dtype)
            model = built.features_model
            fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
            return np.asarray(fn(tf.constant(x)))

    def dynamic_outputs(
        self, built: Any, x: np.ndarray, device: str
    ) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
        """Run each head in ``tf.function`` traced with ``TensorSpec([None, None, features])``.

        A head that raises is reported in the errors, not fatal: the others still run.
        """
        tf = self.tf
        spec = tf.TensorSpec([None, None, x.shape[-1]], built.model.inputs[0].dtype)
        outputs: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        used = ""
        with quiet(), self.on(device):
            xt = tf.constant(x)
            for index, variant in enumerate(built.heads):
                sub = self.keras.Model(built.model.inputs, built.model.outputs[index])
                fn = tf.function(lambda t, sub=sub: sub(t, training=False), input_signature=[spec])
                try:
                    tensor = fn(xt)
                except Exception as exc:  # e.g. a Keras bug on this path
                    errors[variant] = error_text(exc)
                    continue
                used = used or tensor.device
                outputs[variant] = np.asarray(tensor)
        return outputs, errors, short_device(used)

    def environment(self, device: str) -> dict[str, Any]:
        env = super().environment(device)
        env["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
        return env

    # -- bench: eager (Keras call), graph (tf.function), xla (jit_compile=True) -------------
    def bench_tensor(self, array: np.ndarray, device: str) -> Any:
        with self.on(device):
            return self.tf.constant(array)

    def bench_function(
        self, built: Any, index: int, mode: str, shape: tuple[int, int | None, int],
        backward: bool,
    ) -> Callable[[Any], Any]:  # fmt: skip
        tf = self.tf
        model = self.keras.Model(built.model.inputs, built.model.outputs[index])

        def forward(x: Any) -> Any:
            return model(x, training=False)

        def forward_backward(x: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = model(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, tf.float32))
            return tape.gradient(loss, [x, *model.trainable_weights])

        body = forward_backward if backward else forward
        if mode == "eager":
            return body
        spec = tf.TensorSpec(list(shape), built.model.inputs[0].dtype)
        return tf.function(
            body, input_signature=[spec], jit_compile=mode == "xla", reduce_retracing=True
        )

    def bench_matmul(self, mode: str, backward: bool) -> Callable[[Any, Any], Any]:
        tf = self.tf

        def forward(a: Any, w: Any) -> Any:
            return tf.matmul(a, w)

        def forward_backward(a: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch([a, w])
                loss = tf.reduce_sum(tf.cast(tf.matmul(a, w), tf.float32))
            return tape.gradient(loss, [a, w])

        body = forward_backward if backward else forward
        if mode == "eager":
            return body
        return tf.function(body, jit_compile=mode == "xla")

    def bench_sync(self, device: str) -> Callable[[Any], None]:
        if "GPU" in device:
            sync_devices = self.tf.test.experimental.sync_devices
            return lambda _: sync_devices()
        return lambda _: None  # CPU ops have finished when the call returns

    def bench_environment(self, device: str) -> dict[str, Any]:
        tf = self.tf
        env = super().bench_environment(device)
        threading = tf.config.threading
        env["intra_op_threads"] = threading.get_intra_op_parallelism_threads() or "default"
        env["inter_op_threads"] = threading.get_inter_op_parallelism_threads() or "default"
        if "GPU" in device:
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                env["device_name"] = str(details.get("device_name", gpus[0].name))
        return env


ENGINE = TensorFlowEngine
