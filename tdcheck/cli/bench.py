"""``tdcheck bench``."""

from __future__ import annotations

import sys
from typing import Any

import click

from tdcheck.cli.backend_options import BACKEND_OPTIONS
from tdcheck.cli.options import OPTIONS, apply_options, check_output, wide_option
from tdcheck.core.config import DEFAULT_FEATURES, DTYPE_CHOICES, RNN_CHOICES, CompareConfig
from tdcheck.errors import ConfigError

_BENCH_SHARED = ("initializer", "bias-initializer", "activation", "weights", "seed", "device",
                 "atol", "rtol", "max-memory", "format", "output")  # fmt: skip


@click.command("bench")
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
@BACKEND_OPTIONS[0]
@click.option(
    "--mode",
    default=None,
    metavar="LIST",
    help="Comma list: eager on every backend; graph (tf.function), xla "
    "(jit_compile=True) on tensorflow; jit (jax.jit) on jax.  "
    "[default: eager,graph; eager,jit on jax; eager on torch]",
)
@click.option(
    "--time-dim",
    default="static",
    show_default=True,
    metavar="LIST",
    help="Comma list from static, dynamic: the time dimension graph and xla trace "
    "with (TimeDistributed loops when static, uses vectorized_map when dynamic); "
    "dynamic is TensorFlow's only.",
)
@click.option(
    "--repeats",
    type=int,
    default=20,
    show_default=True,
    metavar="N",
    help="Timed calls per measurement (at most 10000).",
)
@click.option(
    "--warmup",
    type=int,
    default=3,
    show_default=True,
    metavar="N",
    help="Untimed calls after the first (tracing) call (at most 1000).",
)
@click.option("--backward", is_flag=True, help="Time forward + backward (gradients).")
@click.option("--with-trunk", is_flag=True, help="Time the whole model, not only the heads.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH.png",
    help="Write a PNG of time against sequence length (needs matplotlib: the plot extra).",
)
@apply_options([OPTIONS[name] for name in _BENCH_SHARED])
@wide_option
def bench_command(
    seq: str, batch: str, mode: str | None, time_dim: str, repeats: int, warmup: int,
    backward: bool, with_trunk: bool, plot: str | None, format_: str, output: str | None,
    wide: bool, **options: Any,
) -> int:  # fmt: skip
    """Time each variant: medians, ratios to dense, throughput, efficiency against a matmul.

    \b
    Example:
      tdcheck bench --seq 10,100,1000 --mode eager,graph --plot bench.png
      tdcheck bench --hidden 64 --units 16 --mode graph,xla \\
        --time-dim static,dynamic
      tdcheck bench --backend jax --hidden 64 --units 16 --mode eager,jit
    Exit codes: 0 every variant ran and matched dense in every cell, 1 the
    variants are not equivalent or a variant raised or differed from dense in
    some cell (the verdict line names them), 2 usage, 3 environment (e.g. --plot
    without matplotlib), 130 interrupted.
    """
    from tdcheck.commands.bench import DEFAULT_MODES, BenchPlan
    from tdcheck.core.grid import parse_list

    # --backend, else $KERAS_BACKEND, else tensorflow (as compare); a backend this process
    # cannot load runs in a worker process.
    config = CompareConfig(**options, input="random").validated()
    modes = (
        DEFAULT_MODES.get(config.engine, ("eager",)) if mode is None else parse_list("mode", mode)
    )
    plan = BenchPlan(
        config=config,
        seqs=tuple(parse_list("seq", seq)),
        batches=tuple(parse_list("batch", batch)),
        modes=tuple(modes),
        time_dims=tuple(parse_list("time-dim", time_dim)),
        repeats=repeats, warmup=warmup, backward=backward, with_trunk=with_trunk,
    ).validated()  # fmt: skip
    output_format = check_output(output, plot=plot)
    if plot is not None:
        from tdcheck.reports.bench_render import check_plot_available

        if not plot.lower().endswith(".png"):
            raise ConfigError(f"--plot: {plot!r} must end in .png")
        check_plot_available()

    from tdcheck.commands.bench import bench
    from tdcheck.reports.bench_render import render, render_table, write_plot
    from tdcheck.reports.color import is_terminal
    from tdcheck.reports.progress import BenchStatus

    status = BenchStatus(len(plan.cells())) if is_terminal(sys.stderr) else None
    if status is not None:
        from tdcheck.core.backends import LABELS

        status.loading(LABELS[plan.backend])
    try:
        doc = bench(plan, on_cell=status)
    finally:
        if status is not None:
            status.clear()
    if output is not None and output_format is not None:
        from tdcheck import files

        files.atomic_write_text(output, render(doc, output_format))
    if plot is not None:
        write_plot(doc, plot)
    if format_ == "table":
        render_table(doc, sys.stdout, wide=wide)
    else:
        click.echo(render(doc, format_), nl=False)
    return 0 if doc.get("passed", doc["equivalent"]) else 1


COMMANDS = [bench_command]
