"""Keras 3 on JAX.

Forward runs the Keras model as a user would (``model(x)``); on another device it runs
``model.stateless_call`` with the variables' values moved there. Gradients are ``jax.grad`` of
the projected loss through ``stateless_call``, with respect to the input and every trainable
variable. TF32: JAX's default matmul precision on an Ampere-or-newer GPU is TF32 for float32;
``--tf32 off`` sets ``jax_default_matmul_precision`` to ``"highest"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tdcheck.engines.base import Engine, quiet
from tdcheck.engines.keras3 import (
    load_keras,
    stateless_outputs,
    trainable_index,
    without_tensorflow_seed,
)


class JaxEngine(Engine):
    name = "jax"
    gpu_hint = "install jax[cuda12]"
    jax: Any = None

    def load(self) -> None:
        import jax

        # float64 models need 64-bit JAX (off by default: float64 would silently be float32).
        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.keras = load_keras("jax")

    def build(self, cfg: Any, device: str, variants: tuple[str, ...] | None = None) -> Any:
        with without_tensorflow_seed():
            return super().build(cfg, device, variants)

    def versions(self) -> dict[str, str]:
        import jaxlib

        return {
            "jax": self.jax.__version__,
            "jaxlib": jaxlib.__version__,
            "keras": self.keras.__version__,
        }

    def tf32_setting(self) -> bool | None:
        precision = self.jax.config.jax_default_matmul_precision
        return precision not in ("highest", "float32", "HIGHEST", "FLOAT32")

    def set_tf32(self, on: bool) -> None:
        self.jax.config.update("jax_default_matmul_precision", "tensorfloat32" if on else "highest")

    def gpu_names(self) -> list[str]:
        try:
            with quiet():
                return [str(d) for d in self.jax.devices("gpu")]
        except RuntimeError:  # no GPU backend
            return []

    def _device(self, device: str) -> Any:
        kind, _, index = device.partition(":")
        return self.jax.devices(kind.lower())[int(index or 0)]

    def on(self, device: str) -> contextlib.AbstractContextManager[Any]:
        return self.keras.device(device.lower())

    def forward(self, built: Any, x: np.ndarray, device: str) -> tuple[list[np.ndarray], str]:
        target = self._device(device)
        with quiet(), self.on(device):
            values = [self.jax.device_put(v.value, target) for v in built.model.variables]
            outputs = stateless_outputs(built, values, self.jax.device_put(x, target))
        ran = next(iter(outputs[0].devices()))
        return [np.asarray(y) for y in outputs], f"{ran.platform.upper()}:{ran.id}"

    def gradients(
        self, built: Any, x: np.ndarray, r: np.ndarray, device: str
    ) -> dict[str, dict[str, np.ndarray]]:
        jax, jnp = self.jax, self.jax.numpy
        target = self._device(device)
        model = built.model
        trainable = [jax.device_put(v.value, target) for v in model.trainable_variables]
        frozen = [jax.device_put(v.value, target) for v in model.non_trainable_variables]
        xt = jax.device_put(x, target)
        result: dict[str, dict[str, np.ndarray]] = {}
        for index, variant in enumerate(built.heads):

            def loss(xv: Any, params: list[Any], index: int = index) -> Any:
                y = stateless_outputs(built, (params, frozen), xv)[index]
                dtype = jnp.float64 if y.dtype == jnp.float64 else jnp.float32
                return jnp.sum(y.astype(dtype) * jnp.asarray(r, dtype))

            with quiet(), self.on(device):
                gx, gp = jax.grad(loss, argnums=(0, 1))(xt, trainable)
            result[variant] = trainable_index(built, variant, np.asarray(gx), gp)
        return result

    def train_step(
        self, built: Any, optimizer: Any, x: np.ndarray, target: np.ndarray,
        weight: np.ndarray, device: str,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        jax, jnp = self.jax, self.jax.numpy
        model = built.model
        target_device = self._device(device)
        trainable = [jax.device_put(v.value, target_device) for v in model.trainable_variables]
        frozen = [jax.device_put(v.value, target_device) for v in model.non_trainable_variables]
        xt = jax.device_put(x, target_device)

        def loss_fn(params: list[Any]) -> Any:
            out, _ = model.stateless_call(params, frozen, xt, training=True)
            y = out.astype(target.dtype)
            loss = jnp.sum(weight * jnp.square(y - target))
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            return scaled, (out, loss)

        with quiet(), self.on(device):
            (_, (raw, loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
            optimizer.apply(grads, model.trainable_variables)
        return np.asarray(raw), float(loss)

    # -- bench: eager (Keras call), jit (jax.jit over stateless_call) ---------------------
    def bench_tensor(self, array: np.ndarray, device: str) -> Any:
        return self.jax.device_put(array, self._device(device))

    def bench_function(
        self, built: Any, index: int, mode: str, shape: tuple[int, int | None, int],
        backward: bool,
    ) -> Callable[[Any], Any]:  # fmt: skip
        """Eager: the Keras call (forward) or ``jax.grad`` run op by op (backward); jit: the
        same through ``jax.jit``, which traces once per concrete input shape (``shape``, always
        static here: a new length is a new trace)."""
        jax, jnp = self.jax, self.jax.numpy
        model = self.keras.Model(built.model.inputs, built.model.outputs[index])
        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def forward(params: list[Any], x: Any) -> Any:
            return model.stateless_call(params, frozen, x, training=False)[0]

        def loss(x: Any, params: list[Any]) -> Any:
            y = model.stateless_call(params, frozen, x, training=True)[0]
            return jnp.sum(y.astype(jnp.float32))

        grad = jax.grad(loss, argnums=(0, 1))
        if mode == "eager":
            if backward:
                return lambda x: grad(x, trainable)
            return lambda x: model(x, training=False)
        if backward:
            jitted_grad = jax.jit(grad)
            return lambda x: jitted_grad(x, trainable)
        jitted = jax.jit(forward)
        return lambda x: jitted(trainable, x)

    def bench_matmul(self, mode: str, backward: bool) -> Callable[[Any, Any], Any]:
        jax, jnp = self.jax, self.jax.numpy

        def loss(a: Any, w: Any) -> Any:
            return jnp.sum(jnp.matmul(a, w).astype(jnp.float32))

        body = jax.grad(loss, argnums=(0, 1)) if backward else jnp.matmul
        return body if mode == "eager" else jax.jit(body)

    def bench_sync(self, device: str) -> Callable[[Any], None]:
        # JAX dispatches asynchronously, on the CPU too: wait for the result.
        block = self.jax.block_until_ready
        return lambda out: block(out)


ENGINE = JaxEngine
