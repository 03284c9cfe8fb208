"""Judging a user's model against another (``tdcheck models``, ``rewrite``,
``assert_equivalent``): per output, with per-dtype default tolerances or the user's.

>>> t = tolerance_for("float32")
>>> (t.atol, t.rtol, t.source)
(1e-05, 1.3e-06, 'default')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tdcheck.core.judge.rules import Exact, Tolerance
from tdcheck.core.result import Check
from tdcheck.core.stats import ArrayStats
from tdcheck.core.tolerances import DEFAULT_TOLERANCES


def tolerance_for(
    dtype: str, atol: float | None = None, rtol: float | None = None,
    per_output: dict[str, tuple[float | None, float | None]] | None = None,
) -> Tolerance:  # fmt: skip
    """Per-dtype defaults (float32: 1e-5 / 1.3e-6); integers and bools must match exactly.

    ``per_output`` maps an output name to its own ``(atol, rtol)``; a missing half takes the
    plain value (or the dtype's default).
    """
    default = DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))
    source = "given" if atol is not None or rtol is not None else "default"
    base_atol = default[0] if atol is None else float(atol)
    base_rtol = default[1] if rtol is None else float(rtol)
    own = None
    if per_output:
        own = {
            name: (base_atol if a is None else float(a), base_rtol if r is None else float(r))
            for name, (a, r) in per_output.items()
        }
    return Tolerance(base_atol, base_rtol, dtype, source, own)


def judge_output(
    actual: Any, expected: Any, tolerance: Tolerance, *, equal_nan: bool = False,
    exact: bool = False,
) -> ArrayStats:  # fmt: skip
    """One output: ``actual`` against the reference ``expected``."""
    if exact:
        return Exact(tolerance.atol, tolerance.rtol).measure(actual, expected, equal_nan=equal_nan)
    return tolerance.measure(actual, expected, equal_nan=equal_nan)


def judge_outputs(
    label: str, names: Sequence[str], actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray], tolerance: Tolerance, *, equal_nan: bool = False,
) -> list[Check]:  # fmt: skip
    """Every output of one check, each with its own tolerance (:meth:`Tolerance.for_output`)."""
    return [
        Check(label, name, judge_output(b, a, tolerance.for_output(name), equal_nan=equal_nan))
        for name, b, a in zip(names, actual, expected, strict=True)
    ]


def raised_stats(note: str, expected: np.ndarray, tolerance: Tolerance) -> ArrayStats:
    """A failed comparison for an output that was never produced."""
    return ArrayStats(
        shape_a=(), shape_b=tuple(expected.shape), dtype_a="none", dtype_b=str(expected.dtype),
        atol=tolerance.atol, rtol=tolerance.rtol, exact=False, passed=False,
        total=int(expected.size), mismatched=int(expected.size), note=note,
    )  # fmt: skip
