"""Errors that tdcheck reports to the user, each with the exit code it maps to.

Exit codes: 0 every comparison passed, 1 some comparison failed, 2 bad usage or
bad input, 3 an environment problem (no GPU, a missing optional dependency).
"""

from __future__ import annotations

import re

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``...): a file name
    holding a newline or an escape sequence cannot split or recolour an error line.

    >>> one_line("no such file 'a\\nb'")
    "no such file 'a\\\\nb'"
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TdcheckError(Exception):
    """Base class: a one-line message for the user and an exit code (the message is kept on
    one line: control characters in it, e.g. from a file name, are escaped)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        message = one_line(str(message))
        super().__init__(message)
        self.message = message


class ConfigError(TdcheckError):
    """Bad usage or bad input (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(TdcheckError):
    """The machine cannot do what was asked, e.g. no GPU (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


def error_text(exc: BaseException) -> str:
    """One line for a TensorFlow error: its type and its own message, without graph noise.

    >>> error_text(ValueError("{{function_node f}} slice index 10 out of bounds."))
    'ValueError: slice index 10 out of bounds.'
    """
    text = getattr(exc, "message", None) or str(exc)
    text = text.split("\n\t [[")[0].split("\t [[")[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if "Detected at node" in text:  # a graph error: the op's own message comes last
        lines = lines[-1:]
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", " ".join(lines))
    return f"{type(exc).__name__}: {message[:300] or 'no message'}"
