"""Element-wise allowances for the ``bound`` rule of ``tdcheck compare``.

Each function turns the reference side's own values (the head's input, its weights, the
cotangent ``R``) into the largest difference a correct implementation may show, from the
rounding-error bounds of :mod:`tdcheck.core.bounds`. ``precision`` is the dtype the bounds
assume (``"tf32"`` when the command found TensorFloat-32 on; the command asks the engine, the
judge never does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tdcheck.core import bounds

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig

Heads = dict[str, tuple[np.ndarray, np.ndarray]]


def bound_precision(dtype: str, device: str, tf32_setting: Callable[[], bool | None]) -> str:
    """The precision the bounds assume: ``"tf32"`` when float32 runs on a GPU with
    TensorFloat-32 enabled (``tf32_setting``, the engine's switch, is asked only then), else
    ``dtype``."""
    if dtype != "float32" or "GPU" not in str(device).upper():
        return dtype
    return "tf32" if tf32_setting() else dtype


def output_bounds(
    cfg: CompareConfig, head_input: np.ndarray, heads: Heads, precision: str | None = None
) -> dict[str, np.ndarray]:
    """Per variant: the allowed difference of its output from the exact head on ``head_input``.

    The variant's own rounding in the compute dtype plus the float64 reference's own rounding.
    A pair of variants read the same ``head_input`` tensor, so the trunk's error is common and
    cancels: the pair is allowed the sum of the two heads' bounds.
    """
    cache: dict[bytes, np.ndarray] = {}
    result = {}
    for v, (kernel, bias) in heads.items():
        key = kernel.tobytes() + bias.tobytes()
        if key not in cache:
            cache[key] = bounds.head_output_bound(
                head_input, kernel, bias, cfg.activation, precision or cfg.dtype
            ) + bounds.head_output_bound(head_input, kernel, bias, cfg.activation, "float64")
        result[v] = cache[key]
    return result


def oracle_allowances(
    cfg: CompareConfig,
    head_input: np.ndarray,
    features64: np.ndarray,
    heads: Heads,
    bounds_out: dict[str, np.ndarray],
    activation: str | None = None,
) -> dict[str, np.ndarray]:
    """Per variant: allowed difference from the float64 oracle of the whole model.

    The head's bound (:func:`output_bounds`) plus the trunk's error carried through this head,
    measured exactly: ``|head64(h) - head64(h64)|`` for the trunk output ``h`` the head read
    and the oracle's ``h64``, plus twice the float64 rounding of those two evaluations. The
    trunk's error itself is judged by the ``trunk vs oracle`` comparison.
    """
    result = {}
    for v, (kernel, bias) in heads.items():
        act = activation or cfg.activation
        carried = np.abs(
            bounds.head_output_reference(head_input, kernel, bias, act)
            - bounds.head_output_reference(features64, kernel, bias, act)
        )
        own64 = bounds.head_output_bound(features64, kernel, bias, act, "float64")
        result[v] = bounds_out[v] + carried + 2.0 * own64
    return result


def head_gradient_bounds(
    cfg: CompareConfig,
    head_input: np.ndarray,
    r: np.ndarray,
    heads: Heads,
    precision: str | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Per variant: exact float64 head weight gradients and their allowed differences.

    Both from the head's actual input and the cotangent ``R``; the allowance is the variant's
    rounding in the compute dtype plus the float64 recomputation's own.
    """
    refs, allowed = {}, {}
    for v, (kernel, bias) in heads.items():
        act = cfg.activation
        refs[v] = bounds.head_gradient_reference(head_input, r, kernel, bias, act)
        low = bounds.head_gradient_bound(head_input, r, kernel, bias, act, precision or cfg.dtype)
        high = bounds.head_gradient_bound(head_input, r, kernel, bias, act, "float64")
        allowed[v] = {q: low[q] + high[q] for q in low}
    return refs, allowed


def scaled_gradient_allowance(
    expected: np.ndarray, positions: int, precision: str, atol: float, rtol: float
) -> np.ndarray:
    """The ``scaled`` rule for gradients with no derived bound (through the trunk, or the
    finite-difference input gradient): see :func:`tdcheck.core.bounds.scaled_allowance`."""
    return bounds.scaled_allowance(expected, positions, precision, atol, rtol)


def gradient_pair_allowance(
    allowed: dict[str, dict[str, np.ndarray]],
    variant: str,
    reference: str,
    quantity: str,
    expected: np.ndarray,
    positions: int,
    precision: str,
    atol: float,
    rtol: float,
) -> tuple[np.ndarray, str]:
    """The allowance and rule name for ``variant``'s gradient ``quantity`` against the
    reference variant's: the sum of both heads' bounds where one is derived (head weights),
    else the ``scaled`` rule on the reference's gradient."""
    bound = allowed[variant].get(quantity)
    if bound is not None:
        return bound + allowed[reference][quantity], bounds.gradient_rule(positions, precision)
    return scaled_gradient_allowance(expected, positions, precision, atol, rtol), "scaled"
