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
import os
import time
from array import array
from collections.abc import Callable, Sequence
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
    """The selected cases of a grid (all shards), this run's shard and the fingerprint.

    Planning is lazy: the grid is a :class:`~tdcheck.core.grid.GridSpace` (cases decoded
    from their index), ``selected`` holds the grid indices of the selection (a ``range``
    without ``-k``), and only this run's cases (:attr:`cases`) are built and checked.
    """

    grid_size: int
    space: grid.GridSpace
    selected: Sequence[int]
    shard: tuple[int, int] | None
    fingerprint: dict[str, Any]
    cases: list[PlannedCase]  # the cases this run owns: its shard of the selection

    @property
    def selection(self) -> list[PlannedCase]:
        """Every selected case of every shard, built (small grids; tests)."""
        n = self.shard[1] if self.shard else 1
        return [
            _planned(self.space, index, grid.shard_of(position, n))
            for position, index in enumerate(self.selected)
        ]

    def plan_dict(self) -> dict[str, Any]:
        """The whole selection, so a merge can name what is missing."""
        return {
            "indices": list(self.selected),
            "names": [self.space.name(i) for i in self.selected],
        }


def plan_sweep(
    lists: dict[str, Any],
    base: CompareConfig,
    *,
    select: str | None = None,
    shard: tuple[int, int] | None = None,
    max_cases: int = grid.DEFAULT_MAX_CASES,
) -> SweepPlan:
    """Normalise the axes, select (``-k``, by name) and shard the grid, then build, resolve
    and check this run's cases as ``compare`` would before loading TensorFlow; raises
    :class:`ConfigError` (exit 2). Cases of other shards are named, never built."""
    axes = grid.axis_values(lists, base)
    shape, digest = _input_shape(base.input)
    if shape is not None:
        for position, axis in enumerate(("batch", "seq", "features")):
            for value in axes[axis]:
                if value is not None and value != shape[position]:
                    raise ConfigError(
                        f"--{axis} {value} disagrees with the input file {base.input!r}, "
                        f"whose shape (batch, seq, features) is {shape}"
                    )
    space = grid.GridSpace(axes, base, max_cases=max_cases, input_shape=shape)
    selected: Sequence[int] = range(len(space))
    if select is not None:
        predicate = grid.parse_selection(select)
        selected = array("q", (i for i in range(len(space)) if predicate(space.name(i))))
        if not selected:
            raise ConfigError(f"-k: {select!r} selects none of the {len(space)} cases")
    k, n = shard or (1, 1)
    cases = [
        _planned(space, index, k) for index in selected[k - 1 :: n]
    ]  # position i of the selection belongs to shard i % n + 1
    fp = grid.fingerprint(axes, base, select=select, shards=n, input_digest=digest)
    return SweepPlan(len(space), space, selected, shard, fp, cases)


def _planned(space: grid.GridSpace, index: int, shard: int) -> PlannedCase:
    """Build, validate and resolve case ``index`` (exit 2 naming the case)."""
    name = space.name(index)
    try:
        cfg = space.config(index).validated()
        resolved = grid.resolve(cfg.resolve_sizes(space.input_shape), space.input_shape)
    except ConfigError as exc:
        raise ConfigError(f"case {name}: {exc.message}") from None
    return PlannedCase(index, name, shard, cfg, resolved)


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
    #: ``--executor ray``: the worker that ran it (id, host, pid; versions differing from
    #: the driver's; attempts and why, when its first worker died). Absent from local reports.
    worker: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CaseResult:
        """The inverse of :meth:`to_dict` (how a case comes back from a Ray worker)."""
        return cls(
            doc["index"], doc["name"], doc["config"], doc["status"], doc["seconds"],
            comparisons=doc["comparisons"], verdict=doc["verdict"], error=doc["error"],
            reproduce=doc["reproduce"], power=doc["power"], worker=doc.get("worker"),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        doc = {
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
        if self.worker is not None:
            doc["worker"] = self.worker
        return doc


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
    #: ``--executor ray``: the cluster, the driver, the workers, findings (see
    #: :func:`run_on_ray`). Absent from local reports.
    executor: dict[str, Any] | None = None

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

        doc = to_jsonable(
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
        if self.executor is not None:
            doc["executor"] = to_jsonable(self.executor)
        return dict(doc)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def start(cls, plan: SweepPlan) -> SweepResult:
        """An empty result for ``plan`` (what an interrupt before the first case leaves)."""
        return cls(cases=[], grid_size=plan.grid_size, shard=plan.shard,
                   fingerprint=plan.fingerprint, plan=plan.plan_dict())  # fmt: skip

    def mark_not_run(self, todo: Sequence[PlannedCase]) -> None:
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


@dataclass(frozen=True)
class RayOptions:
    """``--executor ray``: the cluster to join (None: a local instance, or ``$RAY_ADDRESS``)
    and the number of workers (None: the local CPU count, or the cluster's CPUs)."""

    address: str | None = None
    workers: int | None = None


def run_sweep(
    plan: SweepPlan,
    *,
    fail_fast: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
    ray: RayOptions | None = None,
    on_workers: Callable[[dict[str, str]], None] | None = None,
) -> SweepResult:
    """Run this shard's cases of ``plan``: in order in this process, or on Ray actors when
    ``ray`` is given (:func:`run_on_ray`); see the module docstring."""
    if ray is not None:
        return run_on_ray(plan, ray, fail_fast=fail_fast, on_case=on_case, on_workers=on_workers)
    result = SweepResult.start(plan)
    todo = plan.cases
    if not todo:  # more shards than selected cases: nothing to load TensorFlow for
        return result
    from tdcheck.commands.backends import EngineRunner

    session = EngineRunner()  # one engine per backend of the grid, reused across cases
    try:  # Ctrl-C while TensorFlow loads leaves the same report: interrupted, all not run
        for planned in todo:
            case, environment = run_case(session, planned.index, planned.name,
                                         planned.resolved, planned.reproduce)  # fmt: skip
            if _record(result, case, environment, on_case, fail_fast, len(todo)):
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        session.close()
    result.mark_not_run(todo)
    return result


def _record(
    result: SweepResult, case: CaseResult, environment: dict[str, Any] | None,
    on_case: Callable[[CaseResult], None] | None, fail_fast: bool, planned: int,
) -> bool:  # fmt: skip
    """Add one finished case (whichever executor ran it); True when ``--fail-fast`` stops."""
    if environment:
        from tdcheck.commands.backends import merge_environment

        merge_environment(result.environment, environment)
    result.cases.append(case)
    if on_case is not None:
        on_case(case)
    if fail_fast and not case.passed:
        result.stopped_early = len(result.cases) < planned
        return True
    return False


def run_case(
    session: Any, index: int, name: str, resolved: CompareConfig, reproduce: str
) -> tuple[CaseResult, dict[str, Any]]:
    """Run one case on ``session`` (an :class:`~tdcheck.commands.backends.EngineRunner`):
    its result and the environment it ran in (empty when it errored). Raises
    :class:`EnvironmentProblem`: no case could run (exit 3, not N errored cases)."""
    from tdcheck.commands.compare import prepare
    from tdcheck.errors import error_text

    start = time.perf_counter()
    base = (index, name, resolved.to_dict())
    environment: dict[str, Any] = {}
    try:
        cfg, x = prepare(resolved)
        run = session.run(cfg, x)
    except EnvironmentProblem:
        raise
    except TdcheckError as exc:
        case = CaseResult(*base, "errored", time.perf_counter() - start, error=exc.message)
    except Exception as exc:  # TensorFlow failing on this case
        case = CaseResult(*base, "errored", time.perf_counter() - start, error=error_text(exc))
    else:
        environment = run.environment
        case = CaseResult(
            index, name, run.config, "passed" if run.passed else "failed",
            time.perf_counter() - start, comparisons=[c.to_dict() for c in run.comparisons],
            verdict=run.verdict(), power=run.power,
        )  # fmt: skip
    if not case.passed:
        case.reproduce = reproduce
    return case, environment


# -- on Ray ---------------------------------------------------------------------------------


class RayCaseRunner:
    """What each Ray actor holds (:class:`tdcheck.runners.ray_executor.CaseActor`): one
    :class:`~tdcheck.commands.backends.EngineRunner`, its engine and model cache reused for
    every case the actor gets. A request is JSON text, ``{"index", "name", "config",
    "reproduce"}``; the reply is JSON text, ``{"case": {...}, "environment": {...}}`` or
    ``{"environment_problem": TEXT}``."""

    def __init__(self) -> None:
        from tdcheck.commands.backends import EngineRunner

        self.session = EngineRunner()

    def __call__(self, request: str) -> str:
        from tdcheck.runners.protocol import config_from_dict

        doc = json.loads(request)
        cfg = config_from_dict(doc["config"])
        try:
            case, environment = run_case(self.session, doc["index"], doc["name"], cfg,
                                         doc["reproduce"])  # fmt: skip
        except EnvironmentProblem as exc:
            return json.dumps({"environment_problem": exc.message})
        return json.dumps({"case": case.to_dict(), "environment": environment})


def needs_gpu(cfg: CompareConfig, cluster_gpus: int) -> bool:
    """Whether a case asks its worker for a GPU: ``--device gpu`` or ``both`` always,
    ``auto`` when the cluster has one (as ``auto`` takes this machine's GPU when there is)."""
    return cfg.device in ("gpu", "both") or (cfg.device == "auto" and cluster_gpus > 0)


def run_on_ray(
    plan: SweepPlan,
    options: RayOptions,
    *,
    fail_fast: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
    on_workers: Callable[[dict[str, str]], None] | None = None,
) -> SweepResult:
    """Run this shard's cases on Ray actors (:mod:`tdcheck.runners.ray_executor`).

    The report is the local sweep's, case for case (cases in plan order, the same
    fingerprint: the executor is not part of it), plus each case's ``worker`` (id, host,
    pid, and the versions that differ from this driver's) and the ``executor`` section
    (the cluster, every worker, and ``findings`` when the workers' versions differ).
    """
    result = SweepResult.start(plan)
    todo = plan.cases
    if not todo:
        return result
    from tdcheck.runners import ray_executor as rx

    driver = rx.identity()
    local_size = options.workers or os.cpu_count() or 1
    by_index = {c.index: c for c in todo}
    ran_by: dict[str, list[int]] = {}
    began = time.perf_counter()
    try:
        with rx.native_stderr_aside(), rx.cluster(options.address, local_size) as cluster:
            connected = time.perf_counter()
            wanting = [c.name for c in todo if c.resolved.device in ("gpu", "both")]
            if wanting and cluster.gpus == 0:
                raise EnvironmentProblem(
                    f"{len(wanting)} case(s) need a GPU (--device gpu or both; e.g. "
                    f"{wanting[0]}) and {cluster.describe()} has none"
                )
            workers = options.workers or max(1, cluster.cpus)
            jobs = [
                rx.Job(c.index, c.name, json.dumps({"index": c.index, "name": c.name,
                       "config": c.resolved.to_dict(), "reproduce": c.reproduce}),
                       engine=c.resolved.engine, gpu=needs_gpu(c.resolved, cluster.gpus))
                for c in todo
            ]  # fmt: skip
            pool = rx.RayPool(RayCaseRunner, min(workers, len(jobs)), gpus=cluster.gpus,
                              on_state=on_workers)  # fmt: skip
            try:
                for done in pool.run(jobs):
                    case, environment = _case_from(done, by_index[done.key], driver)
                    ran_by.setdefault(done.worker["id"], []).append(done.key)
                    if _record(result, case, environment, on_case, fail_fast, len(todo)):
                        break
            finally:
                pool.close()  # cancels pending cases, kills the actors
            result.executor = _executor_section(cluster.describe(), driver, pool.identities,
                                                ran_by)  # fmt: skip
            result.executor["workers_requested"] = min(workers, len(jobs))
            result.executor["seconds"] = {  # joining or starting Ray; the cases, start to end
                "connect": round(connected - began, 3),
                "cases": round(time.perf_counter() - connected, 3),
            }
    except KeyboardInterrupt:
        result.interrupted = True
    result.cases.sort(key=lambda c: c.index)
    result.mark_not_run(todo)
    return result


def _case_from(
    done: Any, planned: PlannedCase, driver: dict[str, Any]
) -> tuple[CaseResult, dict[str, Any]]:
    """The :class:`CaseResult` of a finished Ray job, with its worker (raises the worker's
    :class:`EnvironmentProblem`, as the local sweep does)."""
    worker = {k: v for k, v in done.worker.items() if k != "versions"}
    differing = version_differences(done.worker.get("versions") or {}, driver["versions"])
    if differing:  # this worker runs other versions than the driver: say which
        worker["versions"] = differing
    if done.retried:
        worker["attempts"] = done.attempts
        worker["retried"] = done.retried
    environment: dict[str, Any] = {}
    if done.reply is None:
        case = CaseResult(planned.index, planned.name, planned.resolved.to_dict(), "errored",
                          done.seconds, error=done.error, reproduce=planned.reproduce)  # fmt: skip
    else:
        doc = json.loads(done.reply)
        if "environment_problem" in doc:
            raise EnvironmentProblem(f"worker {worker['id']} ({worker.get('host')}): "
                                     f"{doc['environment_problem']}")  # fmt: skip
        case = CaseResult.from_dict(doc["case"])
        environment = doc["environment"]
    case.worker = worker
    return case, environment


def version_differences(versions: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """``{package: version}`` of ``versions`` that differ from ``reference``'s."""
    return {k: v for k, v in versions.items() if reference.get(k) != v}


def _executor_section(
    where: str, driver: dict[str, Any], workers: dict[str, dict[str, Any]],
    ran_by: dict[str, list[int]],
) -> dict[str, Any]:  # fmt: skip
    """The report's ``executor``: the cluster, the driver, every worker (with the versions
    that differ from the driver's and the cases it ran) and the findings."""
    listed = {}
    for label, ident in sorted(workers.items(), key=lambda kv: int(kv[0][1:])):
        listed[label] = {
            "host": ident.get("host"), "pid": ident.get("pid"),
            "versions_differing": version_differences(ident.get("versions", {}),
                                                      driver["versions"]),
            "cases": sorted(ran_by.get(label, [])),
        }  # fmt: skip
    findings = []
    sets = {json.dumps(i.get("versions", {}), sort_keys=True) for i in workers.values()}
    if len(sets) > 1:
        parts = []
        for label, ident in sorted(workers.items(), key=lambda kv: int(kv[0][1:])):
            v = ident.get("versions", {})
            shown = ", ".join(
                f"{k} {v.get(k)}"
                for k in sorted(v)
                if any((o.get("versions", {}).get(k) != v.get(k)) for o in workers.values())
            )
            cases = ", ".join(str(i) for i in sorted(ran_by.get(label, []))) or "none"
            parts.append(
                f"{label} on {ident.get('host')} (pid {ident.get('pid')}: {shown}) "
                f"ran cases {cases}"
            )
        findings.append("the workers run different versions: " + "; ".join(parts))
    return {"name": "ray", "cluster": where,
            "driver": {"host": driver["host"], "pid": driver["pid"],
                       "versions": driver["versions"]},
            "workers": listed, "findings": findings}  # fmt: skip
