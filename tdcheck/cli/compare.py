"""``tdcheck compare``."""

from __future__ import annotations

import sys
from typing import Any

import click

from tdcheck.cli.backend_options import BACKEND_OPTIONS
from tdcheck.cli.options import (
    COMMON_OPTIONS,
    Decorator,
    apply_options,
    check_output,
    junit_option,
    model_options,
    wide_option,
)
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError

#: Judging options shared with sweep.
NUMERICS_OPTIONS: list[Decorator] = [
    click.option(
        "--equal-nan",
        is_flag=True,
        help="Count NaNs in the same position (and equal infinities) as equal; by default any "
        "NaN or inf fails its comparison.",
    ),
    click.option(
        "--power",
        is_flag=True,
        help="Inject known faults into a copy of one head and report which ones this "
        "configuration, input and rule detect.",
    ),
]


@click.command("compare")
@apply_options(model_options(grid=False))
@apply_options(COMMON_OPTIONS)
@apply_options(BACKEND_OPTIONS)
@click.option(
    "--save-arrays",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH.npz",
    help="Save every judged array, the weights, and the report as JSON to an .npz archive "
    "(readable with allow_pickle=False).",
)
@apply_options(NUMERICS_OPTIONS)
@junit_option("one testcase per judged pair, failures with the statistics.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")
@wide_option
def compare_command(
    input_: str, format_: str, output: str | None, save_arrays: str | None, junit: str | None,
    quiet: bool, wide: bool, keras: str, **options: Any,
) -> int:  # fmt: skip
    """Build the variants with the same weights, run them and compare the outputs.

    \b
    Example:
      tdcheck compare --hidden 5 --seq 3
      tdcheck compare --variants dense,time-distributed,conv1d --format json
      tdcheck compare --backends tensorflow,jax --grad
    """
    from tdcheck import files

    # Validate before anything heavy is imported: a bad option costs milliseconds.
    config = CompareConfig(input=input_, keras=int(keras), **options).validated()
    output_format = check_output(output, save_arrays=save_arrays, junit=junit)
    files.check_not_inputs(
        {"--output": output, "--save-arrays": save_arrays, "--junit": junit},
        {
            "--baseline": config.baseline,
            "--input": None if config.input in ("ones", "random") else config.input,
        },
    )
    if save_arrays is not None and not save_arrays.endswith(".npz"):
        raise ConfigError(f"--save-arrays: {save_arrays!r} must end in .npz")

    from tdcheck.commands.compare import archive, compare
    from tdcheck.reports.render import render, render_table

    result = compare(config)
    if save_arrays is not None:
        files.save_arrays(save_arrays, archive(result))
    if output is not None and output_format is not None:
        files.atomic_write_text(output, render(result, output_format))
    if junit is not None:
        from tdcheck.reports.junit import compare_to_junit, result_name

        files.atomic_write_text(
            junit, compare_to_junit(result.to_dict(), result_name(result.config))
        )
    if quiet:
        click.echo(result.verdict())
    elif format_ == "table":
        render_table(result, sys.stdout, wide=wide)
    else:
        click.echo(render(result, format_), nl=False)
    return result.exit_code


COMMANDS = [compare_command]
