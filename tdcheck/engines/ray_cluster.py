"""Ray, for ``tdcheck sweep --executor ray``: joining or starting a cluster, the actor class,
and the few calls the pool makes (:mod:`tdcheck.runners.ray_executor`). The only module of
tdcheck that imports Ray; it is imported only when ``--executor ray`` runs.

* :func:`cluster` starts a local Ray instance of ``--workers N`` CPUs, or joins a cluster
  (``--ray-address ADDR``, ``auto`` or ``$RAY_ADDRESS``) within a bounded time: an address
  nobody answers on is exit 3, one line, never a hang. Ray's own output is kept off tdcheck's
  streams (:func:`native_stderr_aside`, and the driver's stdout prints turned off).
* :class:`CaseActor` is one Ray worker process. It builds its runner once (``make_runner``, a
  class of the caller passed by reference, e.g. the sweep's runner holding an engine and its
  model cache) and reuses it for every case it is given. A case travels as JSON text and its
  result comes back as JSON text: nothing built from the user's input is pickled.
* :func:`start`, :func:`submit`, :func:`ready`, :func:`result` (raising :class:`WorkerDied`
  with a one-line reason when the actor's process died), :func:`cancel`, :func:`kill`.
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
from dataclasses import dataclass
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


class WorkerDied(Exception):
    """The actor's process died while it ran a request (killed, out of memory, node lost)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def start(make_runner: Callable[[], Callable[[str], str]], gpu: bool) -> tuple[Any, Any]:
    """A new actor (one CPU, and one GPU when ``gpu``; never restarted by Ray: the pool
    replaces it) and the reference of its :meth:`CaseActor.identity`."""
    remote = ray.remote(CaseActor).options(
        num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=0, max_task_retries=0
    )
    handle: Any = remote.remote(make_runner)
    return handle, handle.identity.remote()


def submit(handle: Any, request: str) -> Any:
    """Hand ``request`` (JSON text) to the actor; the reference of its reply."""
    return handle.run.remote(request)


def ready(refs: list[Any], timeout: float | None) -> list[Any]:
    """The references of ``refs`` that are done, waiting up to ``timeout`` s for one."""
    if not refs:
        return []
    done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
    return list(done)


def result(ref: Any) -> str:
    """The reply of a done reference; :class:`WorkerDied` when its actor's process died."""
    try:
        return str(ray.get(ref))
    except (RayActorError, WorkerCrashedError) as exc:
        raise WorkerDied(death_reason(exc)) from None


def cancel(ref: Any) -> None:
    with contextlib.suppress(Exception):
        ray.cancel(ref, force=False)


def kill(handle: Any) -> None:
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


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
