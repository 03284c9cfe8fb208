"""Cases on Ray actors: the pool ``tdcheck sweep --executor ray`` runs them with.

:class:`RayPool` hands cases (:class:`Job`: JSON text in) to idle actors, as
``ray.util.ActorPool`` does, and adds what a sweep needs: a free actor takes a case of an
engine it already holds first; an actor that dies mid-case (killed, out of memory) is replaced
and its case runs once more on another worker, then is reported with the reason
(:class:`Done`); :meth:`RayPool.close` cancels what runs and kills the actors (an interrupt,
``--fail-fast``, the end); every worker's state is reported as it changes (the progress line).
Ray itself is called through :mod:`tdcheck.engines.ray_cluster` (frameworks live in engines/).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tdcheck.engines import ray_cluster
from tdcheck.engines.ray_cluster import Cluster, cluster, identity, native_stderr_aside

__all__ = ["Cluster", "Done", "Job", "RayPool", "cluster", "identity", "native_stderr_aside"]

#: How many times a case runs at most when its worker dies under it.
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Job:
    """One case for the pool: its key, name (for the progress line), JSON request, the engine
    it runs on (a worker that already has it is preferred) and whether it needs a GPU."""

    key: int
    name: str
    request: str
    engine: str = "tensorflow"
    gpu: bool = False


@dataclass
class Done:
    """A job's end: the runner's JSON reply, or the error that kept it from one."""

    key: int
    reply: str | None
    error: str | None
    worker: dict[str, Any]  # id, host, pid of the worker that answered (or died last)
    attempts: int = 1
    retried: str | None = None  # why it ran more than once
    seconds: float = 0.0  # from its (last) start to its end, as the driver saw it


@dataclass
class _Slot:
    """One actor of the pool and what the driver knows of it."""

    label: str
    gpu: bool
    handle: Any
    identity_ref: Any
    identity: dict[str, Any] = field(default_factory=dict)
    engines: set[str] = field(default_factory=set)
    job: Job | None = None
    since: float = 0.0  # when its job was handed to it
    failed: str | None = None  # why it died before it answered who it is

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.label,
            "host": self.identity.get("host"),
            "pid": self.identity.get("pid"),
            "versions": self.identity.get("versions"),
        }


class RayPool:
    """Actors running :class:`Job` requests (see the module docstring).

    ``workers`` actors for CPU jobs and ``min(workers, gpus)`` for GPU jobs (each holding
    one GPU, ``num_gpus=1``) are started lazily, when jobs of their kind exist.
    """

    def __init__(
        self,
        make_runner: Callable[[], Callable[[str], str]],
        workers: int,
        *,
        gpus: int = 0,
        on_state: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self._make_runner = make_runner
        self._workers = workers
        self._gpus = gpus
        self._on_state = on_state
        self._slots: list[_Slot] = []
        self._count = 0
        self._inflight: dict[Any, _Slot] = {}
        self._start_failures: list[str] = []
        self.identities: dict[str, dict[str, Any]] = {}  # every worker that ever answered

    # -- actors --------------------------------------------------------------------------

    def _start(self, gpu: bool) -> _Slot:
        self._count += 1
        handle, identity_ref = ray_cluster.start(self._make_runner, gpu)
        slot = _Slot(f"w{self._count}", gpu, handle, identity_ref)
        self._slots.append(slot)
        return slot

    def _ensure(self, jobs: list[Job]) -> None:
        """Start the actors the pending jobs need (up to the pool's size per kind)."""
        for gpu in (False, True):
            wanted = sum(1 for j in jobs if j.gpu == gpu) + sum(
                1 for s in self._slots if s.gpu == gpu and s.job is not None
            )
            limit = min(self._workers, self._gpus) if gpu else self._workers
            have = sum(1 for s in self._slots if s.gpu == gpu)
            for _ in range(max(0, min(wanted, limit) - have)):
                self._start(gpu)

    def _note_identity(self, slot: _Slot, wait: float | None = 0) -> None:
        """Read the worker's identity when it has come (waiting up to ``wait`` seconds, None:
        until it comes); a worker that died before answering is marked ``failed``."""
        if slot.identity or slot.failed:
            return
        if ray_cluster.ready([slot.identity_ref], timeout=wait):
            try:
                slot.identity = json.loads(ray_cluster.result(slot.identity_ref))
            except ray_cluster.WorkerDied as exc:
                slot.failed = f"worker {slot.label} died as it started: {exc.reason}"
                return
            self.identities[slot.label] = slot.identity

    def _drop_failed_starts(self, pending: list[Job]) -> None:
        """Replace the workers that died before they took a case, up to the pool's size in
        all (a node that cannot start one, e.g. without tdcheck, fails every start)."""
        for slot in [s for s in self._slots if s.failed]:
            self._start_failures.append(slot.failed or "")
            self._replace(slot)
        if self._start_failures and len(self._start_failures) <= self._workers:
            self._ensure(pending)

    def states(self) -> dict[str, str]:
        return {s.label: s.job.name if s.job else ("idle" if s.identity else "starting")
                for s in self._slots}  # fmt: skip

    def _report_state(self) -> None:
        if self._on_state is not None:
            self._on_state(self.states())

    # -- running -------------------------------------------------------------------------

    def run(self, jobs: list[Job]) -> Iterator[Done]:
        """Run ``jobs``; yields each one's :class:`Done` as it finishes (in any order)."""
        pending = list(jobs)
        attempts = {job.key: 0 for job in jobs}
        retried: dict[int, str] = {}
        self._ensure(pending)
        self._report_state()
        while pending or self._inflight:
            if self._dispatch(pending, attempts):
                self._report_state()
            starting = [s for s in self._slots if not s.identity]
            if not self._inflight and not starting:  # no actor of the pool can take them
                why = self._start_failures[-1] if self._start_failures else "no GPU for it"
                for job in pending:
                    yield Done(job.key, None, f"no worker of the cluster can run it ({why})",
                               {"id": None})  # fmt: skip
                return
            waiting = list(self._inflight) + [s.identity_ref for s in starting]
            done = ray_cluster.ready(waiting, timeout=0.5)
            for slot in starting:
                self._note_identity(slot)
            self._drop_failed_starts(pending)
            for ref in done:
                owner = self._inflight.pop(ref, None)
                if owner is None:  # an identity arrived
                    continue
                finished, owner.job = owner.job, None
                assert finished is not None
                seconds = time.perf_counter() - owner.since
                try:
                    reply = ray_cluster.result(ref)
                except ray_cluster.WorkerDied as exc:
                    reason = f"worker {self._who(owner)} died mid-case: {exc.reason}"
                    self._replace(owner)
                    if attempts[finished.key] < MAX_ATTEMPTS:
                        retried[finished.key] = reason
                        pending.insert(0, finished)
                        self._ensure(pending)
                    else:
                        yield Done(finished.key, None, f"{reason} (ran {attempts[finished.key]} "
                                   "times)", owner.describe(), attempts[finished.key],
                                   retried.get(finished.key), seconds)  # fmt: skip
                    continue
                owner.engines.add(finished.engine)
                self._note_identity(owner, wait=None)
                yield Done(finished.key, reply, None, owner.describe(), attempts[finished.key],
                           retried.get(finished.key), seconds)  # fmt: skip
            self._report_state()

    def _who(self, slot: _Slot) -> str:
        # A worker that died mid-case had answered who it is (that reply may still be on
        # its way when the death is known); one that died before has an error there at once.
        self._note_identity(slot, wait=5.0)
        if not slot.identity:
            return slot.label
        return f"{slot.label} (pid {slot.identity['pid']} on {slot.identity['host']})"

    def _dispatch(self, pending: list[Job], attempts: dict[int, int]) -> bool:
        """Give each idle actor a job of its kind, preferring one whose engine it has;
        whether any was given."""
        given = False
        for slot in self._slots:
            if slot.job is not None or not slot.identity or not pending:
                continue  # busy, or still starting: a case goes to a worker known by its pid
            mine = [j for j in pending if j.gpu == slot.gpu]
            if not mine:
                continue
            chosen = next((j for j in mine if j.engine in slot.engines), mine[0])
            pending.remove(chosen)
            attempts[chosen.key] += 1
            slot.job = chosen
            slot.since = time.perf_counter()
            self._inflight[ray_cluster.submit(slot.handle, chosen.request)] = slot
            given = True
        return given

    def _replace(self, slot: _Slot) -> None:
        """Drop a dead actor; a new one takes its place when jobs are left for it."""
        ray_cluster.kill(slot.handle)
        self._slots.remove(slot)

    def close(self) -> None:
        """Cancel what runs and kill every actor (an interrupt, ``--fail-fast``, the end)."""
        for ref in list(self._inflight):
            ray_cluster.cancel(ref)
        for slot in self._slots:
            ray_cluster.kill(slot.handle)
        self._inflight.clear()
        self._slots.clear()
