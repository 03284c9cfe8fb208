"""``tdcheck scan``, ``tdcheck rewrite`` and ``tdcheck models``: the user's own saved models."""

from __future__ import annotations

import sys
from typing import Any

import click

from tdcheck.cli.options import OPTIONS, check_output, junit_option
from tdcheck.core.config import FORMAT_CHOICES
from tdcheck.errors import ConfigError


def emit(
    doc: dict[str, Any], format_: str, output: str | None, output_format: str | None,
    quiet: bool = False, renderer: Any = None,
) -> None:  # fmt: skip
    """The report: ``--output`` written atomically in its format, then stdout (or the
    verdict alone with ``--quiet``). ``renderer``: a reports module with ``render`` and
    ``write`` (default :mod:`tdcheck.reports.models_render`)."""
    from tdcheck import files

    if renderer is None:
        from tdcheck.reports import models_render as renderer
    if output is not None and output_format is not None:
        files.atomic_write_text(output, renderer.render(doc, output_format))
    if quiet:
        click.echo(doc["verdict"])
    else:
        renderer.write(doc, format_, sys.stdout)


def _ints(text: str, option: str, minimum: int = 1) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"{option}: expected integers separated by commas, got {text!r}"
        ) from None
    if not values or any(v < minimum for v in values):
        raise ConfigError(f"{option}: every value must be at least {minimum}, got {text!r}")
    return values


FORMAT = click.option("--format", "format_", type=click.Choice(FORMAT_CHOICES), default="table",
                      show_default=True, help="Report format on stdout.")  # fmt: skip
OUTPUT = OPTIONS["output"]
QUIET = click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")


@click.command("scan")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@FORMAT
@OUTPUT
@QUIET
def scan_command(models: tuple[str, ...], format_: str, output: str | None, quiet: bool) -> int:
    """List every TimeDistributed layer in saved models and whether it can be rewritten.

    Reads .keras archives and .h5 files without loading TensorFlow. Exit 0 when nothing
    is rewritable, 1 when some layer could be rewritten (a CI gate), 2 when a file
    cannot be read.

    \b
    Example:
      tdcheck scan model.keras
      tdcheck scan models/*.keras --format json
    """
    from tdcheck.commands.scan import scan_files

    output_format = check_output(output)
    report = scan_files(models)
    for f in report.files:
        if f.error:
            click.echo(f"tdcheck: error: {f.error}", err=True)
    emit(report.to_dict(), format_, output, output_format, quiet)
    return report.exit_code


def _tolerances(values: tuple[str, ...], option: str) -> float | dict[str, float] | None:
    """``--atol 1e-4`` and/or ``--atol NAME=1e-4`` (repeatable): a number, or
    ``{output: number}`` with ``"*"`` for the plain value."""
    if not values:
        return None
    found: dict[str, float] = {}
    for text in values:
        name, _, number = text.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise ConfigError(f"{option}: expected FLOAT or OUTPUT=FLOAT, got {text!r}") from None
        if not value >= 0:
            raise ConfigError(f"{option}: must be a number >= 0, got {value}")
        key = name.strip() or "*"
        if key in found:
            raise ConfigError(
                f"{option}: given twice for {'every output' if key == '*' else key!r}"
            )
        found[key] = value
    return found["*"] if list(found) == ["*"] else found


def _check_options(checks: int, seq: str, batch: int, *, predict: bool = False) -> list[int]:
    lengths = _ints(seq, "--seq")
    if predict and len(set(lengths)) < 2:
        click.echo("tdcheck: warning: one --seq length cannot show the predict-on-a-new-length "
                   "bug; give two, e.g. --seq 5,7", err=True)  # fmt: skip
    if checks < 0:
        raise ConfigError(f"--checks: must be >= 0, got {checks}")
    if batch < 1:
        raise ConfigError(f"--batch: must be >= 1, got {batch}")
    return lengths


def _check_files(save_arrays: str | None, output: str | None, junit: str | None) -> str | None:
    output_format = check_output(output, save_arrays=save_arrays, junit=junit)
    if save_arrays is not None and not save_arrays.endswith(".npz"):
        raise ConfigError(f"--save-arrays: {save_arrays!r} must end in .npz")
    return output_format


CHECK_OPTIONS = [
    click.option("--checks", type=int, default=5, show_default=True, metavar="N",
                 help="Random input sets to compare on (cycling through the --seq lengths)."),
    click.option("--seq", default="5,7", show_default=True, metavar="L1,L2,...",
                 help="Sizes for unknown axes after the batch axis (time, image width...), "
                      "each axis going through all of them; two or more, so a retraced "
                      "predict is checked on a new size."),
    click.option("--batch", type=int, default=2, show_default=True, metavar="INT",
                 help="Batch size for unknown batch axes (differs from the lengths on purpose)."),
    click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
                 metavar="PATH", help="Also compare on this .npy (one-input models) or .npz "
                 "(one array per input name); repeatable. Never unpickled."),
    click.option("--seed", type=int, default=0, show_default=True, metavar="INT",
                 help="Seed of the random inputs."),
    click.option("--atol", multiple=True, metavar="[OUTPUT=]FLOAT",
                 help="Absolute tolerance, for every output or (OUTPUT=FLOAT) one; "
                      "repeatable.  [default: per dtype]"),
    click.option("--rtol", multiple=True, metavar="[OUTPUT=]FLOAT",
                 help="Relative tolerance, as --atol; |b-a| <= atol + rtol*|a|.  "
                      "[default: per dtype]"),
    click.option("--equal-nan", is_flag=True,
                 help="NaNs in the same place (and equal infinities) agree; by default any "
                      "NaN or inf fails its check."),
    click.option("--backend", type=click.Choice(["tensorflow", "jax", "torch"]), default=None,
                 help="Keras backend to run the models on.  [default: $KERAS_BACKEND, else "
                      "tensorflow]"),
    click.option("--unsafe", is_flag=True,
                 help="Load models with Keras' safe mode off (Lambda layers run Python code "
                      "from the file: only for files you trust)."),
    click.option("--save-arrays", type=click.Path(dir_okay=False), default=None,
                 metavar="PATH.npz",
                 help="Save the inputs, both models' outputs and weights, and the report "
                      "as JSON to an .npz archive (readable with allow_pickle=False)."),
    junit_option("one testcase per check and output, failures with the statistics."),
]  # fmt: skip


def _apply(options: list[Any]) -> Any:
    def wrap(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return wrap


@click.command("rewrite")
@click.argument("source", metavar="IN", type=click.Path(dir_okay=True))
@click.argument("out", metavar="[OUT]", required=False, type=click.Path(dir_okay=False))
@_apply(CHECK_OPTIONS)
@click.option("--dry-run", is_flag=True, help="Verify and time, write nothing (OUT optional).")
@click.option("--force", is_flag=True, help="Write OUT even when verification fails.")
@click.option("--inference-only", is_flag=True,
              help="Also rewrite layers that are equal in inference only (BatchNormalization, "
                   "Dropout with noise_shape).")  # fmt: skip
@click.option("--no-timing", is_flag=True, help="Skip the before/after timings.")
@click.option("--no-export-check", is_flag=True,
              help="Skip checking that the written model exports right (SavedModel, and ONNX "
                   "with the onnx extra).")  # fmt: skip
@FORMAT
@OUTPUT
@QUIET
def rewrite_command(
    source: str, out: str | None, checks: int, seq: str, batch: int, inputs: tuple[str, ...],
    seed: int, atol: tuple[str, ...], rtol: tuple[str, ...], equal_nan: bool,
    backend: str | None, unsafe: bool, save_arrays: str | None, junit: str | None,
    dry_run: bool, force: bool, inference_only: bool, no_timing: bool, no_export_check: bool,
    format_: str,
    output: str | None, quiet: bool,
) -> int:  # fmt: skip
    """Replace each rewritable TimeDistributed(layer) in IN by the layer, verify, write OUT.

    Verifies before writing: original and rewritten run on random inputs (several
    sequence lengths) and any --input, judged like compare; the original's
    model.predict on a new sequence length is checked too (Keras 3.15 TimeDistributed
    bug). Writes OUT (.keras) only when every check passed, atomically, and reloads it
    to check once more. Exit 0 verified (or nothing to rewrite), 1 verification
    failed, 2 bad input, 3 environment problem.

    \b
    Example:
      tdcheck rewrite model.keras model_fast.keras
      tdcheck rewrite model.keras --dry-run --seq 7,9 --batch 2
    """
    from tdcheck.commands.rewrite import check_model_output

    lengths = _check_options(checks, seq, batch, predict=True)
    atols, rtols = _tolerances(atol, "--atol"), _tolerances(rtol, "--rtol")
    output_format = _check_files(save_arrays, output, junit)
    if out is None and not dry_run:
        raise ConfigError("give OUT (a .keras path) or --dry-run")
    if out is not None and not dry_run:
        check_model_output(out)
    from tdcheck.commands.rewrite import rewrite

    status = sys.stderr.isatty()  # a one-line status on a terminal, nothing when piped
    result = rewrite(
        source, out, inputs=list(inputs) or None, checks=checks, seq=lengths, batch=batch,
        atol=atols, rtol=rtols, seed=seed, unsafe=unsafe, force=force, dry_run=dry_run,
        inference_only=inference_only, timing=not no_timing, check_export=not no_export_check,
        equal_nan=equal_nan, backend=backend, keep_arrays=save_arrays is not None,
        on_step=(lambda text: click.echo(f"\r{text}...\033[K", err=True, nl=False))
        if status else None,
    )  # fmt: skip
    if status:
        click.echo("\r\033[K", err=True, nl=False)  # clear the status line
    from tdcheck.commands.models import write_files

    doc = result.to_dict()
    write_files(doc, result.arrays, save_arrays=save_arrays, junit=junit)
    emit(doc, format_, output, output_format, quiet)
    return result.exit_code


@click.command("models")
@click.argument("a", metavar="A", type=click.Path(dir_okay=True))
@click.argument("b", metavar="B", type=click.Path(dir_okay=True))
@_apply(CHECK_OPTIONS)
@FORMAT
@OUTPUT
@QUIET
def models_command(
    a: str, b: str, checks: int, seq: str, batch: int, inputs: tuple[str, ...], seed: int,
    atol: tuple[str, ...], rtol: tuple[str, ...], equal_nan: bool, backend: str | None,
    unsafe: bool, save_arrays: str | None, junit: str | None, format_: str,
    output: str | None, quiet: bool,
) -> int:  # fmt: skip
    """Compare two saved models that take the same inputs: parameters and outputs.

    Layers matched by name (a rewritten TimeDistributed(X) keeps its name, so it meets
    X): parameter counts and the weights compared (max abs difference, bitwise). B's
    outputs judged against A's on random inputs (--checks, --seq, --batch) and every
    --input. Exit 0 equivalent, 1 not, 2 bad input, 3 environment problem.

    A or B may be a deployment artifact (a SavedModel folder, .onnx, .tflite), run in
    its own runtime and checked on probe shapes too (batch != length: see tdcheck
    export).

    \b
    Example:
      tdcheck models model.keras model_fast.keras
      tdcheck models before.h5 after.keras --input batch.npz --format json
      tdcheck models a.keras b.keras --atol logits=1e-4 --save-arrays x.npz --junit j.xml
      tdcheck models model.keras exported/model.onnx
    """
    lengths = _check_options(checks, seq, batch)
    atols, rtols = _tolerances(atol, "--atol"), _tolerances(rtol, "--rtol")
    output_format = _check_files(save_arrays, output, junit)
    from tdcheck.commands.models import compare_models, write_files
    from tdcheck.core.artifact_file import artifact_format

    if artifact_format(a) or artifact_format(b):  # a SavedModel folder, .onnx, .tflite
        from tdcheck.commands.export import compare_with_artifact

        if equal_nan or backend is not None:
            raise ConfigError("--equal-nan and --backend: only for two Keras models (an "
                              "artifact runs in its own runtime)")  # fmt: skip
        result = compare_with_artifact(
            a, b, list(inputs) or None, checks=checks, seq=lengths, batch=batch, atol=atols,
            rtol=rtols, seed=seed, unsafe=unsafe,
        )  # fmt: skip
        doc = result.to_dict()
        write_files(doc, result.arrays, save_arrays=save_arrays, junit=junit)
        emit(doc, format_, output, output_format, quiet)
        return result.exit_code

    result = compare_models(
        a, b, list(inputs) or None, checks=checks, seq=lengths, batch=batch, atol=atols,
        rtol=rtols, seed=seed, unsafe=unsafe, equal_nan=equal_nan, backend=backend,
        keep_arrays=save_arrays is not None,
    )  # fmt: skip
    doc = result.to_dict()
    write_files(doc, result.arrays, save_arrays=save_arrays, junit=junit)
    emit(doc, format_, output, output_format, quiet)
    return result.exit_code


COMMANDS = [scan_command, rewrite_command, models_command]
