"""Training steps: does the swap hold when the weights move?

Each variant trains its own copy of the model (trunk + its head), all starting from identical
weights, on the same input and the same random targets, with the same optimizer settings. The
loss is the mean squared error over the valid positions::

    loss = sum(valid * (y - T)^2) / (count(valid) * units),   T ~ N(0, 1) from --seed

After every step the outputs of each variant are compared with the reference variant's, so
the report shows how a difference grows (drift), and at the end the trained weights and the
trained outputs are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tdcheck.core.stats import compare_arrays
from tdcheck.engines.keras_model import TRUNK_WEIGHTS

LOSS = "mean((y - T)^2) over valid positions, T ~ N(0, 1) from --seed"


@dataclass
class TrainingRun:
    """What training produced, per variant."""

    steps: int
    optimizer: str
    learning_rate: float
    reference: str
    losses: dict[str, list[float]] = field(default_factory=dict)
    drift: dict[str, list[float]] = field(default_factory=dict)
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    targets: np.ndarray | None = None
    #: The reference variant's gradient of the loss at every step, ``(steps, *shape)`` per
    #: weight (``head.kernel``, ``trunk.kernel``...): what the trained weights' allowance is
    #: derived from (:func:`tdcheck.core.bounds.trained_weight_allowance`).
    gradients: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "loss": LOSS,
            "reference": self.reference,
            "losses": self.losses,
            "drift": self.drift,
        }


def targets(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 0x7472]).standard_normal(shape)


def train(
    cfg: Any, engine: Any, built: Any, x: np.ndarray, valid: np.ndarray, device: str
) -> TrainingRun:
    """Train one copy per variant for ``cfg.train_steps`` steps (eagerly), each step one
    ``engine.train_step`` (the framework's autodiff and the Keras optimizer)."""
    variants = tuple(built.heads)
    reference = variants[0]
    out_dtype = "float64" if cfg.dtype == "float64" else "float32"
    target_values = targets((*x.shape[:2], cfg.units), cfg.seed)
    target = target_values.astype(out_dtype)
    weight = (valid[..., None] / (valid.sum() * cfg.units)).astype(out_dtype)
    run = TrainingRun(cfg.train_steps, cfg.optimizer, cfg.learning_rate, reference)
    run.targets = target_values
    trajectories: dict[str, list[np.ndarray]] = {}
    for variant in variants:
        copy = engine.build(cfg, device, variants=(variant,))
        if built.trunk is not None and copy.trunk is not None:
            copy.trunk.set_weights(built.trunk.get_weights())
        copy.heads[variant].set_weights(built.heads[variant].get_weights())
        optimizer = _optimizer(engine.keras, cfg)
        outputs, losses = [], []
        steps: dict[str, list[np.ndarray]] = {}
        for step in range(cfg.train_steps):
            if variant == reference:  # this step's gradient, from the weights it starts with
                y0 = engine.forward(copy, x, device)[0][0].astype(np.float64)
                r = 2.0 * weight.astype(np.float64) * (y0 - target_values)
                for name, g in engine.gradients(copy, x, r, device)[variant].items():
                    if name != "input":
                        steps.setdefault(name, []).append(np.asarray(g))
            # loss = sum(weight * (y - target)^2); raw is the output before this step's update
            raw, loss = engine.train_step(copy, optimizer, x, target, weight, device)
            if step:  # the output after the previous step, no extra forward pass
                outputs.append(raw)
            losses.append(loss)
        if steps:
            run.gradients = {name: np.stack(gs) for name, gs in steps.items()}
        outputs.append(engine.forward(copy, x, device)[0][0])
        run.losses[variant] = losses
        trajectories[variant] = outputs
        named = {}
        if copy.trunk is not None:
            for name, value in zip(TRUNK_WEIGHTS, copy.trunk.get_weights(), strict=True):
                named[f"trunk.{name}"] = value
        kernel, bias = copy.canonical_head_weights(variant)
        named["head.kernel"], named["head.bias"] = kernel, bias
        run.weights[variant] = named
        run.outputs[variant] = outputs[-1]
    where = valid[..., None]
    for variant in variants[1:]:
        run.drift[variant] = [
            float(compare_arrays(a, b, atol=0.0, rtol=0.0, where=where).max_abs_diff or 0.0)
            for a, b in zip(trajectories[variant], trajectories[reference], strict=True)
        ]
    return run


def _optimizer(keras: Any, cfg: Any) -> Any:
    cls = keras.optimizers.Adam if cfg.optimizer == "adam" else keras.optimizers.SGD
    optimizer = cls(learning_rate=cfg.learning_rate)
    if cfg.dtype == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
