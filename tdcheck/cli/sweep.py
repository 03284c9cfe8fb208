"""``tdcheck sweep`` and ``tdcheck merge``."""

from __future__ import annotations

import sys
from typing import Any

import click

from tdcheck.cli.compare import NUMERICS_OPTIONS
from tdcheck.cli.options import (
    COMMON_OPTIONS,
    apply_options,
    check_output,
    model_options,
    write_sweep_files,
)
from tdcheck.core.config import FORMAT_CHOICES, CompareConfig
from tdcheck.core.grid import DEFAULT_MAX_CASES
from tdcheck.errors import ConfigError


@click.command("sweep")
@apply_options(model_options(grid=True))
@apply_options(COMMON_OPTIONS)
@apply_options(NUMERICS_OPTIONS)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write JUnit XML: one testcase per case.",
)
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="Run only shard K of N (1 <= K <= N): case i goes to shard i % N + 1.",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first case that fails or errors.")
@click.option(
    "--max-cases",
    type=int,
    default=DEFAULT_MAX_CASES,
    show_default=True,
    metavar="N",
    help="Refuse grids of more cases than this (before running any).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary line.")
def sweep_command(
    input_: str, format_: str, output: str | None, junit: str | None, shard: str | None,
    fail_fast: bool, max_cases: int, quiet: bool, **options: Any,
) -> int:  # fmt: skip
    """Run the cartesian product of comma-listed options in one process.

    \b
    Example:
      tdcheck sweep --hidden 4,8,16 --seq 3,10 --rnn lstm,gru --junit report.xml
      tdcheck sweep --variants dense,time-distributed --variants dense,conv1d --shard 1/4
    Exit codes: 0 every case passed, 1 a case failed or errored, 2 usage, 130 interrupted.
    If $GITHUB_STEP_SUMMARY is set, the Markdown report is appended to it.
    """
    from tdcheck import files
    from tdcheck.core import grid

    lists = {axis: options.pop(axis) for axis in grid.AXES}
    base = CompareConfig(input=input_, **options)
    if max_cases < 1:
        raise ConfigError(f"--max-cases: must be >= 1 (got {max_cases})")
    cases = grid.expand(lists, base, max_cases=max_cases)
    indexed = list(enumerate(cases))
    shard_spec = grid.parse_shard(shard) if shard else None
    if shard_spec:
        indexed = grid.shard(indexed, *shard_spec)
    output_format = check_output(output)
    if junit is not None:
        files.check_output_path(junit, "--junit")

    from tdcheck.commands.sweep import run_sweep
    from tdcheck.reports.progress import progress_reporter
    from tdcheck.reports.sweep_render import headline, render, render_table

    with progress_reporter(len(indexed), enabled=not quiet) as on_case:
        result = run_sweep(indexed, grid_size=len(cases), shard=shard_spec, fail_fast=fail_fast,
                           on_case=on_case)  # fmt: skip
    doc = result.to_dict()
    write_sweep_files(doc, output, output_format, junit)
    if quiet:
        click.echo(headline(doc))
    elif format_ == "table":
        render_table(doc, sys.stdout)
    else:
        click.echo(render(doc, format_), nl=False)
    if result.interrupted:
        click.echo("tdcheck: interrupted; the report covers the cases that finished", err=True)
        return 130
    return 0 if doc["passed"] else 1


@click.command("merge")
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@click.option(
    "--format",
    "format_",
    type=click.Choice(FORMAT_CHOICES),
    default="table",
    show_default=True,
    help="Report format on stdout.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write the merged report here; format by suffix (.json, .md, .txt).",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write JUnit XML for the merged report.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
def merge_command(
    files: tuple[str, ...], format_: str, output: str | None, junit: str | None, quiet: bool
) -> int:  # fmt: skip
    """Merge the JSON reports of sweep shards into one report.

    \b
    Example:
      tdcheck merge shard-*.json --junit all.xml
    Exit codes: 0 every case passed and no case is missing, 1 otherwise, 2 bad input.
    """
    from tdcheck import files as files_module
    from tdcheck.commands.merge import load_report, merge

    output_format = check_output(output)
    if junit is not None:
        files_module.check_output_path(junit, "--junit")
    doc = merge([load_report(path) for path in files], list(files))

    from tdcheck.reports.sweep_render import headline, render, render_table

    write_sweep_files(doc, output, output_format, junit)
    if quiet:
        click.echo(headline(doc))
    elif format_ == "table":
        render_table(doc, sys.stdout)
    else:
        click.echo(render(doc, format_), nl=False)
    return 0 if doc["passed"] else 1


COMMANDS = [sweep_command, merge_command]
