"""Run configurations on whichever engine each names, reusing what was started."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tdcheck.core.config import CompareConfig
from tdcheck.core.result import CompareRun
from tdcheck.runners.worker import Worker


class EngineRunner:
    """Runs configurations on whichever engine each names, reusing what it started: the
    engine that can load in this process runs here (one session from ``local(engine)``, e.g.
    :class:`tdcheck.commands.session.Session`), every other in one :class:`Worker` kept for
    the next configuration on it. ``tdcheck sweep`` with a ``--backend`` axis so pays one
    start-up per backend, not one per case."""

    def __init__(self, local: Callable[[str], Any]) -> None:
        self._local = local
        self._sessions: dict[str, Any] = {}
        self._workers: dict[str, Worker] = {}

    def __enter__(self) -> EngineRunner:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)

    def run(self, cfg: CompareConfig, x: np.ndarray) -> CompareRun:
        from tdcheck.engines.base import can_load_here, require_installed

        name = cfg.engine
        if name in self._sessions:
            return self._sessions[name].run(cfg, x)
        require_installed(name)
        if name not in self._workers and can_load_here(name):
            self._sessions[name] = self._local(name)
            return self._sessions[name].run(cfg, x)
        if name not in self._workers:
            self._workers[name] = Worker(name)
        self._workers[name].submit(cfg, x)
        return self._workers[name].result()

    def close(self, abort: bool = False) -> None:
        for worker in self._workers.values():
            worker.close(abort=abort)
        self._workers.clear()
