"""The sweep's progress bar: Rich, on stderr, only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tdcheck.commands.sweep import CaseResult


@contextlib.contextmanager
def progress_reporter(total: int, enabled: bool = True) -> Iterator[Callable[[CaseResult], None]]:
    """Yield a callback to call after each case; draws a bar with pass/fail counts on a TTY."""
    if not enabled or not sys.stderr.isatty():
        yield lambda case: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = {"passed": 0, "failed": 0, "errored": 0}
    columns = (
        TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/] "
                   "[yellow]{task.fields[errored]} errored[/]"),
        TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("sweep", total=total, passed=0, failed=0, errored=0)

        def on_case(case: CaseResult) -> None:
            counts[case.status] += 1
            progress.update(task, advance=1, passed=counts["passed"], failed=counts["failed"],
                            errored=counts["errored"])  # fmt: skip

        yield on_case
