"""``--help`` in named groups, exit codes on every command, "did you mean" for option values.

tdcheck stays on Click's own help machinery (:class:`click.HelpFormatter` sections) rather
than rich-click or click-option-group: the help remains plain text (greppable, right at any
width and in ASCII-only terminals, the source of docs/cli.md) and no dependency is added.
Options are grouped by name (:data:`GROUPS`); an option not listed lands in "Other options".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import click

from tdcheck.core.config import did_you_mean

#: Help sections, in order, and the options each holds (by long name, without ``--``).
GROUPS: dict[str, tuple[str, ...]] = {
    "Model options": (
        "features", "hidden", "units", "seq", "batch", "rnn", "dtype", "variants",
        "initializer", "bias-initializer", "activation", "weights", "time-dim", "with-trunk",
    ),
    "Input options": ("input", "seed", "lengths"),
    "Numerics options": (
        "atol", "rtol", "exact", "oracle", "grad", "train-steps", "optimizer",
        "learning-rate", "deterministic", "equal-nan", "power", "baseline", "checks",
    ),
    "Run options": (
        "device", "max-memory", "mode", "repeats", "warmup", "backward", "shard", "fail-fast",
        "max-cases", "k", "list", "backend", "backends", "keras", "tf32", "inference-only",
        "no-timing", "dry-run", "force", "unsafe",
    ),
    "Output options": ("format", "output", "junit", "save-arrays", "plot", "quiet", "wide"),
}  # fmt: skip
OTHER = "Other options"
_GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}
_NAME = re.compile(r"(?:^|[\s,/])--?([a-zA-Z0-9][a-zA-Z0-9-]*)")

#: The exit codes each command can give, shown under its help when its text lacks them.
EXIT_CODES = {
    "compare": "Exit codes: 0 every comparison passed, 1 a comparison failed, 2 bad usage or "
    "input, 3 environment problem (e.g. --device gpu without a GPU), 130 interrupted.",
}
DEFAULT_EXIT_CODES = (
    "Exit codes: 0 success, 1 a check failed, 2 bad usage or input, 3 environment problem, "
    "130 interrupted."
)


def option_group(term: str) -> str:
    """The section of a help row such as ``--hidden INT``, ``-q, --quiet`` or ``-k EXPR``:
    the group of its first name that has one."""
    for name in _NAME.findall(term):
        if name in _GROUP_OF:
            return _GROUP_OF[name]
    return OTHER


class GroupedHelpFormatter(click.HelpFormatter):
    """Writes the "Options" section as one section per group of :data:`GROUPS`."""

    _options_pending = False

    def write_heading(self, heading: str) -> None:
        if heading == "Options":  # written per group by write_dl below
            self._options_pending = True
            return
        super().write_heading(heading)

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        if not self._options_pending:
            super().write_dl(list(rows), col_max, col_spacing)
            return
        self._options_pending = False
        sections: dict[str, list[tuple[str, str]]] = {name: [] for name in [*GROUPS, OTHER]}
        for term, text in rows:
            sections[option_group(term)].append((term, text))
        if not any(sections[name] for name in GROUPS):  # e.g. the group: plain "Options"
            sections = {"Options": sections[OTHER]}
        self.dedent()
        first = True
        for name, items in sections.items():
            if not items:
                continue
            if not first:
                self.write_paragraph()
            first = False
            super().write_heading(name)
            self.indent()
            super().write_dl(items, col_max, col_spacing)
            self.dedent()
        self.indent()


class TdcheckContext(click.Context):
    formatter_class = GroupedHelpFormatter


class SuggestingChoice(click.Choice):
    """A Click choice whose error names the closest choice: ``(did you mean 'lstm'?)``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            hint = did_you_mean(str(value), [str(choice) for choice in self.choices])
            if not hint:
                raise
            raise click.BadParameter(exc.message.rstrip(".") + hint, ctx, param) from None


def decorate(command: click.Command) -> None:
    """Grouped help, an exit-codes epilog and suggesting choices for one command."""
    command.context_class = TdcheckContext
    if "Exit codes" not in (command.help or "") and not command.epilog:
        command.epilog = EXIT_CODES.get(command.name or "", DEFAULT_EXIT_CODES)
    for param in command.params:
        if isinstance(param.type, click.Choice) and not isinstance(param.type, SuggestingChoice):
            param.type = SuggestingChoice(param.type.choices, param.type.case_sensitive)
