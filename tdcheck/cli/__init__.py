"""The ``tdcheck`` command line: parses options, calls the API, renders.

One module per command (``compare``, ``sweep`` and ``merge``, ``bench``); shared option
declarations live in :mod:`tdcheck.cli.options`.

No numerics live here, and nothing heavy is imported at module level:
``tdcheck --help``, ``--version`` and argument errors never load TensorFlow.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tdcheck._version import __version__
from tdcheck.errors import EXIT_ENVIRONMENT, EXIT_USAGE, TdcheckError

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
            from tdcheck.engines.tensorflow import error_text

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


from tdcheck.cli import bench, compare, env, sweep  # noqa: E402  (each module adds its commands)
from tdcheck.cli import models as _models  # noqa: E402

for _module in (compare, sweep, bench, env, _models):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
