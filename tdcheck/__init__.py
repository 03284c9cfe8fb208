"""tdcheck: is ``Dense(units)`` the same computation as ``TimeDistributed(Dense(units))``?

The package imports nothing heavy: TensorFlow is loaded only when a comparison runs.

>>> import tdcheck                                   # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)        # doctest: +SKIP
>>> bool(result)                                     # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tdcheck._version import __version__
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError, EnvironmentProblem, TdcheckError

if TYPE_CHECKING:
    from tdcheck.commands.compare import CompareRun

__all__ = [
    "CompareConfig",
    "ConfigError",
    "EnvironmentProblem",
    "TdcheckError",
    "__version__",
    "compare",
]


def compare(config: CompareConfig | None = None, **options: Any) -> CompareRun:
    """Run one comparison; see :func:`tdcheck.commands.compare.compare`."""
    from tdcheck.commands.compare import compare as _compare

    return _compare(config, **options)
