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


@contextlib.contextmanager
def progress_reporter(total: int, enabled: bool = True) -> Iterator[Callable[[CaseResult], None]]:
    """Yield a callback to call after each case; draws a bar with pass/fail counts on a TTY.

    Until TensorFlow has loaded the bar says "loading TensorFlow ...", then "sweep".
    """
    if not enabled or not is_terminal(sys.stderr):
        yield lambda case: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class StageColumn(TextColumn):
        def render(self, task: Any) -> Text:
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
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=total, passed=0, failed=0, errored=0)

        def on_case(case: CaseResult) -> None:
            counts[case.status] += 1
            progress.update(task, advance=1, passed=counts["passed"], failed=counts["failed"],
                            errored=counts["errored"])  # fmt: skip

        yield on_case


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
