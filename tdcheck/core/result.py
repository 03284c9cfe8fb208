"""Result objects: one :class:`Comparison` per judged pair, one :class:`CompareResult` per run.

They live in core next to the judge (:mod:`tdcheck.core.judge`), which makes them; reports
import them to render, commands to return them. NumPy only, imported lazily.

Their truth value is the verdict, and :meth:`CompareResult.to_dict` is the JSON
document that ``--format json`` prints (non-finite numbers become the strings
``"inf"``, ``"-inf"`` and ``"nan"``, so the output is strict JSON).

>>> import numpy as np
>>> from tdcheck.core.stats import compare_arrays
>>> c = Comparison("output", "a", "b", compare_arrays(np.zeros(2), np.zeros(2), atol=0, rtol=0))
>>> bool(c), c.label
(True, 'a vs b')
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # NumPy stays unloaded for reports that need no statistics (tdcheck scan)
    import numpy as np

    from tdcheck.core.stats import ArrayStats

ORACLE = "oracle"
#: The exact float64 head with the reference weights (the statistical rule judges against it).
EXACT = "exact"
SCHEMA_VERSION = 1


@dataclass
class Comparison:
    """One judged pair: ``a`` compared with the reference ``b``."""

    kind: str
    a: str
    b: str
    stats: ArrayStats
    quantity: str = "output"
    #: The ``--save-arrays`` keys of ``a`` and ``b`` (None when nothing was saved).
    keys: tuple[str, str] | None = None

    def __bool__(self) -> bool:
        return self.stats.passed

    @property
    def passed(self) -> bool:
        return self.stats.passed

    @property
    def label(self) -> str:
        pair = f"{self.a} vs {self.b}"
        return pair if self.quantity == "output" else f"{pair} [{self.quantity}]"

    @property
    def involves_oracle(self) -> bool:
        return ORACLE in (self.a, self.b)

    @property
    def against_reference(self) -> bool:
        """Against a float64 reference: the oracle, or the exact head (``exact``)."""
        return ORACLE in (self.a, self.b) or EXACT in (self.a, self.b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "quantity": self.quantity,
            "a": self.a,
            "b": self.b,
            "arrays": list(self.keys) if self.keys else None,
            **self.stats.to_dict(),
        }


@dataclass
class CompareResult:
    """Everything one ``tdcheck compare`` run found; true when every comparison passed."""

    config: dict[str, Any]
    environment: dict[str, Any]
    layers: list[dict[str, Any]]
    total_params: int
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    training: dict[str, Any] | None = None
    #: ``--power``: the injected faults and whether the comparisons would catch them.
    power: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.passed

    def power_lines(self) -> list[str]:
        """The power check in a few lines (none without ``--power``)."""
        if not self.power:
            return []
        p = self.power
        rows = p["faults"]
        found = sum(row["detected"] for row in rows)
        lines = [
            f"power: {found} of {len(rows)} faults injected into a copy of the "
            f"{p['head']} head detected"
        ]
        for row in rows:
            per_rule = row.get("by_rule") or {}
            if per_rule:
                hits = [
                    f"{name} (margin {fmt(r['margin'])})"
                    for name, r in per_rule.items()
                    if r["detected"]
                ]
                missed = [name for name, r in per_rule.items() if not r["detected"]]
                state = f"detected by {', '.join(hits)}" if hits else "not detected"
                if hits and missed:
                    state += f"; not by {', '.join(missed)}"
            else:
                state = (
                    f"detected by {row['by']} (margin {fmt(row['margin'])})"
                    if row["detected"]
                    else "not detected"
                )
            lines.append(f"  {row['fault']}: {state}")
        k = p["smallest_scaling_detected"]
        lines.append(
            "  smallest kernel scaling detected: "
            + (f"1 + {fmt(k)}u" if k is not None else "none up to 1 + 2^30 u")
        )
        by_rule = p.get("smallest_scaling_by_rule") or {}
        if len(by_rule) > 1:
            lines.append(
                "  by rule: "
                + ", ".join(
                    f"{name} " + (f"1 + {fmt(v)}u" if v is not None else "none")
                    for name, v in by_rule.items()
                )
            )
        for key in ("blind", "below_rounding"):
            if p.get(key):
                lines.append(f"  {p[key]}")
        return lines

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.passed]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def verdict(self) -> str:
        """One line: the answer, honest about bitwise identity and about who disagrees.

        A failure says whether the variants disagree with each other, or agree (bitwise, or
        within their bounds) while the oracle disagrees; the worst pair is printed with the
        shortest text that round-trips in its dtype.
        """
        n = len(self.comparisons)
        noun = "comparison" if n == 1 else "comparisons"
        pairs = [c for c in self.comparisons if not c.against_reference]
        if not self.passed:
            failed_pairs = [c for c in self.failures if not c.against_reference]
            worst = max(failed_pairs or self.failures, key=_badness)
            s = worst.stats
            where = ""
            if s.worst_index is not None:
                where = (
                    f"; worst {worst.label} at {list(s.worst_index)}: "
                    f"{shortest(s.worst_a, s.dtype_a)} vs {shortest(s.worst_b, s.dtype_b)}"
                )
            if s.note:
                need = f"; {s.note}"
            elif s.element_rule:
                need = f"; margin {fmt(s.margin)} over the {s.rule} rule (at most 1 passes)"
            elif s.min_atol is not None and not s.exact:
                need = (
                    f"; would pass with atol >= {fmt(s.min_atol)} (rtol {fmt(s.rtol)})"
                    f" or rtol >= {fmt(s.min_rtol)} (atol {fmt(s.atol)})"
                )
            else:
                need = ""
            count = f"{len(self.failures)} of {n} {noun} failed"
            if failed_pairs:
                return f"NOT EQUIVALENT: {count} ({_who(failed_pairs)}){where}{need}"
            agree = (
                "the variants are bitwise identical"
                if pairs and all(c.stats.bitwise_equal for c in pairs)
                else "the variants agree within their bounds"
                if pairs
                else "no variant pair to compare"
            )
            return f"ORACLE DISAGREES: {agree}, but {count}{where}{need}"
        if pairs and all(c.stats.bitwise_equal for c in pairs):
            text = "EQUIVALENT: the variants are bitwise identical"
        elif pairs:
            differ = [c for c in pairs if not c.stats.bitwise_equal]
            ulp = max((c.stats.max_ulp or 0) for c in differ)
            diff = max((c.stats.max_abs_diff or 0.0) for c in differ)
            text = (
                "EQUIVALENT within tolerance, not bitwise identical "
                f"({len(differ)} of {len(pairs)} comparisons differ, by up to {ulp} ULP, "
                f"max abs diff {fmt(diff)})"
            )
        else:
            text = "EQUIVALENT to the oracle within tolerance"
        oracle = [c for c in self.comparisons if c.against_reference]
        if oracle:
            oracle_worst = max((c.stats.max_abs_diff or 0.0) for c in oracle)
            text += f"; oracle agrees to {fmt(oracle_worst)}"
        if self.training and self.training.get("not_judged"):
            text += "; trained weights not judged (rounding decides them: see the note)"
        return f"{text} ({n} {noun} passed)"

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "passed": self.passed,
                "verdict": self.verdict(),
                "config": self.config,
                "environment": self.environment,
                "layers": self.layers,
                "total_params": self.total_params,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "training": self.training,
                "power": self.power,
                "notes": self.notes,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


@dataclass
class CompareRun(CompareResult):
    """A :class:`CompareResult` that also holds the arrays (for ``--save-arrays``)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class Check:
    """One judged output of ``models``/``rewrite``: which check (``call 5x2``,
    ``predict``...), which output, and its statistics."""

    check: str
    output: str
    stats: ArrayStats
    #: The ``--save-arrays`` keys of this output in B and in the reference A (None: not saved).
    keys: tuple[str, str] | None = None

    @property
    def passed(self) -> bool:
        return self.stats.passed

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "output": self.output,
                "arrays": list(self.keys) if self.keys else None,
                **self.stats.to_dict()}  # fmt: skip


def verdict_text(checks: Sequence[Check], tolerance: Any, subject: str) -> str:
    """``EQUIVALENT: ... bitwise identical`` or ``NOT EQUIVALENT: ...`` with the worst element."""
    failed = [c for c in checks if not c.passed]
    n = len(checks)
    if failed:
        worst = max(failed, key=lambda c: _key(c.stats.max_abs_diff))
        s = worst.stats
        where = s.note or (
            f"worst {worst.check} {worst.output} at {list(s.worst_index or ())}: "
            f"{fmt(s.worst_a)} vs {fmt(s.worst_b)} (|diff| "
            f"{fmt(s.worst_abs_diff if s.worst_abs_diff is not None else s.max_abs_diff)})"
        )
        return f"NOT EQUIVALENT: {len(failed)} of {n} checks failed; {where}"
    if checks and all(c.stats.bitwise_equal for c in checks):
        return f"EQUIVALENT: {subject} bitwise identical on all {n} checks"
    ulp = max((c.stats.max_ulp or 0) for c in checks) if checks else 0
    diff = max((c.stats.max_abs_diff or 0.0) for c in checks) if checks else 0.0
    return (
        f"EQUIVALENT within tolerance (atol {fmt(tolerance.atol)}, rtol {fmt(tolerance.rtol)}): "
        f"{n} checks, up to {ulp} ULP, max abs diff {fmt(diff)}"
    )


def _key(value: float | None) -> float:
    return float("inf") if value is None or value != value else value


def _badness(c: Comparison) -> tuple[float, float]:
    """How badly a comparison failed: its margin first (comparable across rules), then diff."""
    return (_sort_key(c.stats.margin), _sort_key(c.stats.max_abs_diff))


def _sort_key(value: float | None) -> float:
    if value is None or math.isnan(value):
        return math.inf
    return value


def shortest(value: float | None, dtype: str) -> str:
    """The shortest text that round-trips ``value`` in ``dtype`` (NumPy's shortest repr).

    >>> shortest(132.00001525878906, "float32"), shortest(0.1, "float64")
    ('132.00002', '0.1')
    """
    return exact_value(value, dtype)


def exact_value(value: float | None, dtype: str) -> str:
    """The shortest text that round-trips ``value`` in its own dtype (float32: 9 digits)."""
    if value is None:
        return "n/a"
    try:
        import numpy as np

        return str(np.dtype(dtype).type(value))
    except (TypeError, ValueError):
        return repr(value)


def fmt(value: Any) -> str:
    """Numbers for humans: 3 significant digits, exact zero as ``0``, None as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.3g}"
    return str(value)


def to_jsonable(value: Any) -> Any:
    """Replace non-finite floats with strings and tuples with lists, recursively."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _who(failed: list[Comparison]) -> str:
    """Who disagrees: the variants, the backends (``--backends``) or the run and its baseline."""
    kinds = {c.kind for c in failed}
    if kinds == {"baseline"}:
        return "this run disagrees with the baseline"
    if kinds == {"cross-backend"}:
        return "the backends disagree"
    if kinds == {"baseline", "cross-backend"}:
        return "the backends and the baseline disagree"
    return "the variants disagree"
