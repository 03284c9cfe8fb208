"""``tdcheck sweep`` and ``tdcheck merge``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from tdcheck.cli.compare import NUMERICS_OPTIONS
from tdcheck.cli.options import (
    OPTIONS,
    Decorator,
    apply_options,
    check_output,
    junit_option,
    model_options,
    wide_option,
    write_sweep_files,
)
from tdcheck.core.config import ACTIVATIONS, TIME_DIMS, WEIGHT_MODES, CompareConfig
from tdcheck.core.grid import DEFAULT_MAX_CASES
from tdcheck.core.install import install_hint
from tdcheck.errors import ConfigError, EnvironmentProblem

if TYPE_CHECKING:
    from tdcheck.commands.sweep import RayOptions

#: The largest --max-cases accepted: a sweep runs in one process, one case at a time.
MAX_CASES_CAP = 1_000_000


def _list_option(name: str, default: str, metavar: str, text: str) -> Decorator:
    return click.option(f"--{name}", default=None, metavar=metavar,
                        help=f"{text}  [default: {default}]")  # fmt: skip


#: compare's options that shape a case, as comma-list axes of the grid.
_AXIS_OPTIONS: dict[str, Decorator] = {
    "initializer": _list_option("initializer", "constant:0.1", "LIST",
                                "Head kernel initializers (SPEC as for compare), a comma list."),
    "bias-initializer": _list_option("bias-initializer", "zeros", "LIST",
                                     "Head bias initializers, a comma list."),
    "activation": _list_option("activation", "linear", "LIST",
                               "Head activations, a comma list from " + ", ".join(ACTIVATIONS)
                               + "."),
    "weights": _list_option("weights", "shared", "LIST",
                            "Weight modes, a comma list from " + ", ".join(WEIGHT_MODES) + "."),
    "seed": _list_option("seed", "0", "INT[,INT...]", "Seeds, a comma list."),
    "time-dim": _list_option("time-dim", "static", "LIST",
                             "Time dimensions, a comma list from " + ", ".join(TIME_DIMS) + "."),
    "lengths": _list_option("lengths", "none", "L1:L2[,...]",
                            "Valid-length vectors, a comma list; the rows of one vector are "
                            "joined by ':' (3:2,2:2 is two cases for a batch of 2)."),
}  # fmt: skip
SWEEP_OPTIONS = [_AXIS_OPTIONS.get(name, option) for name, option in OPTIONS.items()]


@contextlib.contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: an import cut short (NumPy cannot be
    imported twice in a process) would leave nothing able to write the partial report."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)  # SIGTERM stops tdcheck as Ctrl-C does
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt


@click.command("sweep")
@apply_options(model_options(grid=True))
@apply_options(SWEEP_OPTIONS)
@apply_options(NUMERICS_OPTIONS)
@junit_option("one testcase per case; cases that did not run are errors.")
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="Run only shard K of N (1 <= K <= N): the i-th selected case (from 0) goes to shard "
    "i % N + 1.",
)
@click.option(
    "-k",
    "select",
    default=None,
    metavar="EXPR",
    help="Run only the cases whose names match EXPR: words (substrings, any case) combined "
    "with and, or, not and parentheses, as pytest -k. Shards split the selected cases.",
)
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="Print the names of the cases (after -k and --shard) and exit, running nothing; "
    "with --format json, a list of objects: index, name, shard, reproduce.",
)
@click.option(
    "--backend",
    default=None,
    metavar="LIST",
    help="Keras 3 backends, a grid axis: comma list from tensorflow, jax, torch (one process "
    "each, reused across cases).  [default: $KERAS_BACKEND, else tensorflow]",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first case that fails or errors.")
@click.option(
    "--max-cases",
    type=int,
    default=DEFAULT_MAX_CASES,
    show_default=True,
    metavar="N",
    help=f"Refuse grids of more cases than this (before running any); at most {MAX_CASES_CAP}.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the cases run: local (this process, one case at a time) or ray (Ray actors, "
    "each holding an engine; needs the ray extra, see docs/ray.md). The report is the same.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="With --executor ray: how many workers run cases (without --ray-address, the size of "
    "the local Ray instance started).  [default: the CPU count, or the cluster's CPUs]",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="With --executor ray: join the Ray cluster at ADDR (HOST:PORT, ray://HOST:PORT or "
    "auto) instead of starting a local instance.  [default: $RAY_ADDRESS]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary line.")
@wide_option
def sweep_command(
    input_: str, format_: str, output: str | None, junit: str | None, shard: str | None,
    select: str | None, list_only: bool, fail_fast: bool, max_cases: int, executor: str,
    workers: int | None, ray_address: str | None, quiet: bool, wide: bool, **options: Any,
) -> int:  # fmt: skip
    """Run the cartesian product of comma-listed options, in one process or on Ray.

    \b
    Example:
      tdcheck sweep --hidden 4,8,16 --seq 3,10 --rnn lstm,gru --junit report.xml
      tdcheck sweep --variants dense,time-distributed --variants dense,conv1d --shard 1/4
      tdcheck sweep --seed 0,1,2 --activation linear,gelu -k "gelu and not seed=0" --list
    Every failed or errored case prints the tdcheck compare command that reproduces it.
    Exit codes: 0 every case passed, 1 a case failed, errored or did not run, 2 usage,
    3 environment, 130 interrupted.
    If $GITHUB_STEP_SUMMARY is set, the Markdown report is appended to it.
    """
    from tdcheck.commands.sweep import plan_sweep
    from tdcheck.core import grid

    lists = {axis: options.pop(axis) for axis in grid.AXES}
    base = CompareConfig(input=input_, **options)
    if not 1 <= max_cases <= MAX_CASES_CAP:
        raise ConfigError(f"--max-cases: must be 1..{MAX_CASES_CAP} (got {max_cases})")
    ray = _ray_options(executor, workers, ray_address)
    shard_spec = grid.parse_shard(shard) if shard is not None else None
    plan = plan_sweep(lists, base, select=select, shard=shard_spec, max_cases=max_cases)
    if list_only:
        if format_ == "json":
            listed = [{"index": c.index, "name": c.name, "shard": c.shard,
                       "reproduce": c.reproduce} for c in plan.cases]  # fmt: skip
            click.echo(json.dumps(listed, indent=2))
        else:
            for case in plan.cases:
                click.echo(case.name)
        return 0
    output_format = check_output(output, junit=junit)
    if ray is not None:
        _require_ray()

    from tdcheck.commands.sweep import SweepResult, run_sweep

    try:  # Ctrl-C at any moment from here on: the report, interrupted, every case not run
        with _interrupt_after():  # what writes the report (NumPy, Rich) must load whole
            import tdcheck.reports.junit
            import tdcheck.reports.sweep_render  # noqa: F401
        from tdcheck.reports.progress import progress_reporter

        with progress_reporter(len(plan.cases), enabled=not quiet) as on_case:
            result = run_sweep(plan, fail_fast=fail_fast, on_case=on_case, ray=ray,
                               on_workers=on_case.workers)  # fmt: skip
    except KeyboardInterrupt:
        result = SweepResult.start(plan)
        result.interrupted = True
        result.mark_not_run(plan.cases)
    doc = result.to_dict()
    _report(doc, output, output_format, junit, format_, quiet=quiet, wide=wide)
    if result.interrupted:
        click.echo("tdcheck: interrupted; the report covers the cases that finished", err=True)
        return 130
    return 0 if doc["passed"] else 1


def _require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise EnvironmentProblem(f"--executor ray needs Ray, which is not installed; install "
                                 f"it: {install_hint('ray')}")  # fmt: skip


def _ray_options(executor: str, workers: int | None, address: str | None) -> RayOptions | None:
    """``--executor ray``'s options, checked (exit 2), and Ray installed (exit 3)."""
    from tdcheck.commands.sweep import RayOptions

    if executor != "ray":
        for flag, value in (("--workers", workers), ("--ray-address", address)):
            if value is not None:
                raise ConfigError(f"{flag}: only with --executor ray")
        return None
    if workers is not None and not 1 <= workers <= 4096:
        raise ConfigError(f"--workers: must be 1..4096 (got {workers})")
    if address is not None and not address.strip():
        raise ConfigError("--ray-address: give HOST:PORT, ray://HOST:PORT or auto")
    return RayOptions(address=address.strip() if address else None, workers=workers)


@click.command("merge")
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@apply_options([OPTIONS["format"], OPTIONS["output"]])
@junit_option("one testcase per case of the merged report; missing cases are errors.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@wide_option
def merge_command(
    files: tuple[str, ...], format_: str, output: str | None, junit: str | None, quiet: bool,
    wide: bool,
) -> int:  # fmt: skip
    """Merge the JSON reports of sweep shards into one report.

    Refuses (exit 2) reports of different sweeps (their grid fingerprints differ), the same
    shard or case twice, and files that are not sweep reports. Missing shards and cases that
    did not run are named on stderr and shown in the report and JUnit as not run (errors).

    \b
    Example:
      tdcheck merge shard-*.json --junit all.xml
    Exit codes: 0 every case passed and no case is missing, 1 otherwise, 2 bad input.
    """
    from tdcheck.commands.merge import load_report, merge, missing_lines

    output_format = check_output(output, junit=junit)
    doc = merge([load_report(path) for path in files], list(files))
    for line in missing_lines(doc):
        click.echo(f"tdcheck: {line}", err=True)

    _report(doc, output, output_format, junit, format_, quiet=quiet, wide=wide)
    return 0 if doc["passed"] else 1


def _report(
    doc: dict[str, Any], output: str | None, output_format: str | None, junit: str | None,
    format_: str, *, quiet: bool, wide: bool,
) -> None:  # fmt: skip
    """Write the files a sweep or merge report goes to, then print it on stdout."""
    from tdcheck.reports.sweep_render import headline, render, render_table

    write_sweep_files(doc, output, output_format, junit)
    if quiet:
        click.echo(headline(doc))
    elif format_ == "table":
        render_table(doc, sys.stdout, wide=wide)
    else:
        click.echo(render(doc, format_), nl=False)


COMMANDS = [sweep_command, merge_command]
