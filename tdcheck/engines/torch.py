"""Keras 3 on PyTorch.

Forward and gradients go through ``model.stateless_call`` with the variables' values moved to
the device; gradients are ``torch.autograd.grad`` of the projected loss with respect to the
input and every trainable variable. TF32: PyTorch allows it for cuDNN convolutions by default
(``torch.backends.cudnn.allow_tf32``) and not for matmuls
(``torch.backends.cuda.matmul.allow_tf32``); ``--tf32 on|off`` sets both.
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
    to_numpy,
    trainable_index,
    without_tensorflow_seed,
)


class TorchEngine(Engine):
    name = "torch"
    gpu_hint = "install a CUDA build of torch"
    torch: Any = None

    def load(self) -> None:
        self.keras = load_keras("torch")
        import torch

        self.torch = torch

    def build(self, cfg: Any, device: str, variants: tuple[str, ...] | None = None) -> Any:
        with without_tensorflow_seed():
            return super().build(cfg, device, variants)

    def versions(self) -> dict[str, str]:
        return {"torch": str(self.torch.__version__), "keras": self.keras.__version__}

    def tf32_setting(self) -> bool:
        backends = self.torch.backends
        return bool(backends.cuda.matmul.allow_tf32 or backends.cudnn.allow_tf32)

    def set_tf32(self, on: bool) -> None:
        self.torch.backends.cuda.matmul.allow_tf32 = on
        self.torch.backends.cudnn.allow_tf32 = on

    def set_deterministic(self) -> None:
        self.torch.use_deterministic_algorithms(True, warn_only=True)

    def gpu_names(self) -> list[str]:
        cuda = self.torch.cuda
        return [cuda.get_device_name(i) for i in range(cuda.device_count())]

    def _device(self, device: str) -> Any:
        kind, _, index = device.partition(":")
        return self.torch.device("cpu" if kind == "CPU" else f"cuda:{index or 0}")

    def tensor(self, array: np.ndarray, device: str) -> Any:
        """A torch tensor of ``array`` on ``device`` (bfloat16, which torch cannot take from
        NumPy, goes through float32: exact)."""
        torch = self.torch
        if str(array.dtype) == "bfloat16":
            return torch.as_tensor(array.astype(np.float32), device=self._device(device)).to(
                torch.bfloat16
            )
        return torch.as_tensor(array, device=self._device(device))

    def on(self, device: str) -> contextlib.AbstractContextManager[Any]:
        # Keras on torch wants "cpu" or "cuda:N": with "cpu:0" building an LSTM fails
        # (Keras 3.15.1, torch 2.13: "Only Tensors of floating point ... can require gradients").
        return self.keras.device(str(self._device(device)))

    def forward(self, built: Any, x: np.ndarray, device: str) -> tuple[list[np.ndarray], str]:
        target = self._device(device)
        with quiet(), self.on(device), self.torch.no_grad():
            values = [v.value.detach().to(target) for v in built.model.variables]
            outputs = stateless_outputs(built, values, self.tensor(x, device))
        ran = outputs[0].device
        name = f"{'GPU' if ran.type == 'cuda' else 'CPU'}:{ran.index or 0}"
        return [to_numpy(y) for y in outputs], name

    def head_input(
        self, built: Any, x: np.ndarray, device: str, dynamic: bool = False
    ) -> np.ndarray:
        if built.features_model is None:
            return np.asarray(x)
        with quiet(), self.on(device), self.torch.no_grad():
            return to_numpy(built.features_model(self.tensor(x, device), training=False))

    def gradients(
        self, built: Any, x: np.ndarray, r: np.ndarray, device: str
    ) -> dict[str, dict[str, np.ndarray]]:
        torch = self.torch
        target = self._device(device)
        model = built.model
        result: dict[str, dict[str, np.ndarray]] = {}
        with quiet(), self.on(device):
            trainable = [
                v.value.detach().to(target).clone().requires_grad_(True)
                for v in model.trainable_variables
            ]
            frozen = [v.value.detach().to(target) for v in model.non_trainable_variables]
            xt = self.tensor(x, device).clone().requires_grad_(True)
            outputs = stateless_outputs(built, (trainable, frozen), xt)
            for index, variant in enumerate(built.heads):
                y = outputs[index]
                dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
                loss = torch.sum(y.to(dtype) * torch.as_tensor(r, dtype=dtype, device=target))
                grads = torch.autograd.grad(
                    loss, [xt, *trainable], retain_graph=True, allow_unused=True
                )
                filled = [
                    torch.zeros_like(p) if g is None else g
                    for g, p in zip(grads, [xt, *trainable], strict=True)
                ]
                result[variant] = trainable_index(built, variant, to_numpy(filled[0]), filled[1:])
        return result

    def train_step(
        self, built: Any, optimizer: Any, x: np.ndarray, target: np.ndarray,
        weight: np.ndarray, device: str,
    ) -> tuple[np.ndarray, float]:  # fmt: skip
        torch = self.torch
        target_device = self._device(device)
        variables = built.model.trainable_variables
        with quiet(), self.on(device):
            raw = built.model(self.tensor(x, device), training=True)
            t = torch.as_tensor(target, device=target_device)
            w = torch.as_tensor(weight, device=target_device)
            loss = torch.sum(w * torch.square(raw.to(t.dtype) - t))
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            grads = torch.autograd.grad(scaled, [v.value for v in variables])
            optimizer.apply(list(grads), variables)
        return to_numpy(raw), float(loss.detach())

    # -- bench: eager only (the Keras call; torch.compile is not offered, see docs) -----
    def bench_tensor(self, array: np.ndarray, device: str) -> Any:
        return self.tensor(array, device)

    def bench_function(
        self, built: Any, index: int, mode: str, shape: tuple[int, int | None, int],
        backward: bool,
    ) -> Callable[[Any], Any]:  # fmt: skip
        torch = self.torch
        model = self.keras.Model(built.model.inputs, built.model.outputs[index])
        params = [v.value for v in model.trainable_variables]

        def forward(x: Any) -> Any:
            with torch.no_grad():
                return model(x, training=False)

        def forward_backward(x: Any) -> Any:
            xg = x.detach().requires_grad_(True)
            y = model(xg, training=True)
            loss = torch.sum(y.to(torch.float32))
            return torch.autograd.grad(loss, [xg, *params], allow_unused=True)

        return forward_backward if backward else forward

    def bench_matmul(self, mode: str, backward: bool) -> Callable[[Any, Any], Any]:
        torch = self.torch

        def forward(a: Any, w: Any) -> Any:
            with torch.no_grad():
                return torch.matmul(a, w)

        def forward_backward(a: Any, w: Any) -> Any:
            ag, wg = a.detach().requires_grad_(True), w.detach().requires_grad_(True)
            loss = torch.sum(torch.matmul(ag, wg).to(torch.float32))
            return torch.autograd.grad(loss, [ag, wg])

        return forward_backward if backward else forward

    def bench_sync(self, device: str) -> Callable[[Any], None]:
        if "GPU" in device:
            synchronize = self.torch.cuda.synchronize
            return lambda _: synchronize()
        return lambda _: None


ENGINE = TorchEngine
