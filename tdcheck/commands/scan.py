"""The Python API behind ``tdcheck scan``: find TimeDistributed layers in saved models.

Reads only the files' configs (no TensorFlow, no Keras). A result's truth value is the
CI gate: true when nothing in it could be rewritten.

>>> import tdcheck                                   # doctest: +SKIP
>>> result = tdcheck.scan("model.keras")             # doctest: +SKIP
>>> [(t.path, t.verdict.verdict) for t in result.layers]   # doctest: +SKIP
[('model/td', 'rewritable')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tdcheck.core import rules
from tdcheck.core.model_file import (
    WrappedLayer,
    keras2_conversion,
    model_name,
    read_model_file,
    time_distributed_layers,
)
from tdcheck.core.probes import export_warning
from tdcheck.core.result import SCHEMA_VERSION, to_jsonable
from tdcheck.errors import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, ConfigError


@dataclass
class ScanResult:
    """One file: its format, model, and every TimeDistributed layer with its verdict."""

    path: str
    format: str | None = None
    model: str | None = None
    model_class: str | None = None
    keras_version: str | None = None
    size_bytes: int = 0
    layers: list[WrappedLayer] = field(default_factory=list)
    error: str | None = None
    export_warning: str | None = None  # TimeDistributed on a variable-length axis
    #: Why ``tdcheck rewrite`` cannot load this file, although its layers are rewritable
    #: (a Keras 2 argument Keras 3 cannot express, e.g. ``time_major=True``); None if it can.
    rewrite_blocked: str | None = None

    @property
    def rewritable(self) -> list[WrappedLayer]:
        return [t for t in self.layers if t.verdict.rewritable]

    def __bool__(self) -> bool:
        return self.error is None and not self.rewritable

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_USAGE
        return EXIT_FAIL if self.rewritable else EXIT_PASS

    def counts(self) -> dict[str, int]:
        return {v: sum(t.verdict.verdict == v for t in self.layers) for v in rules.VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "model": self.model,
            "model_class": self.model_class,
            "keras_version": self.keras_version,
            "size_bytes": self.size_bytes,
            "error": self.error,
            "counts": self.counts(),
            "time_distributed": [t.to_dict() for t in self.layers],
            "export_warning": self.export_warning,
            "rewrite_blocked": self.rewrite_blocked,
        }


@dataclass
class ScanReport:
    """Several files; exit 2 when any was unreadable, else 1 when anything is rewritable."""

    files: list[ScanResult]

    def __bool__(self) -> bool:
        return all(self.files)

    @property
    def exit_code(self) -> int:
        return max((f.exit_code for f in self.files), default=EXIT_PASS)

    def verdict(self) -> str:
        found = sum(len(f.rewritable) for f in self.files)
        total = sum(len(f.layers) for f in self.files)
        bad = [f for f in self.files if f.error]
        files = len(self.files)
        text = (
            f"{found} of {total} TimeDistributed layers rewritable in {files} "
            f"{'file' if files == 1 else 'files'}"
        )
        blocked = sum(len(f.rewritable) for f in self.files if f.rewrite_blocked)
        if found > blocked:
            text += " (tdcheck rewrite IN OUT replaces them)"
        if blocked:
            text += f"; {blocked} of them in files tdcheck rewrite cannot load (see the notes)"
        if bad:
            text += f"; {len(bad)} unreadable"
        return text

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "command": "scan",
                "exit_code": self.exit_code,
                "verdict": self.verdict(),
                "files": [f.to_dict() for f in self.files],
            }
        )


def scan(path: str) -> ScanResult:
    """Scan one file; raises :class:`ConfigError` when it cannot be read as a model."""
    model = read_model_file(path)
    try:
        layers = time_distributed_layers(model.config)
    except ConfigError as exc:  # a config of the wrong shape: exit 2 naming the file
        raise ConfigError(f"{path}: {exc.message}") from None
    blocked = None
    if model.format == "h5":
        try:  # what rewrite does first with a Keras 2 file
            keras2_conversion(model.config, path)
        except ConfigError as exc:
            blocked = "tdcheck rewrite cannot load this file: " + exc.message.removeprefix(
                f"{path}: "
            )
    return ScanResult(
        path=path,
        format=model.format,
        model=model_name(model.config),
        model_class=str(model.config.get("class_name")),
        keras_version=model.keras_version,
        size_bytes=model.size_bytes,
        layers=layers,
        export_warning=export_warning([(t.path, t.input_shape) for t in layers]),
        rewrite_blocked=blocked if layers else None,
    )


def scan_files(paths: Sequence[str]) -> ScanReport:
    """Scan every path; an unreadable file becomes a result with its ``error`` set."""
    results = []
    for path in paths:
        try:
            results.append(scan(path))
        except ConfigError as exc:
            results.append(ScanResult(path=path, error=exc.message))
    return ScanReport(results)
