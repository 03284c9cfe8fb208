"""Result objects: one :class:`Comparison` per judged pair, one :class:`CompareResult` per run.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # NumPy stays unloaded for reports that need no statistics (tdcheck scan)
    from tdcheck.core.stats import ArrayStats

ORACLE = "oracle"
SCHEMA_VERSION = 1


@dataclass
class Comparison:
    """One judged pair: ``a`` compared with the reference ``b``."""

    kind: str
    a: str
    b: str
    stats: ArrayStats
    quantity: str = "output"

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "quantity": self.quantity,
            "a": self.a,
            "b": self.b,
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

    def __bool__(self) -> bool:
        return self.passed

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
        """One line: the answer, honest about bitwise identity."""
        n = len(self.comparisons)
        if not self.passed:
            worst = max(self.failures, key=lambda c: _sort_key(c.stats.max_abs_diff))
            s = worst.stats
            where = ""
            if s.worst_index is not None:
                where = (
                    f"; worst {worst.label} at {list(s.worst_index)}: "
                    f"{fmt(s.worst_a)} vs {fmt(s.worst_b)}"
                )
            need = ""
            if s.min_atol is not None and not s.exact:
                need = (
                    f"; would pass with atol >= {fmt(s.min_atol)} (rtol {fmt(s.rtol)})"
                    f" or rtol >= {fmt(s.min_rtol)} (atol {fmt(s.atol)})"
                )
            elif s.note:
                need = f"; {s.note}"
            noun = "comparison" if n == 1 else "comparisons"
            return f"NOT EQUIVALENT: {len(self.failures)} of {n} {noun} failed{where}{need}"
        pairs = [c for c in self.comparisons if not c.involves_oracle]
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
        oracle = [c for c in self.comparisons if c.involves_oracle]
        if oracle:
            oracle_worst = max((c.stats.max_abs_diff or 0.0) for c in oracle)
            text += f"; oracle agrees to {fmt(oracle_worst)}"
        return f"{text} ({n} {'comparison' if n == 1 else 'comparisons'} passed)"

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
                "notes": self.notes,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _sort_key(value: float | None) -> float:
    if value is None or math.isnan(value):
        return math.inf
    return value


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
