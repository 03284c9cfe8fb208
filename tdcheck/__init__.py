"""tdcheck: is ``Dense(units)`` the same computation as ``TimeDistributed(Dense(units))``?

The package imports nothing heavy: TensorFlow is loaded only when a comparison runs.

>>> import tdcheck                                   # doctest: +SKIP
>>> result = tdcheck.compare(hidden=5, seq=3)        # doctest: +SKIP
>>> bool(result)                                     # doctest: +SKIP
True

Arguments of the wrong type raise :class:`TypeError` naming the argument
(:mod:`tdcheck.core.api_args`); bad values raise :class:`ConfigError` (a ValueError's sibling,
exit 2 on the command line).

For your own saved models (docs/models.md): :func:`scan` (no TensorFlow), :func:`rewrite`,
:func:`compare_models` and, for test suites, :func:`assert_equivalent`; :func:`export`
writes a deployment artifact (SavedModel, ONNX, LiteRT) that is right (docs/deploy.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tdcheck._version import __version__
from tdcheck.core.config import CompareConfig
from tdcheck.errors import ConfigError, EnvironmentProblem, TdcheckError

if TYPE_CHECKING:
    from tdcheck.commands.compare import CompareRun
    from tdcheck.commands.export import ExportResult
    from tdcheck.commands.models import ModelsResult
    from tdcheck.commands.rewrite import RewriteResult
    from tdcheck.commands.scan import ScanResult

__all__ = [
    "CompareConfig",
    "ConfigError",
    "EnvironmentProblem",
    "TdcheckError",
    "__version__",
    "assert_equivalent",
    "compare",
    "compare_models",
    "export",
    "rewrite",
    "scan",
]


def __dir__() -> list[str]:
    """The public names only (not ``Any``, ``TYPE_CHECKING``, ``annotations``, submodules)."""
    return sorted(__all__)


def _keywords(function: str, options: dict[str, Any], *targets: Any) -> None:
    """TypeError with "did you mean" for an option none of ``targets`` takes (the CLI
    suggests the right name; so does the API)."""
    import inspect

    from tdcheck.core.config import check_keywords

    allowed = [
        name
        for target in targets
        for name, p in inspect.signature(target).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    check_keywords(function, options, allowed)


def compare(config: CompareConfig | None = None, **options: Any) -> CompareRun:
    """Run one comparison; see :func:`tdcheck.commands.compare.compare`."""
    import dataclasses

    from tdcheck.commands.compare import compare as _compare
    from tdcheck.core.api_args import check_compare_options
    from tdcheck.core.config import check_keywords

    check_keywords("compare", options, [f.name for f in dataclasses.fields(CompareConfig)])
    check_compare_options(config, options)
    return _compare(config, **options)


def scan(path: str) -> ScanResult:
    """Find TimeDistributed layers in a saved model, without TensorFlow; see
    :func:`tdcheck.commands.scan.scan`."""
    from tdcheck.commands.scan import scan as _scan
    from tdcheck.core.api_args import check_path

    check_path("scan", "path", path)
    return _scan(os.fspath(path))


def rewrite(model: Any, out: str | None = None, **options: Any) -> RewriteResult:
    """Replace rewritable TimeDistributed layers, verify, time, write; see
    :func:`tdcheck.commands.rewrite.rewrite`."""
    from tdcheck.commands.rewrite import rewrite as _rewrite
    from tdcheck.core.api_args import check_inputs, check_model, check_model_options, check_path

    _keywords("rewrite", options, _rewrite)
    check_model("rewrite", "model", model)
    check_path("rewrite", "out", out, optional=True)
    check_inputs("rewrite", options.get("inputs"))
    check_model_options("rewrite", options)
    return _rewrite(model, None if out is None else os.fspath(out), **options)


def compare_models(a: Any, b: Any, inputs: Any = None, **options: Any) -> ModelsResult:
    """Compare two models on the same inputs; see :func:`tdcheck.commands.models.compare_models`.

    A or B may be an artifact path (SavedModel folder, ``.onnx``, ``.tflite``)."""
    from tdcheck.commands.models import compare_models as _compare_models
    from tdcheck.core.artifact_file import artifact_format

    run: Callable[..., ModelsResult] = _compare_models
    if artifact_format(a) or artifact_format(b):
        from tdcheck.commands.export import compare_with_artifact

        run = compare_with_artifact
    _keywords("compare_models", options, run)
    _check_models_call("compare_models", a, b, inputs, options)
    return run(a, b, inputs, **options)


def assert_equivalent(a: Any, b: Any, inputs: Any = None, **options: Any) -> ModelsResult:
    """Raise AssertionError (torch.testing style) unless ``b`` computes what ``a`` does
    (either may be an artifact path)."""
    from tdcheck.commands.models import assert_equivalent as _assert_equivalent
    from tdcheck.commands.models import compare_models as _compare_models
    from tdcheck.core.artifact_file import artifact_format

    check: Callable[..., ModelsResult] = _assert_equivalent
    run: Callable[..., ModelsResult] = _compare_models
    if artifact_format(a) or artifact_format(b):
        from tdcheck.commands.export import assert_equivalent_artifact, compare_with_artifact

        check, run = assert_equivalent_artifact, compare_with_artifact
    _keywords("assert_equivalent", options, check, run)
    _check_models_call("assert_equivalent", a, b, inputs, options)
    return check(a, b, inputs, **options)


def export(model: Any, out: str, **options: Any) -> ExportResult:
    """Export a Keras model as a SavedModel/ONNX/LiteRT artifact that is right for every
    batch and length, verified in its runtime; see :func:`tdcheck.commands.export.export`."""
    from tdcheck.commands.export import export as _export

    _keywords("export", options, _export)
    return _export(model, out, **options)


def _check_models_call(function: str, a: Any, b: Any, inputs: Any, options: dict[str, Any]) -> None:
    """TypeError naming the argument for a wrong type (see :mod:`tdcheck.core.api_args`)."""
    from tdcheck.core.api_args import check_inputs, check_model, check_model_options

    check_model(function, "a", a)
    check_model(function, "b", b)
    check_inputs(function, inputs)
    check_model_options(function, options)
