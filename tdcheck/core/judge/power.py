"""``--power``: would this configuration, input and rule have caught known faults?

The judging half of the power check: the faults of :mod:`tdcheck.core.faults` are evaluated
exactly (NumPy, float64) and rounded once to the compute dtype, then judged by the same
:class:`~tdcheck.core.judge.comparator.Judge` as the run. The user's model is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core import bounds, faults, samecomp
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
    """``--power``: would this configuration, input and rules have caught known faults?

    Each fault of :func:`tdcheck.core.faults.faults` goes into a copy of the second variant's
    head (the first when there is one), evaluated exactly and rounded once to the compute
    dtype, and is judged by each rule (``by_rule``):

    * ``bound``: as that head is judged, against the reference variant's actual output and
      against the oracle, allowances from the healthy (reference) weights;
    * ``statistical``: against the exact head with the reference's weights, under the
      rounding model (:mod:`tdcheck.core.rounding`);
    * ``float64``: same computation, from the stored weights in float64
      (:mod:`tdcheck.core.samecomp`).

    With ``--atol/--rtol`` or ``--exact`` only the run's own rule judges (``bound`` then
    names it). The user's model is never touched.
    """
    target = cfg.variants[1] if len(cfg.variants) > 1 else cfg.variants[0]
    reference = cfg.variants[0]
    kernel, bias = heads[target]
    h = np.asarray(head_input, np.float64)
    rule = bounds.output_rule(cfg.head_input_size, judge.precision)
    healthy = {target: bounds_out[target]}  # the allowance of the healthy head's weights
    extra = not (judge.user_tolerances or judge.exact)
    rules = samecomp.FaultJudge(h, (*heads[reference], cfg.activation), cfg.dtype,
                                judge.precision, where,
                                judge.accumulation) if extra else None  # fmt: skip

    def bound_rule(k: np.ndarray, b: np.ndarray, act: str) -> tuple[bool, str, float]:
        y = faults.round_to(bounds.head_output_reference(h, k, b, act), cfg.dtype)
        found: list[tuple[str, float]] = []
        if target != reference:
            if judge.exact:  # bitwise: against the healthy head evaluated the same way
                expected = faults.round_to(
                    bounds.head_output_reference(h, kernel, bias, cfg.activation), cfg.dtype
                )
            else:
                expected = outputs[reference]
            s = judge.measure(target, reference, y, expected, where,
                              2.0 * bounds_out[reference], rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {reference}", s.margin or 0.0))
        if oracle_outputs is not None and features64 is not None:
            allowed = oracle_allowances(cfg, h, features64, {target: (kernel, bias)}, healthy)
            s = judge.measure(target, ORACLE, y, oracle_outputs[target], where, allowed[target],
                              rule)  # fmt: skip
            if not s.passed:
                found.append((f"{target} vs {ORACLE}", s.margin or 0.0))
        margin = max((m for _, m in found), default=0.0)
        return bool(found), ", ".join(name for name, _ in found), margin

    def by_rule(
        k: np.ndarray, b: np.ndarray, act: str, only: str | None = None
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if only in (None, "bound"):
            found, by, margin = bound_rule(k, b, act)
            out["bound"] = {"detected": found, "margin": margin, "by": by or None}
        if rules is not None and only in (None, "statistical"):
            stat = rules.statistical((k, b, act))
            if stat is not None:
                out["statistical"] = {"detected": stat[0], "margin": stat[1]}
        if rules is not None and only in (None, "float64"):
            same = rules.float64((k, b, act))
            out["float64"] = {"detected": same[0], "margin": same[1]}
        return out

    rows: list[dict[str, Any]] = []
    missed_rounding: list[str] = []
    missed: list[str] = []
    for fault in faults.faults(kernel, bias, cfg.activation, cfg.dtype):
        judged = by_rule(fault.kernel, fault.bias, fault.activation)
        names = [name for name, r in judged.items() if r["detected"]]
        detected = bool(names)
        margin = max((judged[name]["margin"] for name in names), default=None)
        rows.append({
            "fault": fault.name, "detected": detected, "by": ", ".join(names) or None,
            "margin": margin, "note": fault.note or None,
            "rounding_level": fault.rounding_level,
            "by_rule": judged,
        })  # fmt: skip
        if not detected:
            (missed_rounding if fault.rounding_level else missed).append(fault.name)
    smallest: dict[str, float | None] = {}
    for name in ("bound", "statistical", "float64"):
        if rules is None and name != "bound":
            continue
        if name == "statistical" and rules is not None and rules.scale is None:
            continue
        smallest[name] = None
        for power in range(0, 31):
            k = 2.0**power
            scaled = faults.scaled_kernel(kernel, k, cfg.dtype)
            judged_k = by_rule(scaled, bias, cfg.activation, only=name)
            if judged_k[name]["detected"]:
                smallest[name] = k
                break
    rounding_rules = [s for n in ("bound", "statistical") if (s := smallest.get(n)) is not None]
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
            "smallest_scaling_detected": min(rounding_rules, default=None),
            "smallest_scaling_by_rule": smallest, "blind": blind,
            "below_rounding": below}  # fmt: skip
