"""Options that choose where a comparison runs: backend, Keras version, TF32, baselines.

Declared here and applied by ``tdcheck compare`` (their values reach
:class:`~tdcheck.core.config.CompareConfig`). Nothing here imports a framework.
"""

from __future__ import annotations

import click

from tdcheck.cli.options import Decorator
from tdcheck.core.backends import BACKENDS, ENGINE_NAMES, TF32_CHOICES

BACKEND_OPTIONS: list[Decorator] = [
    click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default=None,
        help="Keras 3 backend to run on (each runs in its own process).  "
        "[default: $KERAS_BACKEND, else tensorflow]",
    ),
    click.option(
        "--keras",
        type=click.Choice(["2", "3"]),
        default="3",
        show_default=True,
        help="Keras major version; 2 runs tf_keras (TensorFlow only).",
    ),
    click.option(
        "--backends",
        default=None,
        metavar="LIST",
        help="Run on each of these (comma list from " + ", ".join(ENGINE_NAMES) + ") in "
        "parallel and compare each with the first (kind cross-backend).",
    ),
    click.option(
        "--tf32",
        type=click.Choice(TF32_CHOICES),
        default="default",
        show_default=True,
        help="TF32 for float32 matmuls on an Ampere+ GPU: the framework's default, on or off.",
    ),
    click.option(
        "--baseline",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="PATH.npz",
        help="Judge outputs (and gradients) against an archive written by --save-arrays "
        "(kind baseline); refused if its configuration or input differs.",
    ),
]
