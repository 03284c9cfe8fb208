"""The ``tdcheck`` command line: parses options, calls the API, renders.

No numerics live here, and nothing heavy is imported at module level:
``tdcheck --help``, ``--version`` and argument errors never load TensorFlow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from tdcheck._version import __version__
from tdcheck.config import (
    ACTIVATIONS,
    DEFAULT_BATCH,
    DEFAULT_FEATURES,
    DEFAULT_SEQ,
    DEVICE_CHOICES,
    DTYPE_CHOICES,
    FORMAT_CHOICES,
    INITIALIZERS,
    OPTIMIZERS,
    RNN_CHOICES,
    TIME_DIMS,
    WEIGHT_MODES,
    CompareConfig,
)
from tdcheck.errors import EXIT_ENVIRONMENT, EXIT_USAGE, ConfigError, TdcheckError
from tdcheck.grid import DEFAULT_MAX_CASES
from tdcheck.variants import VARIANT_NAMES

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _error(message: str, code: int) -> int:
    """Print one line on stderr and return the exit code."""
    click.echo(f"tdcheck: error: {message}", err=True)
    return code


class TdcheckGroup(click.Group):
    """A group whose errors are one line on stderr with tdcheck's exit codes."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:  # fmt: skip
        try:
            code = super().main(args=args, prog_name=prog_name or "tdcheck",
                                standalone_mode=False, **extra)  # fmt: skip
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            code = _error(exc.format_message() + hint, EXIT_USAGE)
        except click.ClickException as exc:
            code = _error(exc.format_message(), exc.exit_code)
        except TdcheckError as exc:
            code = _error(exc.message, exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            code = _error("interrupted", 130)
        except Exception as exc:  # TensorFlow failing at run time (e.g. out of memory), or a bug
            if os.environ.get("TDCHECK_DEBUG", "") not in ("", "0"):
                raise
            from tdcheck.backend import error_text

            code = _error(
                f"unexpected {error_text(exc)} (TDCHECK_DEBUG=1 shows the traceback)",
                EXIT_ENVIRONMENT,
            )
        if not isinstance(code, int):
            code = 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(name="tdcheck", cls=TdcheckGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="tdcheck")
def cli() -> None:
    """Check that Keras heads are the same computation: Dense vs TimeDistributed(Dense).

    Exit codes: 0 all comparisons pass, 1 some comparison fails, 2 bad usage or
    input, 3 environment problem (e.g. --device gpu without a GPU), 130 interrupted.
    Set TDCHECK_DEBUG=1 to see TensorFlow's logs and full tracebacks.
    """


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _apply(decorators: list[Decorator]) -> Decorator:
    """Apply option decorators in the order they are listed (as --help shows them)."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return wrap


_SIZES = (
    ("features", DEFAULT_FEATURES, "Input feature size", True),
    ("hidden", 5, "Trunk units", False),
    ("units", 2, "Head units", False),
    ("seq", DEFAULT_SEQ, "Sequence length", True),
    ("batch", DEFAULT_BATCH, "Batch size", True),
)


def _model_options(grid: bool) -> list[Decorator]:
    """Options that shape the model; with ``grid`` the numeric ones, --rnn and --dtype take
    comma lists and --variants may be repeated (one set each time)."""
    options: list[Decorator] = []
    for name, default, text, from_input in _SIZES:
        shown = f"{default}, or from --input PATH" if from_input else f"{default}"
        options.append(
            click.option(
                f"--{name}",
                type=str if grid else int,
                default=None if (from_input or grid) else default,
                metavar="INT[,INT...]" if grid else "INT",
                help=f"{text}{'; a comma list' if grid else ''}.  [default: {shown}]",
            )
        )
    rnn_help = "Trunk; 'none' feeds the input straight to the heads."
    dtype_help = "Model and input dtype (mixed_float16: Keras mixed precision policy)."
    if grid:
        options += [
            click.option("--rnn", default="lstm", show_default=True, metavar="LIST",
                         help=f"{rnn_help} Comma list from {', '.join(RNN_CHOICES)}."),
            click.option("--dtype", default="float32", show_default=True, metavar="LIST",
                         help=f"{dtype_help} Comma list from {', '.join(DTYPE_CHOICES)}."),
            click.option("--variants", multiple=True, metavar="LIST",
                         help="A variant set, as for compare; repeat the option for several "
                              "sets.  [default: dense,time-distributed]"),
        ]  # fmt: skip
    else:
        options += [
            click.option("--rnn", type=click.Choice(RNN_CHOICES), default="lstm",
                         show_default=True, help=rnn_help),
            click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="float32",
                         show_default=True, help=dtype_help),
            click.option("--variants", default="dense,time-distributed", show_default=True,
                         metavar="LIST",
                         help="Comma list from: " + ", ".join(VARIANT_NAMES)
                              + ". The first is the reference the others are compared with."),
        ]  # fmt: skip
    return options


_OPTIONS: dict[str, Decorator] = {
    "initializer": click.option(
        "--initializer",
        default="constant:0.1",
        show_default=True,
        metavar="SPEC",
        help="Head kernel initializer: NAME or NAME:VALUE (value of constant, stddev of "
        "random_normal/truncated_normal, limit of random_uniform). Names: "
        + ", ".join(INITIALIZERS)
        + ".",
    ),
    "bias-initializer": click.option(
        "--bias-initializer",
        default="zeros",
        show_default=True,
        metavar="SPEC",
        help="Head bias initializer, same syntax.",
    ),
    "activation": click.option(
        "--activation",
        type=click.Choice(ACTIVATIONS),
        default="linear",
        show_default=True,
        help="Head activation.",
    ),
    "weights": click.option(
        "--weights",
        type=click.Choice(WEIGHT_MODES),
        default="shared",
        show_default=True,
        help="'shared' copies the first head's weights into every head; 'independent' "
        "initialises each head on its own, as the seed did.",
    ),
    "input": click.option(
        "--input",
        "input_",
        default="ones",
        show_default=True,
        metavar="ones|random|PATH",
        help="Input values: ones, standard normal from --seed, or a .npy file of shape "
        "(batch, seq, features) that sets those sizes.",
    ),
    "seed": click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        metavar="INT",
        help="Seeds everything random.",
    ),
    "device": click.option(
        "--device",
        type=click.Choice(DEVICE_CHOICES),
        default="auto",
        show_default=True,
        help="Where the model runs ('both': CPU and GPU, compared); the report names "
        "the device used.",
    ),
    "atol": click.option(
        "--atol",
        type=float,
        default=None,
        metavar="FLOAT",
        help="Absolute tolerance; give with --rtol.  [default: per dtype]",
    ),
    "rtol": click.option(
        "--rtol",
        type=float,
        default=None,
        metavar="FLOAT",
        help="Relative tolerance; |a-b| <= atol + rtol*|b|.  [default: per dtype]",
    ),
    "exact": click.option(
        "--exact", is_flag=True, help="Demand bitwise identity between variants."
    ),
    "oracle": click.option(
        "--oracle/--no-oracle",
        default=True,
        show_default=True,
        help="Also compare every variant with the float64 NumPy oracle.",
    ),
    "grad": click.option(
        "--grad",
        is_flag=True,
        help="Also compare gradients of a fixed scalar loss w.r.t. the input, trunk "
        "and head weights.",
    ),
    "train-steps": click.option(
        "--train-steps",
        type=int,
        default=0,
        show_default=True,
        metavar="N",
        help="Train a copy of the model per variant for N steps; compare weights, outputs, drift.",
    ),
    "optimizer": click.option(
        "--optimizer",
        type=click.Choice(OPTIMIZERS),
        default="sgd",
        show_default=True,
        help="Optimizer for --train-steps.",
    ),
    "learning-rate": click.option(
        "--learning-rate",
        type=float,
        default=0.01,
        show_default=True,
        metavar="FLOAT",
        help="Learning rate for --train-steps.",
    ),
    "lengths": click.option(
        "--lengths",
        default=None,
        metavar="L1,L2,...",
        help="Valid length of each batch row (1..seq): zero-padded, masked; compares "
        "valid positions.",
    ),
    "time-dim": click.option(
        "--time-dim",
        type=click.Choice(TIME_DIMS),
        default="static",
        show_default=True,
        help="'dynamic' runs each head in tf.function traced with an unknown sequence length "
        "(TimeDistributed then uses vectorized_map instead of a loop).",
    ),
    "deterministic": click.option(
        "--deterministic",
        is_flag=True,
        help="Turn on TensorFlow op determinism (same seed, same numbers).",
    ),
    "max-memory": click.option(
        "--max-memory",
        default="4GiB",
        show_default=True,
        metavar="SIZE",
        help="Refuse configurations estimated to need more memory than this.",
    ),
    "format": click.option(
        "--format",
        "format_",
        type=click.Choice(FORMAT_CHOICES),
        default="table",
        show_default=True,
        help="Report format on stdout.",
    ),
    "output": click.option(
        "--output",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="PATH",
        help="Also write the report here; format by suffix (.json, .md, .txt).",
    ),
}
_COMMON_OPTIONS = list(_OPTIONS.values())


def _check_output(output: str | None) -> str | None:
    """Check --output before any work; return the report format its suffix implies."""
    from tdcheck import files

    if output is None:
        return None
    files.check_output_path(output, "--output")
    return files.report_format_for(output)


@cli.command("compare")
@_apply(_model_options(grid=False))
@_apply(_COMMON_OPTIONS)
@click.option(
    "--save-arrays",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH.npz",
    help="Save input, outputs and weights to an .npz archive.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")
def compare_command(
    input_: str, format_: str, output: str | None, save_arrays: str | None, quiet: bool,
    **options: Any,
) -> int:  # fmt: skip
    """Build the variants with the same weights, run them and compare the outputs.

    \b
    Example:
      tdcheck compare --hidden 5 --seq 3
      tdcheck compare --variants dense,time-distributed,conv1d --format json
    """
    from tdcheck import files

    # Validate before anything heavy is imported: a bad option costs milliseconds.
    config = CompareConfig(input=input_, **options).validated()
    output_format = _check_output(output)
    if save_arrays is not None:
        files.check_output_path(save_arrays, "--save-arrays")
        if not save_arrays.endswith(".npz"):
            raise ConfigError(f"--save-arrays: {save_arrays!r} must end in .npz")

    from tdcheck.api import compare
    from tdcheck.render import render, render_table

    result = compare(config)
    if save_arrays is not None:
        files.save_arrays(save_arrays, result.arrays)
    if output is not None and output_format is not None:
        files.atomic_write_text(output, render(result, output_format))
    if quiet:
        click.echo(result.verdict())
    elif format_ == "table":
        render_table(result, sys.stdout)
    else:
        click.echo(render(result, format_), nl=False)
    return result.exit_code


@cli.command("sweep")
@_apply(_model_options(grid=True))
@_apply(_COMMON_OPTIONS)
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
    from tdcheck import files, grid

    lists = {axis: options.pop(axis) for axis in grid.AXES}
    base = CompareConfig(input=input_, **options)
    if max_cases < 1:
        raise ConfigError(f"--max-cases: must be >= 1 (got {max_cases})")
    cases = grid.expand(lists, base, max_cases=max_cases)
    indexed = list(enumerate(cases))
    shard_spec = grid.parse_shard(shard) if shard else None
    if shard_spec:
        indexed = grid.shard(indexed, *shard_spec)
    output_format = _check_output(output)
    if junit is not None:
        files.check_output_path(junit, "--junit")

    from tdcheck.sweep import run_sweep
    from tdcheck.sweep_progress import progress_reporter
    from tdcheck.sweep_render import headline, render, render_table

    with progress_reporter(len(indexed), enabled=not quiet) as on_case:
        result = run_sweep(indexed, grid_size=len(cases), shard=shard_spec, fail_fast=fail_fast,
                           on_case=on_case)  # fmt: skip
    doc = result.to_dict()
    _write_sweep_files(doc, output, output_format, junit)
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


@cli.command("merge")
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
    from tdcheck.merge import load_report, merge

    output_format = _check_output(output)
    if junit is not None:
        files_module.check_output_path(junit, "--junit")
    doc = merge([load_report(path) for path in files], list(files))

    from tdcheck.sweep_render import headline, render, render_table

    _write_sweep_files(doc, output, output_format, junit)
    if quiet:
        click.echo(headline(doc))
    elif format_ == "table":
        render_table(doc, sys.stdout)
    else:
        click.echo(render(doc, format_), nl=False)
    return 0 if doc["passed"] else 1


_BENCH_SHARED = ("initializer", "bias-initializer", "activation", "weights", "seed", "device",
                 "atol", "rtol", "max-memory", "format", "output")  # fmt: skip


@cli.command("bench")
@click.option(
    "--features",
    type=int,
    default=DEFAULT_FEATURES,
    show_default=True,
    metavar="INT",
    help="Input feature size (with --with-trunk).",
)
@click.option(
    "--hidden",
    type=int,
    default=5,
    show_default=True,
    metavar="INT",
    help="Trunk units: the size the heads read.",
)
@click.option("--units", type=int, default=2, show_default=True, metavar="INT", help="Head units.")
@click.option(
    "--seq",
    default="10,100,1000",
    show_default=True,
    metavar="INT[,INT...]",
    help="Sequence lengths to time (comma list).",
)
@click.option(
    "--batch",
    default="32",
    show_default=True,
    metavar="INT[,INT...]",
    help="Batch sizes to time (comma list).",
)
@click.option(
    "--rnn",
    type=click.Choice(RNN_CHOICES),
    default="lstm",
    show_default=True,
    help="Trunk, timed only with --with-trunk.",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_CHOICES),
    default="float32",
    show_default=True,
    help="Model and input dtype.",
)
@click.option(
    "--variants",
    default="dense,time-distributed,conv1d,einsum",
    show_default=True,
    metavar="LIST",
    help="Comma list of variants; must include dense.",
)
@click.option(
    "--mode",
    default="eager,graph",
    show_default=True,
    metavar="LIST",
    help="Comma list from eager, graph (tf.function), xla (jit_compile=True).",
)
@click.option(
    "--time-dim",
    default="static",
    show_default=True,
    metavar="LIST",
    help="Comma list from static, dynamic: the time dimension graph and xla trace "
    "with (TimeDistributed loops when static, uses vectorized_map when dynamic).",
)
@click.option(
    "--repeats",
    type=int,
    default=20,
    show_default=True,
    metavar="N",
    help="Timed calls per measurement.",
)
@click.option(
    "--warmup",
    type=int,
    default=3,
    show_default=True,
    metavar="N",
    help="Untimed calls after the first (tracing) call.",
)
@click.option("--backward", is_flag=True, help="Time forward + backward (gradients).")
@click.option("--with-trunk", is_flag=True, help="Time the whole model, not only the heads.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH.png",
    help="Write a PNG of time against sequence length (needs tdcheck[plot]).",
)
@_apply([_OPTIONS[name] for name in _BENCH_SHARED])
def bench_command(
    seq: str, batch: str, mode: str, time_dim: str, repeats: int, warmup: int, backward: bool,
    with_trunk: bool, plot: str | None, format_: str, output: str | None, **options: Any,
) -> int:  # fmt: skip
    """Time each variant: medians, ratios to dense, throughput, efficiency against a matmul.

    \b
    Example:
      tdcheck bench --seq 10,100,1000 --mode eager,graph --plot bench.png
      tdcheck bench --hidden 64 --units 16 --mode graph,xla --time-dim static,dynamic
    Exit codes: 0 timed, 1 the variants are not equivalent (timings flagged), 2 usage,
    3 environment (e.g. --plot without matplotlib).
    """
    from tdcheck.bench import BenchPlan
    from tdcheck.grid import parse_list

    config = CompareConfig(**options, input="random").validated()
    plan = BenchPlan(
        config=config,
        seqs=tuple(parse_list("seq", seq)),
        batches=tuple(parse_list("batch", batch)),
        modes=tuple(parse_list("mode", mode)),
        time_dims=tuple(parse_list("time-dim", time_dim)),
        repeats=repeats, warmup=warmup, backward=backward, with_trunk=with_trunk,
    ).validated()  # fmt: skip
    output_format = _check_output(output)
    if plot is not None:
        from tdcheck import files
        from tdcheck.bench_render import check_plot_available

        files.check_output_path(plot, "--plot")
        if not plot.lower().endswith(".png"):
            raise ConfigError(f"--plot: {plot!r} must end in .png")
        check_plot_available()

    from tdcheck.bench import run_bench
    from tdcheck.bench_render import render, render_table, write_plot

    progress = _bench_progress()
    doc = run_bench(plan, on_cell=progress).to_dict()
    if progress is not None:
        click.echo("\r\033[K", err=True, nl=False)  # clear the status line
    if output is not None and output_format is not None:
        from tdcheck import files

        files.atomic_write_text(output, render(doc, output_format))
    if plot is not None:
        write_plot(doc, plot)
    if format_ == "table":
        render_table(doc, sys.stdout)
    else:
        click.echo(render(doc, format_), nl=False)
    return 0 if doc["equivalent"] else 1


def _bench_progress() -> Any:
    """A one-line status on stderr per timed cell, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    return lambda text: click.echo(f"\rtiming {text}\033[K", err=True, nl=False)


def _write_sweep_files(
    doc: dict[str, Any], output: str | None, output_format: str | None, junit: str | None
) -> None:
    """--output, --junit, and the Markdown for $GITHUB_STEP_SUMMARY when it is set."""
    from tdcheck import files
    from tdcheck.junit import to_junit
    from tdcheck.sweep_render import render, render_markdown

    if output is not None and output_format is not None:
        files.atomic_write_text(output, render(doc, output_format))
    if junit is not None:
        files.atomic_write_text(junit, to_junit(doc))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown(doc))
        except OSError as exc:
            click.echo(f"tdcheck: warning: cannot append to $GITHUB_STEP_SUMMARY ({exc})", err=True)


def main() -> None:
    """Console-script entry point (also ``python -m tdcheck``)."""
    code = cli.main(prog_name="tdcheck", standalone_mode=False)
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """End the process. Once TensorFlow is loaded, skip the interpreter's teardown.

    With TensorFlow imported, Python's shutdown (module teardown, TensorFlow's exit
    handlers) takes about 0.6 s; tdcheck has closed its files by now, so it flushes the
    standard streams and leaves with ``os._exit``. ``TDCHECK_DEBUG=1`` keeps the normal exit.
    """
    if "tensorflow" not in sys.modules or os.environ.get("TDCHECK_DEBUG", "") not in ("", "0"):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or 1
    os._exit(code)
