"""Allowances for comparisons across backends and against a baseline: pure NumPy.

Two runs of the same model (two backends, or this run and a saved baseline) are judged with
the same rules as two variants on one backend: **each side's allowance against the float64
reference**, added, never the dtype's fixed atol/rtol (long sums round differently on each
backend, so a fixed tolerance fails healthy models; issue 15).

=====================  ======================================================================
quantity               allowed ``|a - b|``
=====================  ======================================================================
head output            ``B_a(h_a) + B_b(h_b) + |head64(h_a) - head64(h_b)|``: each side's head
                       bound (:func:`tdcheck.core.bounds.head_output_bound`, in its precision:
                       TF32 when on, flush-to-zero when probed) from the head input it read,
                       plus the trunk's difference carried through the exact head, measured
                       (both heads from the reference side's stored weights)
trunk output           ``T_a + T_b``, each side's ``trunk vs oracle`` tolerance (``atol +
                       rtol |h64|``; TF32's ``4 * 2**-11`` on a TF32 side)
head weight gradients  ``G_a(h_a) + G_b(h_b) + |ref(h_a) - ref(h_b)|`` with
                       :func:`tdcheck.core.bounds.head_gradient_bound` and the exact gradients
                       recomputed from each side's head input and ``R``
trunk/input gradients  ``S_a + S_b``, each side's ``scaled`` rule
                       (:func:`tdcheck.core.bounds.scaled_allowance`)
trained weights and    each side's training allowance, added (see
outputs                :func:`tdcheck.core.bounds.trained_weight_allowance`)
=====================  ======================================================================

A side is a mapping of the ``--save-arrays`` keys (``features``, ``features/oracle``,
``weights/<variant>/kernel``, ``gradients/R``, ``outputs/<variant>``...) and its environment
(``tf32``, ``device``, ``flush_to_zero``), so a saved archive is re-judgeable with NumPy alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tdcheck.core import bounds
from tdcheck.core.backends import TF32_TOLERANCES
from tdcheck.core.tolerances import compute_dtype, default_tolerances


@dataclass(frozen=True)
class Side:
    """One run's arrays (``--save-arrays`` keys) and environment."""

    arrays: Mapping[str, np.ndarray]
    environment: Mapping[str, Any]

    def precision(self, dtype: str) -> str:
        """``"tf32"`` when float32 matmuls ran in TF32 on a GPU, else ``dtype``."""
        device = str(self.environment.get("device", ""))
        tf32 = bool(self.environment.get("tf32")) and "GPU" in device.upper()
        return "tf32" if tf32 and dtype == "float32" else dtype

    def ftz(self, dtype: str) -> bool:
        """Whether this side flushed subnormals in ``dtype``'s compute dtype (probed; an archive
        from before the probe counts as flushing: the allowance only grows by a few ``tiny``)."""
        probed = self.environment.get("flush_to_zero")
        if not isinstance(probed, Mapping):
            return True
        value = probed.get(compute_dtype(dtype) if dtype != "tf32" else "float32")
        return True if value is None else bool(value)


def side_tolerances(side: Side, dtype: str) -> tuple[float, float]:
    """``(atol, rtol)`` of this side's ``trunk vs oracle`` comparison (TF32: ``4 * 2**-11``)."""
    atol, rtol = default_tolerances(dtype)
    if side.precision(dtype) == "tf32":
        return max(atol, TF32_TOLERANCES[0]), max(rtol, TF32_TOLERANCES[1])
    return atol, rtol


def _head(side: Side, ref: Side, variant: str) -> tuple[np.ndarray, np.ndarray] | None:
    keys = (f"weights/{variant}/kernel", f"weights/{variant}/bias")
    if not all(k in ref.arrays for k in keys) or "features" not in side.arrays:
        return None
    bias = np.asarray(ref.arrays[keys[1]], np.float64)
    kernel = np.asarray(ref.arrays[keys[0]], np.float64).reshape(-1, bias.shape[-1])
    return kernel, bias


def output_allowance(
    a: Side, b: Side, variant: str, *, dtype: str, activation: str
) -> np.ndarray | None:
    """Allowed ``|y_a - y_b|`` of a head output (None: the arrays needed are missing)."""
    head = _head(a, b, variant)
    if head is None or "features" not in b.arrays:
        return None
    kernel, bias = head
    total: np.ndarray | float = 0.0
    refs = []
    for side in (a, b):
        h = np.asarray(side.arrays["features"], np.float64)
        prec = side.precision(dtype)
        total = (
            total
            + bounds.head_output_bound(h, kernel, bias, activation, prec, ftz=side.ftz(dtype))
            + bounds.head_output_bound(h, kernel, bias, activation, "float64")
        )
        refs.append(bounds.head_output_reference(h, kernel, bias, activation))
    return np.asarray(total + np.abs(refs[0] - refs[1]))


def trunk_allowance(a: Side, b: Side, *, dtype: str) -> np.ndarray | None:
    """Allowed ``|h_a - h_b|`` of the trunk's output: both sides' ``trunk vs oracle``
    tolerances against the float64 trunk (``features/oracle``; else the reference side's)."""
    if "features" not in b.arrays:
        return None
    h64 = np.abs(np.asarray(b.arrays.get("features/oracle", b.arrays["features"]), np.float64))
    total = np.zeros_like(h64)
    for side in (a, b):
        atol, rtol = side_tolerances(side, dtype)
        total = total + atol + rtol * h64
    return total


def head_gradient_allowance(
    a: Side, b: Side, variant: str, quantity: str, *, dtype: str, activation: str
) -> np.ndarray | None:
    """Allowed difference of ``head.kernel``/``head.bias`` gradients of the loss ``sum R y``."""
    head = _head(a, b, variant)
    if head is None or "features" not in b.arrays or "gradients/R" not in b.arrays:
        return None
    kernel, bias = head
    r = np.asarray(b.arrays["gradients/R"], np.float64)
    total: np.ndarray | float = 0.0
    refs = []
    for side in (a, b):
        h = np.asarray(side.arrays["features"], np.float64)
        low = bounds.head_gradient_bound(
            h, r, kernel, bias, activation, side.precision(dtype), ftz=side.ftz(dtype)
        )
        high = bounds.head_gradient_bound(h, r, kernel, bias, activation, "float64")
        total = total + low[quantity] + high[quantity]
        refs.append(bounds.head_gradient_reference(h, r, kernel, bias, activation)[quantity])
    return np.asarray(total + np.abs(refs[0] - refs[1]))


def scaled_pair_allowance(
    a: Side, b: Side, expected: np.ndarray, positions: int, *, dtype: str
) -> np.ndarray:
    """Gradients through the trunk (input, ``trunk.*``): each side's ``scaled`` rule, added."""
    total = np.zeros(np.shape(expected))
    for side in (a, b):
        atol, rtol = side_tolerances(side, dtype)
        total = total + bounds.scaled_allowance(
            expected, positions, side.precision(dtype), atol, rtol
        )
    return total


def gradient_rule(quantity: str, positions: int, a: Side, b: Side, dtype: str) -> str:
    """The rule name of a gradient comparison: ``bound``/``prob-bound`` or ``scaled``."""
    if quantity not in ("head.kernel", "head.bias"):
        return "scaled"
    precisions = {a.precision(dtype), b.precision(dtype)}
    rules = {bounds.gradient_rule(positions, p) for p in precisions}
    return "prob-bound" if "prob-bound" in rules else "bound"


def output_rule(features: int, a: Side, b: Side, dtype: str) -> str:
    """``bound`` or ``prob-bound`` for a head output with ``features`` inputs."""
    rules = {bounds.output_rule(features, s.precision(dtype)) for s in (a, b)}
    return "prob-bound" if "prob-bound" in rules else "bound"


# -- training ----------------------------------------------------------------------------


def initial_weight(arrays: Mapping[str, np.ndarray], variant: str, name: str) -> Any:
    """The initial value of a trained weight (``head.kernel``, ``trunk.kernel``...) from the
    run's ``weights/...`` arrays, in the shape of ``trained/<variant>/<name>``; None if absent."""
    if name.startswith("trunk."):
        return arrays.get(f"weights/rnn/{name[len('trunk.') :]}")
    kernel, bias = arrays.get(f"weights/{variant}/kernel"), arrays.get(f"weights/{variant}/bias")
    if kernel is None or bias is None:
        return None
    return bias if name == "head.bias" else np.reshape(kernel, (-1, np.shape(bias)[-1]))


def training_allowances(
    arrays: Mapping[str, np.ndarray], variant: str, *, optimizer: str, learning_rate: float,
    dtype: str, atol: float, rtol: float, ftz: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """One side's allowances of a trained variant, keyed like its arrays
    (``trained/<variant>/<name>``, ``trained/outputs/<variant>``), derived from the reference's
    per-step gradients ``trained/gradients/<name>``; empty when those were not saved.
    ``atol``/``rtol``: the dtype's forward tolerance of the trained outputs."""
    valid = arrays.get("valid")
    positions = int(np.count_nonzero(valid)) if valid is not None else 1
    result: dict[str, np.ndarray] = {}
    allowed_sq = moved_sq = 0.0
    for key in arrays:
        if not key.startswith("trained/gradients/"):
            continue
        name = key[len("trained/gradients/") :]
        initial = initial_weight(arrays, variant, name)
        trained = arrays.get(f"trained/{variant}/{name}")
        if initial is None or trained is None or np.shape(initial) != np.shape(trained):
            continue
        allowed = bounds.trained_weight_allowance(
            initial, arrays[key], optimizer=optimizer, learning_rate=learning_rate,
            positions=positions, dtype=dtype, ftz=ftz,
        )  # fmt: skip
        result[f"trained/{variant}/{name}"] = allowed
        moved = np.asarray(trained, np.float64) - np.asarray(initial, np.float64)
        allowed_sq += float(np.sum(allowed * allowed))
        moved_sq += float(np.sum(moved * moved))
    y0, yt = arrays.get(f"outputs/{variant}"), arrays.get(f"trained/outputs/{variant}")
    if result and y0 is not None and yt is not None and np.shape(y0) == np.shape(yt):
        ratio = float(np.sqrt(allowed_sq / moved_sq)) if moved_sq > 0 else 0.0
        result[f"trained/outputs/{variant}"] = bounds.trained_output_allowance(
            y0, yt, ratio, dtype, atol, rtol
        )
    return result


#: The rule name :func:`allowance` gives a trained array that the model does not determine
#: (:func:`training_undetermined`): not judged, unless both sides are bitwise identical.
UNDETERMINED = "undetermined"


def training_undetermined(
    arrays: Mapping[str, np.ndarray], variant: str, *, optimizer: str, learning_rate: float,
    dtype: str, ftz: bool = False,
) -> str | None:  # fmt: skip
    """Why the trained weights are not determined by the model (one line), from the
    reference's per-step gradients (:func:`tdcheck.core.bounds.undetermined_steps`); None
    when they are (always with SGD)."""
    if optimizer != "adam":
        return None
    if dtype.startswith("mixed_"):  # the variables, and Adam's moments, are float32
        dtype = "float32"
    valid = arrays.get("valid")
    positions = int(np.count_nonzero(valid)) if valid is not None else 1
    steps = found = weights = 0
    names: list[str] = []
    for key in sorted(arrays):
        if not key.startswith("trained/gradients/"):
            continue
        name = key[len("trained/gradients/") :]
        initial = initial_weight(arrays, variant, name)
        if initial is None or np.shape(initial) != np.shape(arrays[key])[1:]:
            continue
        steps = len(arrays[key])
        first, count = bounds.undetermined_steps(
            initial, arrays[key], optimizer=optimizer, learning_rate=learning_rate,
            positions=positions, dtype=dtype, ftz=ftz,
        )  # fmt: skip
        if first is None:
            continue
        if not found or first < found:
            found = first
        weights += count
        names.append(name)
    if not found:
        return None
    return (
        f"trained weights not judged: Adam's second moment is not computed accurately in "
        f"{dtype} (v = (1 - b2) g^2 underflows) for {weights} weights of "
        f"{', '.join(names)} at step {found} of {steps}, so their step is m/eps or m/sqrt(v) "
        f"as rounding falls, and every later step depends on it; use mixed_float16 "
        f"(float32 moments) or SGD to compare training"
    )


def allowance(
    key: str, quantity: str, expected: np.ndarray, sides: tuple[Side, Side], cfg: Any
) -> tuple[np.ndarray | None, str]:
    """The allowed difference of the array ``key`` between two runs, and its rule's name
    (None: an array it needs is missing, e.g. in an old baseline)."""
    a, b = sides
    dtype, activation = cfg.dtype, cfg.activation
    parts = key.split("/")
    name = parts[2] if key.startswith("trained/outputs/") else (parts[1] if len(parts) > 1 else "")
    if key == "features":
        return trunk_allowance(a, b, dtype=dtype), "tolerance each side"
    if key.startswith("outputs/"):
        allowed = output_allowance(a, b, name, dtype=dtype, activation=activation)
        return allowed, output_rule(cfg.head_input_size, a, b, dtype)
    if key.startswith("gradients/"):
        features = b.arrays.get("features")
        shape = np.shape(features) if features is not None else np.shape(expected)
        positions = int(np.prod(shape[:2]))
        if quantity in ("head.kernel", "head.bias"):
            allowed = head_gradient_allowance(
                a, b, name, quantity, dtype=dtype, activation=activation
            )
        else:
            allowed = scaled_pair_allowance(a, b, expected, positions, dtype=dtype)
        return allowed, gradient_rule(quantity, positions, a, b, dtype)
    if key.startswith("trained/"):
        for side in (a, b):
            why = training_undetermined(
                side.arrays, name, optimizer=cfg.optimizer, learning_rate=cfg.learning_rate,
                dtype=side.precision(dtype), ftz=side.ftz(dtype),
            )  # fmt: skip
            if why is not None:
                return None, UNDETERMINED
        total: np.ndarray | None = np.zeros(np.shape(expected))
        for side in (a, b):
            atol, rtol = side_tolerances(side, dtype)
            own = training_allowances(
                side.arrays, name, optimizer=cfg.optimizer, learning_rate=cfg.learning_rate,
                dtype=side.precision(dtype), atol=atol, rtol=rtol, ftz=side.ftz(dtype),
            ).get(key)  # fmt: skip
            total = None if own is None or total is None else total + own
        return total, "training"
    return None, "bound"
