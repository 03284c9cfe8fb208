"""Whether to colour output: ``tdcheck --color auto|always|never``, NO_COLOR, FORCE_COLOR.

Kept apart from the renderers so that the command line can set it without importing them.
"""

from __future__ import annotations

import os
from typing import IO, Any

COLOR_MODES = ("auto", "always", "never")
_mode = "auto"


def set_color_mode(mode: str) -> None:
    """``always``/``never`` override everything; ``auto`` honours NO_COLOR, FORCE_COLOR, TTY."""
    global _mode
    _mode = mode


def is_terminal(file: IO[str] | None) -> bool:
    try:
        return file is not None and file.isatty()
    except (AttributeError, ValueError):
        return False


def color_enabled(file: IO[str] | None) -> bool:
    """Whether to colour what is written to ``file`` (https://no-color.org,
    https://force-color.org); ``None`` stands for a file that is never coloured (--output)."""
    if file is None:
        return False
    if _mode in ("always", "never"):
        return _mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return is_terminal(file)


def console_options(file: IO[str] | None) -> dict[str, Any]:
    """Rich Console arguments for colour as :func:`color_enabled` decides."""
    color = color_enabled(file)
    return {
        "force_terminal": color,
        "color_system": "auto" if color else None,
        "no_color": not color,
        "highlight": False,
    }
