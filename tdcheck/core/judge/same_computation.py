"""The ``float64`` (same computation) and ``statistical`` pairs of ``tdcheck compare``.

The rules themselves are :class:`~tdcheck.core.judge.rules.Float64` and
:class:`~tdcheck.core.judge.rules.Statistical` (:mod:`tdcheck.core.samecomp`,
:mod:`tdcheck.core.rounding`); this module chooses the pairs and records the float64 arrays
they judge (``same-computation/<variant>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tdcheck.core import bounds, samecomp
from tdcheck.core.judge.comparator import Pair, judge_pair
from tdcheck.core.judge.rules import Float64, Statistical
from tdcheck.core.result import EXACT
from tdcheck.core.tolerances import unit_roundoff

if TYPE_CHECKING:
    from tdcheck.core.config import CompareConfig
    from tdcheck.core.judge.comparator import Judge


def exact_arithmetic_checks(
    cfg: CompareConfig,
    judge: Judge,
    head_input: np.ndarray,
    heads: dict[str, tuple[np.ndarray, np.ndarray]],
    outputs: dict[str, np.ndarray],
    errors: dict[str, str],
    where: Any,
) -> list[str]:
    """The ``float64`` and ``statistical`` rules on the head outputs (docs/checks.md).

    * ``same-computation``: every head against the reference head, both evaluated in
      float64 from their stored weights on the head input they read
      (``same-computation/<variant>``): equal to float64 rounding, or different computations.
    * ``statistical``: every head's output against that exact reference
      (``same-computation/<reference>``), its error's RMS and bias judged against the
      rounding model of the reference's weights, false-FAIL probability <= 1e-9.

    ``--atol/--rtol`` and ``--exact`` judge by their own rules: these are not added then.
    """
    if judge.user_tolerances or judge.exact:
        return []
    reference = cfg.variants[0]
    h = np.asarray(head_input, np.float64)
    ref_head = (*heads[reference], cfg.activation)
    arrays = judge.arrays
    arrays[f"same-computation/{reference}"] = samecomp.evaluate(h, ref_head)[0]
    for v in cfg.variants[1:]:
        result = samecomp.same_computation(h, (*heads[v], cfg.activation), ref_head, where)
        arrays[f"same-computation/{v}"] = result.y_a
        pair = Pair("same-computation", v, reference, where=where,
                    keys=(f"same-computation/{v}", f"same-computation/{reference}"))  # fmt: skip
        judge.comparisons.append(judge_pair(pair, arrays, Float64(result, judge.atol, judge.rtol)))
    notes: list[str] = []
    stat_where = where
    if judge.ftz:  # a flushed subnormal is no rounding error: judged by the bounds alone
        stat_where, note = _without_flushed(h, heads[reference], cfg.dtype, where)
        if note:
            notes.append(note)
        if stat_where is not None and not np.any(stat_where):
            return notes
    rules = samecomp.FaultJudge(h, ref_head, cfg.dtype, judge.precision, stat_where,
                                judge.accumulation)  # fmt: skip
    if rules.scale is None:
        return [*notes, f"statistical rule not applied: {rules.why_not}"]
    rule = Statistical(rules.scale, judge.atol, judge.rtol)
    for v in cfg.variants:
        if v in errors:
            continue
        pair = Pair("statistical", v, EXACT, where=stat_where,
                    keys=(f"outputs/{v}", f"same-computation/{reference}"))  # fmt: skip
        judge.comparisons.append(judge_pair(pair, arrays, rule))
    return notes


def _without_flushed(
    h: np.ndarray, head: tuple[np.ndarray, np.ndarray], dtype: str, where: Any
) -> tuple[Any, str]:
    """``where`` less the elements whose flush-to-zero loss (:func:`bounds.flush_allowance`)
    exceeds their rounding scale ``u (|h||W| + |b|)``: the statistical rule models rounding,
    not a framework reading subnormals as zero. Returns the mask and a note (or "")."""
    kernel, bias = (np.asarray(a, np.float64) for a in head)
    lost = bounds.flush_allowance(h, kernel, bias, dtype)
    scale = unit_roundoff(dtype) * (np.abs(h) @ np.abs(kernel) + np.abs(bias))
    affected = lost > scale
    if not np.any(affected):
        return where, ""
    keep = ~affected if where is None else np.broadcast_to(where, affected.shape) & ~affected
    n, total = int(np.count_nonzero(affected)), affected.size
    why = "subnormals the framework flushes to zero (judged by the bounds)"
    if not np.any(keep):
        return keep, f"statistical rule not applied: all {total} output elements involve {why}"
    return keep, f"statistical rule: {n} of {total} output elements left out: they involve {why}"
