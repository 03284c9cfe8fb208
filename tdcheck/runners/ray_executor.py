"""Cases on Ray actors: what ``tdcheck sweep --executor ray`` runs on (the only module that
imports Ray, and only when that option is given).

* :func:`cluster` starts a local Ray instance of ``--workers N`` CPUs, or joins a cluster
  (``--ray-address ADDR``, ``auto`` or ``$RAY_ADDRESS``) within a bounded time: an address
  nobody answers on is exit 3, one line, never a hang.
* :class:`CaseActor` is one Ray worker process. It builds its runner once (``make_runner``, a
  function of the caller's module passed by reference, e.g. the sweep's runner holding an
  engine and its model cache) and reuses it for every case it is given. A case travels as
  JSON text (its configuration) and its result comes back as JSON text: nothing built from
  the user's input is pickled either way.
* :class:`RayPool` hands cases to idle actors, as ``ray.util.ActorPool`` does, and adds what
  a sweep needs: an actor that dies mid-case (killed, out of memory) is replaced and its case
  runs once more on another worker, then is reported with the reason; :meth:`RayPool.close`
  kills the actors (an interrupt, ``--fail-fast``); every worker's state is reported as it
  changes (the progress line).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tdcheck.errors import EnvironmentProblem

# Quiet before Ray is imported: no usage-stats prompt or report.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray.exceptions import RayActorError, WorkerCrashedError

#: Seconds to reach and join a cluster (``$TDCHECK_RAY_TIMEOUT`` overrides). Starting a
#: local instance has no such bound (about 16 s on two busy cores); Ctrl-C stops it.
CONNECT_TIMEOUT = 30.0
#: Object store of a local instance: cases send JSON text, so a small one is plenty.
LOCAL_OBJECT_STORE = 128 * 1024**2
#: How many times a case runs at most when its worker dies under it.
MAX_ATTEMPTS = 2
#: Packages whose versions each worker reports (a heterogeneous cluster is a finding).
PACKAGES = ("tdcheck", "numpy", "tensorflow", "keras", "tf_keras", "jax", "torch", "ray")


def connect_timeout() -> float:
    raw = os.environ.get("TDCHECK_RAY_TIMEOUT", "")
    try:
        return float(raw) if raw else CONNECT_TIMEOUT
    except ValueError:
        return CONNECT_TIMEOUT


def versions() -> dict[str, str | None]:
    """Python's and the packages' versions in this process (no framework is imported)."""
    from tdcheck._version import __version__

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = __version__ if name == "tdcheck" else importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def identity() -> dict[str, Any]:
    """This process: host, pid, versions."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "versions": versions()}


# -- joining or starting a cluster -----------------------------------------------------------


@dataclass
class Cluster:
    """The Ray instance this sweep runs on: its address, whether tdcheck started it, and its
    CPUs and GPUs."""

    address: str | None
    started: bool
    cpus: int
    gpus: int

    def describe(self) -> str:
        where = "a local Ray instance"
        if self.address is not None:
            where = f"the Ray cluster at {self.address}"
        return f"{where} ({self.cpus} CPU, {self.gpus} GPU)"


def _probe(address: str, timeout: float) -> None:
    """Refuse an address nothing listens on, at once (Ray itself would retry for minutes)."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "6379")
    try:
        number = int(port)
    except ValueError:
        raise EnvironmentProblem(f"--ray-address: {address!r} is not HOST:PORT") from None
    try:
        with socket.create_connection((host.strip("[]"), number), timeout=min(timeout, 10.0)):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__.replace("Error", " error").lower()
        raise EnvironmentProblem(f"cannot reach the Ray cluster at {address}: {why}") from None


@contextlib.contextmanager
def native_stderr_aside() -> Iterator[None]:
    """Send what Ray's C++ core and the processes it starts write on file descriptor 2 to a
    temporary file for the block (Python's ``sys.stderr``, our messages and progress, still
    reaches the terminal), so the sweep's streams stay clean. ``TDCHECK_DEBUG=1`` keeps it."""
    import tempfile

    if os.environ.get("TDCHECK_DEBUG", "") not in ("", "0"):
        yield
        return
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test's captured stream
        real = False
    sys.stderr.flush()
    saved = os.dup(2)
    previous = sys.stderr
    if real:  # Python's stderr goes on to the terminal through a copy of the descriptor
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=previous.encoding,
                               errors="backslashreplace")  # fmt: skip
    log = tempfile.NamedTemporaryFile(prefix="tdcheck-ray-", suffix=".log")  # noqa: SIM115
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if real:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.close()
            sys.stderr = previous
        log.close()


@contextlib.contextmanager
def cluster(address: str | None, workers: int) -> Iterator[Cluster]:
    """Connect for the block: reuse an initialised Ray, join ``address`` (or ``$RAY_ADDRESS``),
    or start a local instance of ``workers`` CPUs; disconnect (and stop what was started) at
    the end. Raises :class:`EnvironmentProblem` (exit 3) when the cluster cannot be joined."""
    with _driver_prints_off():
        if ray.is_initialized():  # a test's instance, or a program running tdcheck in-process
            yield _describe(None, started=False)
            return
        with _connected(address, workers) as joined:
            yield joined


@contextlib.contextmanager
def _driver_prints_off() -> Iterator[None]:
    """Ray's driver prints the cluster's error messages ("(raylet) A worker died ...") on
    *stdout*, even with ``log_to_driver=False``: that would corrupt the report (JSON on
    stdout). tdcheck reports a dead worker itself, so they are turned off for the block, by
    the switch Ray's own debugger (``ray.util.rpdb``) uses."""
    from ray._private import worker as ray_worker

    previous = getattr(ray_worker, "_worker_logs_enabled", True)
    ray_worker._worker_logs_enabled = False
    try:
        yield
    finally:
        ray_worker._worker_logs_enabled = previous


@contextlib.contextmanager
def _connected(address: str | None, workers: int) -> Iterator[Cluster]:
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
        "configure_logging": True,
    }  # fmt: skip
    logging.getLogger("ray").setLevel(logging.ERROR)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address:
            _join(address, kwargs)
        else:  # in this thread: Ray's processes end when the thread that started them does
            try:
                ray.init(num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE, **kwargs)
            except Exception as exc:
                raise EnvironmentProblem(
                    f"cannot start a local Ray instance: {_first(exc)}"
                ) from None
    finally:
        for s, handler in handlers.items():  # ray.init sets its own SIGTERM handler (sys.exit)
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(s, handler)
    try:
        yield _describe(address, started=True)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _join(address: str, kwargs: dict[str, Any]) -> None:
    """``ray.init(address)`` within :func:`connect_timeout` seconds (Ray alone may wait for
    minutes on an address that accepts connections but does not answer)."""
    timeout = connect_timeout()
    if address != "auto":
        _probe(address, timeout)
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(address=address, **kwargs)
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=init, name="tdcheck-ray-init", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.1)  # short joins: Ctrl-C stays responsive
    if thread.is_alive():
        raise EnvironmentProblem(
            f"the Ray cluster at {address} did not answer within {timeout:g} s"
        )
    if failure:
        raise EnvironmentProblem(f"cannot join the Ray cluster at {address}: {_first(failure[0])}")


def _describe(address: str | None, *, started: bool) -> Cluster:
    resources = ray.cluster_resources()
    return Cluster(address, started, int(resources.get("CPU", 0)), int(resources.get("GPU", 0)))


# -- the actors ------------------------------------------------------------------------------


class CaseActor:
    """One worker: a runner built once, then one JSON request in, one JSON reply out."""

    def __init__(self, make_runner: Callable[[], Callable[[str], str]]) -> None:
        self._make_runner = make_runner
        self._runner: Callable[[str], str] | None = None
        self._identity = identity()

    def identity(self) -> str:
        return json.dumps(self._identity)

    def run(self, request: str) -> str:
        if self._runner is None:
            self._runner = self._make_runner()
        return self._runner(request)


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

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.label,
            "host": self.identity.get("host"),
            "pid": self.identity.get("pid"),
            "versions": self.identity.get("versions"),
        }


def death_reason(exc: BaseException) -> str:
    """A short, honest reason from Ray's long actor-death message: its exit detail (first
    sentence) and exit type, or that it was killed for memory.

    >>> death_reason(Exception("The actor died unexpectedly before finishing this task.\\n"
    ...     "\\tpid: 7\\nThe actor is dead because its worker process has died. Worker exit type: "
    ...     "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error "
    ...     "code 2. End of file. Some common causes include: (1) the OOM killer, ..."))
    'Worker unexpectedly exits with a connection error code 2 (exit type SYSTEM_ERROR)'
    """
    text = " ".join(str(exc).split())
    lowered = text.lower()
    memory = any(m in lowered for m in ("node_out_of_memory", "outofmemoryerror",
                                        "running low on memory"))  # fmt: skip
    match = re.search(r"worker exit detail: (.*?)(?:\. |\.?$)", text, re.IGNORECASE)
    kind = re.search(r"worker exit type: (\w+)", text, re.IGNORECASE)
    if match:
        reason = match.group(1)[:200] + (f" (exit type {kind.group(1)})" if kind else "")
    else:
        reason = (text.split(". ")[0] or type(exc).__name__)[:200]
    return f"killed for memory (out of memory): {reason}" if memory else reason


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
        self.identities: dict[str, dict[str, Any]] = {}  # every worker that ever answered

    # -- actors --------------------------------------------------------------------------

    def _start(self, gpu: bool) -> _Slot:
        self._count += 1
        remote = ray.remote(CaseActor).options(
            num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=0, max_task_retries=0
        )
        handle: Any = remote.remote(self._make_runner)
        slot = _Slot(f"w{self._count}", gpu, handle, handle.identity.remote())
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

    def _note_identity(self, slot: _Slot, wait: bool = False) -> None:
        if slot.identity:
            return
        ready, _ = ray.wait([slot.identity_ref], timeout=None if wait else 0)
        if ready:
            with contextlib.suppress(RayActorError, WorkerCrashedError):
                slot.identity = json.loads(ray.get(slot.identity_ref))
                self.identities[slot.label] = slot.identity

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
            self._dispatch(pending, attempts)
            if not self._inflight:  # jobs no actor of the pool can take (no GPU for them)
                for job in pending:
                    yield Done(job.key, None, "no worker of the cluster can run it", {"id": None})
                return
            waiting = list(self._inflight) + [s.identity_ref for s in self._slots if not s.identity]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=0.5)
            for slot in self._slots:
                self._note_identity(slot)
            for ref in ready:
                owner = self._inflight.pop(ref, None)
                if owner is None:  # an identity arrived
                    continue
                finished, owner.job = owner.job, None
                assert finished is not None
                seconds = time.perf_counter() - owner.since
                try:
                    reply = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    reason = f"worker {self._who(owner)} died mid-case: {death_reason(exc)}"
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
                self._note_identity(owner, wait=True)
                yield Done(finished.key, reply, None, owner.describe(), attempts[finished.key],
                           retried.get(finished.key), seconds)  # fmt: skip
            self._report_state()

    def _who(self, slot: _Slot) -> str:
        self._note_identity(slot)  # a worker that died mid-case had answered who it is
        if not slot.identity:
            return slot.label
        return f"{slot.label} (pid {slot.identity['pid']} on {slot.identity['host']})"

    def _dispatch(self, pending: list[Job], attempts: dict[int, int]) -> None:
        """Give each idle actor a job of its kind, preferring one whose engine it has."""
        for slot in self._slots:
            if slot.job is not None or not pending:
                continue
            mine = [j for j in pending if j.gpu == slot.gpu]
            if not mine:
                continue
            chosen = next((j for j in mine if j.engine in slot.engines), mine[0])
            pending.remove(chosen)
            attempts[chosen.key] += 1
            slot.job = chosen
            slot.since = time.perf_counter()
            handle: Any = slot.handle
            self._inflight[handle.run.remote(chosen.request)] = slot

    def _replace(self, slot: _Slot) -> None:
        """Drop a dead actor; a new one takes its place when jobs are left for it."""
        with contextlib.suppress(Exception):
            ray.kill(slot.handle, no_restart=True)
        self._slots.remove(slot)

    def close(self) -> None:
        """Cancel what runs and kill every actor (an interrupt, ``--fail-fast``, the end)."""
        for ref in list(self._inflight):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        for slot in self._slots:
            with contextlib.suppress(Exception):
                ray.kill(slot.handle, no_restart=True)
        self._inflight.clear()
        self._slots.clear()
