"""``tdcheck sweep``: run a grid of configurations in one process and collect the verdicts.

TensorFlow is imported once and a model is built once for every configuration that differs
only in batch size, sequence length or input (see
:class:`tdcheck.commands.compare.Session`). A case that raises is recorded as errored and
the sweep goes on; ``fail_fast`` stops at the first case that fails or errors; Ctrl-C
stops the sweep and keeps what was done (``interrupted``).

The result serialises to the JSON document of ``tdcheck sweep --format json``::

    {"passed", "summary": {"total", "passed", "failed", "errored"}, "cases": [...], ...}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tdcheck.core.config import CompareConfig
from tdcheck.core.grid import case_name
from tdcheck.errors import EnvironmentProblem, TdcheckError
from tdcheck.reports.result import SCHEMA_VERSION, to_jsonable


@dataclass
class CaseResult:
    """One configuration of the grid: its verdict, or the error it raised."""

    index: int
    name: str
    config: dict[str, Any]
    status: str  # "passed", "failed" or "errored"
    seconds: float
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""
    error: str | None = None
    power: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "config": self.config,
            "seconds": round(self.seconds, 4),
            "verdict": self.verdict,
            "error": self.error,
            "comparisons": self.comparisons,
            "power": self.power,
        }


@dataclass
class SweepResult:
    """Every case run so far; true when each one passed."""

    cases: list[CaseResult]
    grid_size: int
    shard: tuple[int, int] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    stopped_early: bool = False

    def __bool__(self) -> bool:
        return self.passed

    @property
    def summary(self) -> dict[str, int]:
        return summarize([c.status for c in self.cases])

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases) and not self.interrupted

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "sweep",
                "passed": self.passed,
                "summary": self.summary,
                "grid_size": self.grid_size,
                "shard": list(self.shard) if self.shard else None,
                "interrupted": self.interrupted,
                "stopped_early": self.stopped_early,
                "environment": self.environment,
                "cases": [c.to_dict() for c in self.cases],
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def summarize(statuses: list[str]) -> dict[str, int]:
    return {
        "total": len(statuses),
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "errored": statuses.count("errored"),
    }


def run_sweep(
    cases: list[tuple[int, CompareConfig]],
    *,
    grid_size: int,
    shard: tuple[int, int] | None = None,
    fail_fast: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
) -> SweepResult:
    """Run ``(grid index, config)`` cases in order; see the module docstring."""
    from tdcheck.commands.compare import Session, prepare
    from tdcheck.engines.tensorflow import error_text

    session = Session()
    result = SweepResult(cases=[], grid_size=grid_size, shard=shard)
    try:
        for index, cfg in cases:
            start = time.perf_counter()
            try:
                resolved, x = prepare(cfg)
                run = session.run(resolved, x)
            except EnvironmentProblem:
                raise  # no case can run: exit 3, not N errored cases
            except TdcheckError as exc:
                case = CaseResult(index, _safe_name(cfg), cfg.to_dict(), "errored",
                                  time.perf_counter() - start, error=exc.message)  # fmt: skip
            except Exception as exc:  # TensorFlow failing on this case
                case = CaseResult(index, _safe_name(cfg), cfg.to_dict(), "errored",
                                  time.perf_counter() - start, error=error_text(exc))  # fmt: skip
            else:
                if not result.environment:
                    result.environment = run.environment
                case = CaseResult(
                    index, case_name(resolved), run.config,
                    "passed" if run.passed else "failed", time.perf_counter() - start,
                    comparisons=[c.to_dict() for c in run.comparisons], verdict=run.verdict(),
                    power=run.power,
                )  # fmt: skip
            result.cases.append(case)
            if on_case is not None:
                on_case(case)
            if fail_fast and not case.passed:
                result.stopped_early = len(result.cases) < len(cases)
                break
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def _safe_name(cfg: CompareConfig) -> str:
    """A name for a case that failed before its sizes were resolved."""
    return case_name(cfg.resolve_sizes(None))
