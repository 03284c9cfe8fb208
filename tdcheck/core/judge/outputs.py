"""Judging a user's model against another (``tdcheck models``, ``rewrite``,
``assert_equivalent``): per output, with per-dtype default tolerances or the user's.

>>> t = tolerance_for("float32")
>>> (t.atol, t.rtol, t.source)
(1e-05, 1.3e-06, 'default')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tdcheck.core.judge.rules import Exact, Tolerance
from tdcheck.core.result import Check
from tdcheck.core.stats import ArrayStats, compare_arrays
from tdcheck.core.tolerances import DEFAULT_TOLERANCES
from tdcheck.errors import ConfigError


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


#: A tolerance: one number, or ``{output name: number}`` (``"*"``: every other output).
ToleranceValue = float | Mapping[str, float] | None


def split_tolerance(value: ToleranceValue) -> tuple[float | None, dict[str, float]]:
    """``(plain value, {output: value})`` from a number or a mapping (``"*"``: plain)."""
    if value is None or isinstance(value, (int, float)):
        return (None if value is None else float(value)), {}
    own = {str(k): float(v) for k, v in value.items()}
    return own.pop("*", None), own


def tolerance_for_outputs(
    dtype: str, names: Sequence[str], atol: ToleranceValue, rtol: ToleranceValue
) -> Tolerance:
    """The tolerance rule for outputs ``names``: per-dtype defaults, the plain values, and
    each output's own (``--atol NAME=V``); a name that is no output is exit 2."""
    plain_atol, own_atol = split_tolerance(atol)
    plain_rtol, own_rtol = split_tolerance(rtol)
    for option, own in (("--atol", own_atol), ("--rtol", own_rtol)):
        for name, value in own.items():
            if name not in names:
                raise ConfigError(
                    f"{option}: the models have no output named {name!r}; their outputs are: "
                    f"{', '.join(names)}"
                )
            if not value >= 0:
                raise ConfigError(f"{option}: must be a number >= 0, got {value} for {name!r}")
    per_output: dict[str, tuple[float | None, float | None]] = {
        name: (own_atol.get(name), own_rtol.get(name)) for name in {*own_atol, *own_rtol}
    }
    return tolerance_for(dtype, plain_atol, plain_rtol, per_output or None)


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
    allowed: Sequence[np.ndarray] | None = None,
) -> list[Check]:  # fmt: skip
    """Every output of one check, each with its own tolerance (:meth:`Tolerance.for_output`),
    or, where ``allowed`` gives each output an element-wise allowance (rewrite's float64
    shadow, :mod:`tdcheck.core.shadow`), by that allowance."""
    checks = []
    for n, (name, b, a) in enumerate(zip(names, actual, expected, strict=True)):
        own = tolerance.for_output(name)
        if allowed is None:
            stats = judge_output(b, a, own, equal_nan=equal_nan)
        else:
            allow = allowed[n] if np.shape(b) == np.shape(a) else None
            stats = compare_arrays(b, a, atol=own.atol, rtol=own.rtol, allowed=allow,
                                   equal_nan=equal_nan)  # fmt: skip
        checks.append(Check(label, name, stats))
    return checks


def raised_stats(note: str, expected: np.ndarray, tolerance: Tolerance) -> ArrayStats:
    """A failed comparison for an output that was never produced."""
    return ArrayStats(
        shape_a=(), shape_b=tuple(expected.shape), dtype_a="none", dtype_b=str(expected.dtype),
        atol=tolerance.atol, rtol=tolerance.rtol, exact=False, passed=False,
        total=int(expected.size), mismatched=int(expected.size), note=note,
    )  # fmt: skip


def compare_weights(
    a: Sequence[np.ndarray] | None, b: Sequence[np.ndarray] | None
) -> dict[str, Any]:
    """One layer's weights in two models, array by array (Keras's order), bitwise.

    ``weights`` says ``bitwise`` (every array has identical bits), ``differ`` (with
    ``max_abs_diff`` over every element of every array), ``shapes differ``, ``none`` (no
    weights on either side), ``only in A`` or ``only in B``. Informational: the verdict is
    the outputs'.

    >>> compare_weights([np.array([1.0, 2.0])], [np.array([1.0, 2.05])])["max_abs_diff"]
    0.04999999999999982
    """
    if a is None or b is None:
        return {"weights": "only in A" if b is None else "only in B",
                "max_abs_diff": None, "bitwise_equal": False}  # fmt: skip
    if not a and not b:
        return {"weights": "none", "max_abs_diff": None, "bitwise_equal": True}
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=False)):
        return {"weights": "shapes differ", "max_abs_diff": None, "bitwise_equal": False}
    rule = Exact()
    diffs, bitwise = [], True
    for x, y in zip(a, b, strict=True):
        stats = rule.measure(x, y, equal_nan=True)
        bitwise = bitwise and stats.bitwise_equal
        diffs.append(stats.max_abs_diff if stats.max_abs_diff is not None else 0.0)
    worst = max(diffs, default=0.0)
    return {"weights": "bitwise" if bitwise else "differ", "max_abs_diff": float(worst),
            "bitwise_equal": bitwise}  # fmt: skip
