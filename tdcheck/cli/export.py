"""``tdcheck export``: a deployment artifact that is right for every batch and length."""

from __future__ import annotations

import sys

import click

from tdcheck.cli.options import OPTIONS, check_output
from tdcheck.core.config import FORMAT_CHOICES
from tdcheck.errors import ConfigError

ARTIFACT_FORMATS = ("savedmodel", "onnx", "tflite")


@click.command("export")
@click.argument("source", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("out", metavar="OUT", type=click.Path())
@click.option("--to", "to_format", type=click.Choice(ARTIFACT_FORMATS),
              default=None, help="Artifact format (default: from OUT: .onnx, .tflite, "
              "else a SavedModel folder).")  # fmt: skip
@click.option("--probes", default="3x5,5x2,1x4,2x7", show_default=True, metavar="BxL,...",
              help="Batch x length of the probe inputs; keep batch != length, some batch > "
                   "length and some batch < length (the broken exports are right only when "
                   "they are equal).")  # fmt: skip
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              metavar="PATH", help="Also check on this .npy (one-input models) or .npz "
              "(one array per input name); repeatable. Never unpickled.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT",
              help="Seed of the random probe inputs.")  # fmt: skip
@OPTIONS["atol"]
@OPTIONS["rtol"]
@click.option("--unsafe", is_flag=True,
              help="Load IN with Keras' safe mode off (only for files you trust).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing SavedModel folder at OUT.")
@click.option("--no-plain", is_flag=True,
              help="Skip probing IN's plain model.export() (the 'before' column).")  # fmt: skip
@click.option("--format", "format_", type=click.Choice((*FORMAT_CHOICES, *ARTIFACT_FORMATS)),
              default="table", show_default=True,
              help="Report format on stdout; an artifact format (savedmodel, onnx, tflite) "
                   "here is --to.")  # fmt: skip
@OPTIONS["output"]
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")
def export_command(
    source: str, out: str, to_format: str | None, probes: str, inputs: tuple[str, ...],
    seed: int, atol: float | None, rtol: float | None, unsafe: bool, force: bool,
    no_plain: bool, format_: str, output: str | None, quiet: bool,
) -> int:  # fmt: skip
    """Export IN (.keras/.h5) as a SavedModel, ONNX or LiteRT artifact that is right.

    Keras 3's model.export() of a model with TimeDistributed on a variable-length
    axis loops over the batch size instead of the length: wrong shapes or a raise
    whenever batch != length. tdcheck export rewrites each rewritable TimeDistributed
    (as rewrite does), folds the rest (time into the batch axis around the wrapped
    layer), exports, runs the artifact in its own runtime on probe shapes plus every
    --input, and writes OUT atomically only when every probe matches IN. Exit 0
    written, 1 not (the artifact would be wrong; nothing written), 2 bad input, 3
    environment problem (a runtime is missing; install line given).

    \b
    Example:
      tdcheck export tagger.keras serving/tagger
      tdcheck export tagger.keras tagger.onnx --format json
    """
    from tdcheck.commands.export import check_out
    from tdcheck.core.artifact_file import output_format
    from tdcheck.core.probes import parse_probes, weak_probes

    if format_ in ARTIFACT_FORMATS:
        if to_format not in (None, format_):
            raise ConfigError(f"--format {format_} and --to {to_format} disagree")
        to_format, format_ = format_, "table"
    pairs = parse_probes(probes)
    weak = weak_probes(pairs)
    if weak:
        click.echo(f"tdcheck: warning: --probes cannot catch the export bug: {weak}", err=True)
    for name, value in (("--atol", atol), ("--rtol", rtol)):
        if value is not None and not value >= 0:
            raise ConfigError(f"{name}: must be a number >= 0, got {value}")
    fmt = output_format(out, to_format)
    check_out(out, fmt, force)
    output_format_ = check_output(output)
    from tdcheck.commands.export import export

    status = sys.stderr.isatty()
    result = export(
        source, out, format=fmt, inputs=list(inputs) or None, probes=pairs, atol=atol,
        rtol=rtol, seed=seed, unsafe=unsafe, force=force, plain=not no_plain,
        on_step=(lambda text: click.echo(f"\r{text}...\033[K", err=True, nl=False))
        if status else None,
    )  # fmt: skip
    if status:
        click.echo("\r\033[K", err=True, nl=False)
    from tdcheck.cli.models import emit
    from tdcheck.reports import export_render

    emit(result.to_dict(), format_, output, output_format_, quiet, export_render)
    return result.exit_code


COMMANDS = [export_command]
