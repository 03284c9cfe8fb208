"""``--power``: would this configuration, input and rule have caught known faults?

The judging half of the power check: the faults of :mod:`tdcheck.core.faults` are evaluated
exactly (NumPy, float64) and rounded once to the compute dtype, then judged by the same
:class:`~tdcheck.core.judge.comparator.Judge` as the run. The user's model is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core import bounds, faults
from tdcheck.core.judge.allowances import Heads, oracle_allowances
from tdcheck.core.result import ORACLE

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig
    from tdcheck.core.judge.comparator import Judge


def power_check(
    cfg: CompareConfig,
    judge: Judge,
    x: np.ndarray,
    head_input: np.ndarray,
    features64: np.ndarray | None,
    heads: Heads,
    outputs: dict[str, np.ndarray],
    oracle_outputs: dict[str, np.ndarray] | None,
    bounds_out: dict[str, np.ndarray],
    where: Any,
) -> dict[str, Any]:
    """``--power``: each fault of :func:`tdcheck.core.faults.faults` goes into a copy of the
    second variant's head (the first when there is one), evaluated exactly and rounded once to
    the compute dtype, and is judged as that head would be: against the reference variant's
    actual output (the pair rule) and against the oracle."""
    target = cfg.variants[1] if len(cfg.variants) > 1 else cfg.variants[0]
    reference = cfg.variants[0]
    kernel, bias = heads[target]
    h = np.asarray(head_input, np.float64)
    rule = bounds.output_rule(cfg.head_input_size, judge.precision)

    def judged(k: np.ndarray, b: np.ndarray, act: str) -> tuple[bool, str, float]:
        y = faults.round_to(bounds.head_output_reference(h, k, b, act), cfg.dtype)
        own = bounds.head_output_bound(h, k, b, act, judge.precision) + bounds.head_output_bound(
            h, k, b, act, "float64"
        )
        found: list[tuple[str, float]] = []
        if target != reference:
            if judge.exact:  # bitwise: against the healthy head evaluated the same way
                expected = faults.round_to(
                    bounds.head_output_reference(h, kernel, bias, cfg.activation), cfg.dtype
                )
            else:
                expected = outputs[reference]
            s = judge.measure(target, reference, y, expected, where, own + bounds_out[reference],
                              rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {reference}", s.margin or 0.0))
        if oracle_outputs is not None and features64 is not None:
            allowed = oracle_allowances(cfg, h, features64, {target: (k, b)}, {target: own}, act)
            s = judge.measure(target, ORACLE, y, oracle_outputs[target], where, allowed[target],
                              rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {ORACLE}", s.margin or 0.0))
        margin = max((m for _, m in found), default=0.0)
        return bool(found), ", ".join(name for name, _ in found), margin

    rows: list[dict[str, Any]] = []
    missed_rounding: list[str] = []
    missed: list[str] = []
    for fault in faults.faults(kernel, bias, cfg.activation, cfg.dtype):
        detected, by, margin = judged(fault.kernel, fault.bias, fault.activation)
        rows.append({
            "fault": fault.name, "detected": detected, "by": by or None,
            "margin": margin if detected else None, "note": fault.note or None,
            "rounding_level": fault.rounding_level,
        })  # fmt: skip
        if not detected:
            (missed_rounding if fault.rounding_level else missed).append(fault.name)
    smallest = None
    for power in range(0, 31):
        k = 2.0**power
        if judged(faults.scaled_kernel(kernel, k, cfg.dtype), bias, cfg.activation)[0]:
            smallest = k
            break
    blind = None
    if missed:
        why, options = faults.blind_reasons(kernel, bias, x, missed)
        blind = f"blind to {', '.join(missed)}: {why}"
        blind += f"; sensitive with {' '.join(options)}" if options else ""
    below = None
    if missed_rounding:
        below = (
            f"not seen: {', '.join(missed_rounding)}: within the rounding a correct "
            "implementation may add (the bound); --exact sees such changes between "
            "bitwise-identical variants"
        )
    return {"head": target, "reference": reference, "faults": rows,
            "smallest_scaling_detected": smallest, "blind": blind,
            "below_rounding": below}  # fmt: skip
