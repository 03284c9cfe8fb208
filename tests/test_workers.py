"""Worker processes end promptly and say how they ended (no orphans, no 30 s waits)."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from tdcheck.core.config import CompareConfig
from tdcheck.errors import EnvironmentProblem
from tdcheck.runners.worker import Worker


def small() -> CompareConfig:
    return CompareConfig(hidden=3, seq=2)


def test_an_interrupt_terminates_a_busy_worker_instead_of_waiting_for_it():
    worker = Worker("tensorflow")
    with pytest.raises(KeyboardInterrupt), worker:
        worker.submit(small(), np.ones((1, 2, 4)))  # it is still importing TensorFlow
        raise KeyboardInterrupt
    # before: close() waited for the request to finish and the worker exited 0 on its own
    assert worker._process.returncode == -signal.SIGTERM


def test_a_killed_worker_is_named_with_its_signal():
    with Worker("tensorflow") as worker:
        worker._process.kill()
        worker._process.wait()
        worker._pending = None
        with pytest.raises(EnvironmentProblem) as err:
            worker.submit(small(), np.ones((1, 2, 4)))
            worker.result()
    assert err.value.message == "the tensorflow worker ended (killed by SIGKILL): no message"
