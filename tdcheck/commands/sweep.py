"""``tdcheck sweep``: plan a grid of configurations, run it in one process, collect verdicts.

:func:`plan_sweep` does everything that needs no TensorFlow: it expands the grid, resolves and
checks every selected case as ``compare`` would before loading TensorFlow (a bad value is exit
2 for the whole sweep, not an errored case later), names the cases, applies ``-k`` and
``--shard``, and computes the grid's fingerprint (see :func:`tdcheck.core.grid.fingerprint`).

:func:`run_sweep` imports TensorFlow once and builds a model once for every configuration that
differs only in batch size, sequence length or input (see
:class:`tdcheck.commands.session.Session`). A case that raises is recorded as errored and the
sweep goes on; ``fail_fast`` stops at the first case that fails or errors; Ctrl-C stops the
sweep and keeps what was done (``interrupted``). Cases that did not run are listed in
``not_run`` with the reason, so reports and JUnit show them.

The result serialises to the JSON document of ``tdcheck sweep --format json``::

    {"passed", "summary": {"total", "passed", "failed", "errored", "not_run"},
     "fingerprint", "plan", "cases": [...], "not_run": [...], ...}
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tdcheck.core import grid
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError, EnvironmentProblem, TdcheckError

#: Case statuses; a case of the plan that never ran is in ``not_run`` instead.
STATUSES = ("passed", "failed", "errored")


@dataclass(frozen=True)
class PlannedCase:
    """One case of the selection: its grid index, name, shard and configurations."""

    index: int
    name: str
    shard: int
    config: CompareConfig  # as the grid gives it (sizes may be left to the input file)
    resolved: CompareConfig  # sizes filled in and checked

    @property
    def reproduce(self) -> str:
        return grid.reproduce_command(self.config)


@dataclass
class SweepPlan:
    """The selected cases of a grid (all shards), this run's shard and the fingerprint."""

    grid_size: int
    selection: list[PlannedCase]
    shard: tuple[int, int] | None
    fingerprint: dict[str, Any]

    @property
    def cases(self) -> list[PlannedCase]:
        """The cases this run owns: its shard of the selection."""
        if self.shard is None:
            return list(self.selection)
        return [c for c in self.selection if c.shard == self.shard[0]]

    def plan_dict(self) -> dict[str, Any]:
        """The whole selection, so a merge can name what is missing."""
        return {
            "indices": [c.index for c in self.selection],
            "names": [c.name for c in self.selection],
        }


def plan_sweep(
    lists: dict[str, Any],
    base: CompareConfig,
    *,
    select: str | None = None,
    shard: tuple[int, int] | None = None,
    max_cases: int = grid.DEFAULT_MAX_CASES,
) -> SweepPlan:
    """Expand, resolve, check, name, select and shard; raises :class:`ConfigError` (exit 2)."""
    axes = grid.axis_values(lists, base)
    configs = grid.expand_axes(axes, base, max_cases)
    predicate = grid.parse_selection(select) if select is not None else None
    shape, digest = _input_shape(configs[0].input)
    varying = grid.varying_axes(axes)
    selected: list[tuple[int, str, CompareConfig, CompareConfig]] = []
    for index, cfg in enumerate(configs):
        resolved = cfg.resolve_sizes(shape)
        name = grid.case_name(resolved, varying)
        if predicate is None or predicate(name):
            selected.append((index, name, cfg, resolved))
    if not selected:
        raise ConfigError(f"-k: {select!r} selects none of the {len(configs)} cases")
    n = shard[1] if shard else 1
    selection = []
    for position, (index, name, cfg, resolved) in enumerate(selected):
        try:
            resolved = grid.resolve(resolved, shape)
        except ConfigError as exc:
            raise ConfigError(f"case {name}: {exc.message}") from None
        selection.append(PlannedCase(index, name, grid.shard_of(position, n), cfg, resolved))
    names = [c.name for c in selection]
    if len(set(names)) != len(names):  # cannot happen: a name holds every varying axis
        raise AssertionError("two cases of the grid have the same name")
    fp = grid.fingerprint(axes, base, select=select, shards=n, input_digest=digest)
    return SweepPlan(len(configs), selection, shard, fp)


def _input_shape(path: str) -> tuple[tuple[int, ...] | None, str | None]:
    """The input file's shape and SHA-256 (``None, None`` for ``ones``/``random``)."""
    if path in ("ones", "random"):
        return None, None
    from tdcheck.core.inputs import load_npy

    array = load_npy(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return tuple(array.shape), digest.hexdigest()


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
    reproduce: str | None = None
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
            "reproduce": self.reproduce,
            "comparisons": self.comparisons,
            "power": self.power,
        }


@dataclass
class SweepResult:
    """Every case run so far; true when each one passed and none is left out."""

    cases: list[CaseResult]
    grid_size: int
    shard: tuple[int, int] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    stopped_early: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    not_run: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def summary(self) -> dict[str, int]:
        return summarize([c.status for c in self.cases], len(self.not_run))

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases) and not self.interrupted and not self.not_run

    def to_dict(self) -> dict[str, Any]:
        # Imported here: planning a sweep (and --list) needs no NumPy.
        from tdcheck.core.result import SCHEMA_VERSION, to_jsonable

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
                "fingerprint": self.fingerprint,
                "plan": self.plan,
                "environment": self.environment,
                "cases": [c.to_dict() for c in self.cases],
                "not_run": self.not_run,
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def start(cls, plan: SweepPlan) -> SweepResult:
        """An empty result for ``plan`` (what an interrupt before the first case leaves)."""
        return cls(cases=[], grid_size=plan.grid_size, shard=plan.shard,
                   fingerprint=plan.fingerprint, plan=plan.plan_dict())  # fmt: skip

    def mark_not_run(self, todo: list[PlannedCase]) -> None:
        """List the cases of ``todo`` without a result in ``not_run``, with the reason."""
        done = {c.index for c in self.cases}
        reason = (
            "not run: the sweep was interrupted" if self.interrupted
            else "not run: the sweep stopped at the first failure (--fail-fast)"
        )  # fmt: skip
        self.not_run = [
            {"index": c.index, "name": c.name, "shard": c.shard, "reason": reason}
            for c in todo
            if c.index not in done
        ]


def summarize(statuses: list[str], not_run: int = 0) -> dict[str, int]:
    return {
        "total": len(statuses),
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "errored": statuses.count("errored"),
        "not_run": not_run,
    }


def run_sweep(
    plan: SweepPlan,
    *,
    fail_fast: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
) -> SweepResult:
    """Run this shard's cases of ``plan`` in order; see the module docstring."""
    result = SweepResult.start(plan)
    todo = plan.cases
    if not todo:  # more shards than selected cases: nothing to load TensorFlow for
        return result
    from tdcheck.commands.backends import EngineRunner, merge_environment

    session = EngineRunner()  # one engine per backend of the grid, reused across cases
    try:  # Ctrl-C while TensorFlow loads leaves the same report: interrupted, all not run
        from tdcheck.commands.compare import prepare
        from tdcheck.engines.tensorflow import error_text

        for planned in todo:
            start = time.perf_counter()
            base = (planned.index, planned.name, planned.resolved.to_dict())
            try:
                resolved, x = prepare(planned.resolved)
                run = session.run(resolved, x)
            except EnvironmentProblem:
                raise  # no case can run: exit 3, not N errored cases
            except TdcheckError as exc:
                case = CaseResult(*base, "errored", time.perf_counter() - start,
                                  error=exc.message)  # fmt: skip
            except Exception as exc:  # TensorFlow failing on this case
                case = CaseResult(*base, "errored", time.perf_counter() - start,
                                  error=error_text(exc))  # fmt: skip
            else:
                merge_environment(result.environment, run.environment)
                case = CaseResult(
                    planned.index, planned.name, run.config,
                    "passed" if run.passed else "failed", time.perf_counter() - start,
                    comparisons=[c.to_dict() for c in run.comparisons], verdict=run.verdict(),
                    power=run.power,
                )  # fmt: skip
            if not case.passed:
                case.reproduce = planned.reproduce
            result.cases.append(case)
            if on_case is not None:
                on_case(case)
            if fail_fast and not case.passed:
                result.stopped_early = len(result.cases) < len(todo)
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        session.close()
    result.mark_not_run(todo)
    return result
