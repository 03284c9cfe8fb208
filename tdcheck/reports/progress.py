"""Progress on stderr, only when stderr is a terminal: the sweep's bar and bench's status line.

Both appear before TensorFlow loads and say so ("loading TensorFlow ..."), since importing it
takes seconds; stdout is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from tdcheck.reports.color import console_options, is_terminal


def tensorflow_loaded() -> bool:
    """Whether tdcheck's TensorFlow engine has finished importing TensorFlow."""
    module = sys.modules.get("tdcheck.engines.tensorflow")
    return getattr(module, "_LOADED", None) is not None


class CaseResult(Protocol):
    """What the bar needs of a sweep case (:class:`tdcheck.commands.sweep.CaseResult`):
    reports never import commands."""

    @property
    def status(self) -> str: ...


class SweepProgress:
    """The sweep's progress callbacks: call it with each finished case; :meth:`workers` with
    every worker's state (``--executor ray``: ``{"w1": CASE or "idle" or "starting"}``)."""

    def __init__(
        self,
        on_case: Callable[[CaseResult], None] | None = None,
        on_workers: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self._on_case = on_case
        self._on_workers = on_workers

    def __call__(self, case: CaseResult) -> None:
        if self._on_case is not None:
            self._on_case(case)

    def workers(self, states: dict[str, str]) -> None:
        if self._on_workers is not None:
            self._on_workers(states)


def worker_line(states: dict[str, str], width: int = 60) -> str:
    """``w1 lstm5-f4-... | w2 idle``, each name cut so the line fits ``width``.

    >>> worker_line({"w1": "lstm5-f4-u2-s3-b1-float32-dense+time-distributed", "w2": "idle"}, 40)
    'w1 lstm5-f4-u2-s3… | w2 idle'
    """
    if not states:
        return ""
    room = max(8, (width - 3 * (len(states) - 1)) // len(states))
    parts = []
    for label, state in states.items():
        text = f"{label} {state}"
        parts.append(text if len(text) <= room else text[: room - 1] + "…")
    return " | ".join(parts)


@contextlib.contextmanager
def progress_reporter(total: int, enabled: bool = True) -> Iterator[SweepProgress]:
    """Yield a :class:`SweepProgress`; draws a bar with pass/fail counts on a TTY (and, on
    Ray, a second line with each worker's state).

    Until TensorFlow has loaded the bar says "loading TensorFlow ...", then "sweep".
    """
    if not enabled or not is_terminal(sys.stderr):
        yield SweepProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    workers: dict[str, str] = {}

    class StageColumn(TextColumn):
        def render(self, task: Any) -> Text:
            if workers:
                return Text("sweep on Ray")
            return Text("sweep" if tensorflow_loaded() else "loading TensorFlow ...")

    counts = {"passed": 0, "failed": 0, "errored": 0}
    columns = (
        StageColumn(""), BarColumn(bar_width=20), MofNCompleteColumn(),
        TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/] "
                   "[yellow]{task.fields[errored]} errored[/]"),
        TimeElapsedColumn(),
    )  # fmt: skip
    # A live display needs a terminal console even when colour is off (--color never).
    console = Console(stderr=True, **{**console_options(sys.stderr), "force_terminal": True})

    class WorkerProgress(Progress):
        """The bar, and under it one line of the workers' states (on Ray)."""

        def get_renderables(self) -> Iterator[Any]:
            yield from super().get_renderables()
            if workers:
                yield Text(worker_line(workers, max(20, console.width - 1)), no_wrap=True)

    with WorkerProgress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=total, passed=0, failed=0, errored=0)

        def on_case(case: CaseResult) -> None:
            counts[case.status] += 1
            progress.update(task, advance=1, passed=counts["passed"], failed=counts["failed"],
                            errored=counts["errored"])  # fmt: skip

        def on_workers(states: dict[str, str]) -> None:
            workers.clear()
            workers.update(states)
            progress.refresh()

        yield SweepProgress(on_case, on_workers)


class BenchStatus:
    """bench's one-line status on stderr: the cell being compiled and timed, and an estimate.

    The estimate is the mean time of the cells done so far times the cells left (cells grow
    with the sequence length, so it is rough and says so: "about").
    """

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = -1
        self.clock = clock
        self.started = clock()
        self.first_cell_at: float | None = None

    def line(self, cell: str) -> str:
        """The status text when ``cell`` starts."""
        self.done += 1
        now = self.clock()
        if self.first_cell_at is None:
            self.first_cell_at = now
        text = f"[{self.done + 1}/{self.total}] {cell}: compiling and timing"
        if self.done:
            per_cell = (now - self.first_cell_at) / self.done
            text += f", about {_duration(per_cell * (self.total - self.done))} left"
        return text

    def __call__(self, cell: str) -> None:
        _status(self.line(cell))

    def loading(self, framework: str = "TensorFlow") -> None:
        _status(f"loading {framework} ...")

    @staticmethod
    def clear() -> None:
        _status(None)


def _status(text: str | None) -> None:
    """Rewrite the status line (cut to the terminal's width, so it never wraps)."""
    stream = sys.stderr
    columns = shutil.get_terminal_size().columns
    with contextlib.suppress(OSError, ValueError):
        stream.write("\r\033[K" if text is None else f"\r{text[: columns - 1]}\033[K")
        stream.flush()


def _duration(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``; ``8.2`` -> ``8 s``."""
    seconds = max(1, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
