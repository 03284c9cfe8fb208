"""Worker processes: one per Keras backend, since Keras picks its backend once, at import.

The parent holds a :class:`Worker`; the child runs :data:`WORKER_MODULE` (the command that
answers requests, :mod:`tdcheck.commands.worker`) with ``KERAS_BACKEND`` set, which calls
:func:`serve`. The worker reads one request per line on standard input, ``{"dir": PATH}``
(see :mod:`tdcheck.runners.protocol` for the directory's files), and answers one line,
``{"ok": true}`` or ``{"ok": false, "error": TEXT, "exit_code": N}``. Everything else the
frameworks print goes to standard error. The worker stays up for further requests (a sweep
reuses it) until standard input closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TextIO

import numpy as np

from tdcheck.core.config import CompareConfig
from tdcheck.core.result import CompareRun
from tdcheck.errors import EXIT_ENVIRONMENT, EnvironmentProblem, TdcheckError, error_text
from tdcheck.runners.protocol import read_result, save_npz

#: The module a worker process runs (``python -m``): the command that handles requests.
WORKER_MODULE = "tdcheck.commands.worker"

#: What a worker does with one request directory (given the sessions it keeps).
Handler = Callable[[Path, dict[str, Any]], None]


def debug_enabled() -> bool:
    return os.environ.get("TDCHECK_DEBUG", "") not in ("", "0")


class Worker:
    """A ``python -m tdcheck.commands.worker`` process for one engine.

    ``submit`` sends a request without waiting, so several workers run at once; ``result``
    waits for the answer. Used as a context manager it ends the process on exit.
    """

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self._tmp = tempfile.TemporaryDirectory(prefix="tdcheck-worker-")
        self._count = 0
        self._pending: Path | None = None
        self._stderr: IO[bytes] = open(Path(self._tmp.name) / "stderr.txt", "wb")  # noqa: SIM115
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "tensorflow" if engine == "keras2" else engine
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug_enabled() else self._stderr,
            env=env,
            text=True,
        )

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    def submit(
        self, cfg: CompareConfig, x: np.ndarray, weights: dict[str, np.ndarray] | None = None
    ) -> None:
        directory = self._directory({"engine": self.engine, "config": cfg.to_dict()})
        np.save(directory / "input.npy", x, allow_pickle=False)
        if weights:
            save_npz(directory / "weights.npz", weights)
        self._post(directory)

    def submit_bench(self, plan: dict[str, Any]) -> None:
        """Send a bench plan (:func:`tdcheck.commands.bench.plan_to_dict`) without waiting."""
        self._post(self._directory({"engine": self.engine, "bench": plan}))

    def submit_request(self, request: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Send any request (``request.json`` plus ``.npy`` files named after ``arrays``'
        keys) without waiting; the answer is in :meth:`reply_directory`'s files."""
        directory = self._directory({"engine": self.engine, **request})
        for name, value in arrays.items():
            np.save(directory / f"{name}.npy", value, allow_pickle=False)
        self._post(directory)

    def _directory(self, request: dict[str, Any]) -> Path:
        """A new request directory holding ``request.json``."""
        self._count += 1
        directory = Path(self._tmp.name) / f"request-{self._count}"
        directory.mkdir()
        (directory / "request.json").write_text(json.dumps(request), encoding="utf-8")
        return directory

    def _post(self, directory: Path) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"dir": str(directory)}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None
        self._pending = directory

    def result(self) -> CompareRun:
        """The finished run of the last request (raises its error, with its exit code)."""
        return read_result(self._reply())

    def bench_result(self) -> dict[str, Any]:
        """The bench report document of the last :meth:`submit_bench`."""
        return dict(json.loads((self._reply() / "result.json").read_text(encoding="utf-8")))

    def reply_directory(self) -> Path:
        """Wait for the answer to the last request; its directory (or its error raised)."""
        return self._reply()

    def _reply(self) -> Path:
        assert self._pending is not None and self._process.stdout is not None
        directory, self._pending = self._pending, None
        line = self._process.stdout.readline()
        if not line:
            raise self._died()
        reply = json.loads(line)
        if not reply.get("ok"):
            error = TdcheckError(f"{self.engine}: {reply.get('error', 'failed')}")
            error.exit_code = int(reply.get("exit_code", EXIT_ENVIRONMENT))
            raise error
        return directory

    def _died(self) -> EnvironmentProblem:
        code = self._process.wait()
        self._stderr.flush()
        tail = (Path(self._tmp.name) / "stderr.txt").read_text(errors="replace").strip()
        last = tail.splitlines()[-1][:300] if tail else "no message"
        how = f"exit {code}"
        if code < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-code).name}"
        return EnvironmentProblem(f"the {self.engine} worker ended ({how}): {last}")

    def close(self, abort: bool = False) -> None:
        """End the process. An idle worker exits when its stdin closes; one still busy with a
        request nobody will read (an interrupt, another worker's error) is terminated at once,
        and killed if it does not end within a few seconds (a hung or stopped worker)."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        busy = abort or self._pending is not None
        if busy and self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.terminate()
        try:
            self._process.wait(timeout=3 if busy else 30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
        self._tmp.cleanup()


def serve(requests: TextIO, replies: TextIO, handle: Handler) -> None:
    """Answer requests with ``handle`` until ``requests`` closes."""
    sessions: dict[str, Any] = {}
    for line in requests:
        if not line.strip():
            continue
        try:
            handle(Path(json.loads(line)["dir"]), sessions)
            reply: dict[str, Any] = {"ok": True}
        except TdcheckError as exc:
            reply = {"ok": False, "error": exc.message, "exit_code": exc.exit_code}
        except Exception as exc:  # the framework failing on this configuration
            if debug_enabled():
                import traceback

                traceback.print_exc()
            reply = {"ok": False, "error": error_text(exc), "exit_code": EXIT_ENVIRONMENT}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(handle: Handler) -> None:
    """The worker process: serve requests on stdin/stdout with ``handle``."""
    # Replies go to the real standard output; anything else printed (by a framework, or a
    # stray print) goes to standard error, so it cannot corrupt the replies.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with contextlib.suppress(KeyboardInterrupt):
        serve(sys.stdin, replies, handle)
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # skip the frameworks' slow teardown
