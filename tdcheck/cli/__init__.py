"""The ``tdcheck`` command line: parses options, calls the API, renders.

One module per command (``compare``, ``sweep`` and ``merge``, ``bench``); shared option
declarations live in :mod:`tdcheck.cli.options`.

No numerics live here, and nothing heavy is imported at module level:
``tdcheck --help``, ``--version`` and argument errors never load TensorFlow.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import sys
from typing import Any

import click

from tdcheck._version import __version__
from tdcheck.cli.help import TdcheckContext, decorate
from tdcheck.errors import EXIT_ENVIRONMENT, EXIT_USAGE, TdcheckError, one_line
from tdcheck.reports.color import COLOR_MODES, set_color_mode

#: A reader that closed the pipe early: what a process killed by SIGPIPE reports (128 + 13).
EXIT_BROKEN_PIPE = 141
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _error(message: str, code: int) -> int:
    """Print one line on stderr and return the exit code (control characters escaped)."""
    click.echo(f"tdcheck: error: {one_line(message)}", err=True)
    return code


class Interrupted(Exception):
    """Ctrl-C inside a command, carried past Click (which would print a blank line first)."""


class TdcheckGroup(click.Group):
    """A group whose errors are one line on stderr with tdcheck's exit codes."""

    context_class = TdcheckContext

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None

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
        except (Interrupted, KeyboardInterrupt, click.Abort):
            code = _error("interrupted", 130)
        except BrokenPipeError:  # the reader closed the pipe: nothing more to say, quietly
            _silence_stdout()
            code = EXIT_BROKEN_PIPE
        except SystemExit:  # Click answers a closed pipe (EPIPE) with exit 1
            if not type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
                raise
            _silence_stdout()
            code = EXIT_BROKEN_PIPE
        except Exception as exc:  # TensorFlow failing at run time (e.g. out of memory), or a bug
            if os.environ.get("TDCHECK_DEBUG", "") not in ("", "0"):
                raise
            from tdcheck.errors import error_text

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
@click.option(
    "--color",
    type=click.Choice(COLOR_MODES),
    default="auto",
    show_default=True,
    help="Colour the report and progress: auto (on a terminal, unless NO_COLOR is set; "
    "FORCE_COLOR forces it), always (e.g. GitHub Actions logs), never.",
)
def cli(color: str) -> None:
    """Check that Keras heads are the same computation: Dense vs TimeDistributed(Dense).

    \b
    Example:
      tdcheck compare --hidden 5 --seq 3
      tdcheck --color always sweep --hidden 4,8 --junit report.xml
    Exit codes: 0 all comparisons pass, 1 some comparison fails, 2 bad usage or
    input, 3 environment problem (e.g. --device gpu without a GPU), 130
    interrupted, 141 the reader closed the pipe before the report was written.
    Set TDCHECK_DEBUG=1 to see TensorFlow's logs and full tracebacks.
    Shell completion (bash; zsh_source and fish_source alike):
      eval "$(_TDCHECK_COMPLETE=bash_source tdcheck)"
    """
    set_color_mode(color)


#: ASCII stand-ins for the few non-ASCII characters tdcheck prints, used when the
#: standard streams cannot encode them (``PYTHONIOENCODING=ascii``, a C locale).
ASCII_FALLBACK = {
    "×": "x", "–": "-", "—": "-", "…": "...", "≠": "!=", "≤": "<=", "≥": ">=", "µ": "u",
    "─": "-", "━": "-", "│": "|", "┃": "|", "╷": "|", "╵": "|", "█": "#", "±": "+/-",
    "→": "->", "▁": "_", "▂": "_", "▃": "=", "▄": "=", "▅": "=", "▆": "#", "▇": "#",
    "‘": "'", "’": "'", "“": '"', "”": '"', "·": ".",
}  # fmt: skip


def _ascii_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(ASCII_FALLBACK.get(ch, "?") for ch in bad), exc.end


codecs.register_error("tdcheck-ascii", _ascii_fallback)


def prepare_streams() -> None:
    """Make the standard streams safe to use, whatever state they arrive in.

    * A closed descriptor 0, 1 or 2 (``tdcheck compare >&-``) is reopened on ``/dev/null``, so
      the report is dropped rather than the run failing, and no file TensorFlow opens later
      can land on descriptor 1 or 2. The run still exits with its verdict.
    * A stream that cannot encode a character (``PYTHONIOENCODING=ascii``) writes an ASCII
      stand-in (``×`` -> ``x``, ``…`` -> ``...``) instead of raising.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # cannot happen when the lower descriptors are open
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="tdcheck-ascii")


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so Python's final flush stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (a CI job cancelled or timed out) stops tdcheck as Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point (also ``python -m tdcheck``)."""
    prepare_streams()
    with contextlib.suppress(ValueError, OSError):  # not the main thread: leave it alone
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(prog_name="tdcheck", standalone_mode=False)
    except BrokenPipeError:  # the reader went away (``tdcheck compare | head -1``)
        _silence_stdout()
        code = EXIT_BROKEN_PIPE
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
        except BrokenPipeError:  # the reader went away before the last bytes
            _silence_stdout()
            code = code or EXIT_BROKEN_PIPE
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


from tdcheck.cli import bench, compare, env, sweep  # noqa: E402  (each module adds its commands)
from tdcheck.cli import export as _export  # noqa: E402
from tdcheck.cli import models as _models  # noqa: E402

for _module in (compare, sweep, bench, env, _models, _export):
    for _command in _module.COMMANDS:
        decorate(_command)
        cli.add_command(_command)
decorate(cli)
