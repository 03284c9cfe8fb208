"""Option declarations shared by the commands, and output-path checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from tdcheck.core.config import (
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
)
from tdcheck.core.variants import VARIANT_NAMES

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def apply_options(decorators: list[Decorator]) -> Decorator:
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


def model_options(grid: bool) -> list[Decorator]:
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


OPTIONS: dict[str, Decorator] = {
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
        metavar="NAME",
        help="Head activation: " + ", ".join(ACTIVATIONS) + ".",
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
        help="Train a copy of the model per variant for N steps (at most 100000); compare "
        "weights, outputs, drift.",
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
COMMON_OPTIONS = list(OPTIONS.values())


def junit_option(text: str) -> Decorator:
    """``--junit PATH`` with the command's own description of its testcases."""
    return click.option(
        "--junit", type=click.Path(dir_okay=False), default=None, metavar="PATH",
        help=f"Also write JUnit XML: {text}",
    )  # fmt: skip


#: ``--wide`` on every command with a table: show every column.
wide_option = click.option(
    "--wide",
    is_flag=True,
    help="Table format: show every column (the default keeps the key ones, to fit 80 columns).",
)


def check_output(output: str | None, **others: str | None) -> str | None:
    """Check --output and the other output options (``junit=PATH``...) before any work:
    each path can take a file, no two name the same file. Return the report format
    --output's suffix implies (a device or pipe without a known suffix gets JSON)."""
    from tdcheck import files

    named = {"--" + name.replace("_", "-"): path for name, path in others.items()}
    for option, path in named.items():
        if path is not None:
            files.check_output_path(path, option)
    files.check_distinct({"--output": output, **named})
    if output is None:
        return None
    files.check_output_path(output, "--output")
    if files.is_stream_target(output) and os.path.splitext(output)[1].lower() not in (
        files.REPORT_SUFFIXES
    ):
        return "json"
    return files.report_format_for(output)


def write_sweep_files(
    doc: dict[str, Any], output: str | None, output_format: str | None, junit: str | None
) -> None:
    """--output, --junit, and the Markdown for $GITHUB_STEP_SUMMARY when it is set."""
    from tdcheck import files
    from tdcheck.reports.junit import to_junit
    from tdcheck.reports.sweep_render import render, render_markdown

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
