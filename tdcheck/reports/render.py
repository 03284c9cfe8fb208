"""Rendering a :class:`~tdcheck.core.result.CompareResult` as a table, Markdown or JSON.

Tables are laid out by :func:`print_table` so that no value is ever cut or split: one line
per row when it fits, else the row's label on a line of its own with the numbers under it,
else one ``name value`` line per cell. Colour follows ``--color`` (:mod:`.color`); piped
output is never hard-wrapped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from tdcheck.core.backends import framework_text
from tdcheck.core.result import CompareResult, Comparison, exact_value, fmt
from tdcheck.reports.color import console_options, is_terminal

#: Width for tables rendered into a file (--output r.txt) and for pipes without $COLUMNS.
PIPE_WIDTH = 140
#: "Unlimited": prose is never wrapped when piped, so grep finds whole verdict lines.
NO_WRAP_WIDTH = 100_000


@contextlib.contextmanager
def report_console(
    file: IO[str], width: int | None = None, color: bool | None = None
) -> Iterator[Any]:
    """A Rich console for a report on ``file``.

    On a terminal: the terminal's width; prose wraps at words, tables choose a layout that
    fits (see :func:`print_table`). Piped or redirected: prose is never wrapped (a whole
    verdict line stays greppable) and tables fit ``$COLUMNS`` when it is set, else they take
    the width they need. Colour as ``--color`` decides (``color=False``: never, for files);
    trailing spaces are removed.
    """
    from rich.console import Console

    terminal = is_terminal(file)
    if width is None and not terminal:
        width = int(os.environ.get("COLUMNS", "") or 0) or NO_WRAP_WIDTH
    target: IO[str] = file if terminal else io.StringIO()
    options = console_options(None if color is False else file)
    console = Console(file=target, width=width, soft_wrap=not terminal, **options)
    yield console
    if isinstance(target, io.StringIO):
        file.write("".join(line.rstrip() + "\n" for line in target.getvalue().splitlines()))


Cell = Any  # str or rich.text.Text


def _text(cell: Cell) -> Any:
    from rich.text import Text

    return cell if isinstance(cell, Text) else Text(str(cell))


def _label_columns(label: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(range(label)) if isinstance(label, int) else label


def table_layout(
    headers: list[str], rows: list[list[Cell]], width: int, label: int | tuple[int, ...] = 1
) -> tuple[str, int]:
    """The layout and the gap between columns: ``flat`` (one line per row), ``stacked`` (the
    ``label`` columns, a count from the left or indices, on a line of their own and the other
    cells under them) or ``blocks`` (one ``header value`` line per cell); the first that fits
    ``width`` without cutting a cell, with two spaces between columns, else one."""
    widths = _widths(headers, rows)
    labels = _label_columns(label)
    rest = [w for i, w in enumerate(widths) if i not in labels]
    for layout, indent, columns in (("flat", 1, widths), ("stacked", 4, rest)):
        for gap in (2, 1):
            if columns and indent + sum(columns) + gap * (len(columns) - 1) <= width:
                return layout, gap
    return "blocks", 2


def _widths(headers: list[str], rows: list[list[Cell]]) -> list[int]:
    return [max([len(h), *(_text(row[i]).cell_len for row in rows)]) for i, h in enumerate(headers)]


def print_table(
    console: Any,
    headers: list[str],
    rows: list[list[Cell]],
    *,
    title: str | None = None,
    left: tuple[int, ...] = (0,),
    label: int | tuple[int, ...] = 1,
    footer: list[Cell] | None = None,
    row_styles: list[str | None] | None = None,
    legend: str | None = None,
) -> None:
    """Print a table that never cuts a cell or splits a number across lines.

    The layout is chosen by :func:`table_layout` for the console's width; ``left`` are the
    left-aligned columns (the others are numbers, right-aligned); ``legend`` explains
    abbreviated headers on a line of its own.
    """
    from rich.text import Text

    all_rows = rows + ([footer] if footer else [])
    layout, gap = table_layout(headers, all_rows, console.width, label)
    widths = _widths(headers, all_rows)
    styles = (row_styles or []) + [None] * (len(all_rows) - len(row_styles or []))

    def line(cells: list[Cell], columns: list[int], indent: str, style: str | None) -> Any:
        out = Text(indent)
        for n, i in enumerate(columns):
            cell = _text(cells[i]).copy()
            if style:
                cell.stylize(style)
            pad = " " * (widths[i] - cell.cell_len)
            out.append_text(Text(pad) + cell if i not in left else cell + Text(pad))
            if n < len(columns) - 1:
                out.append(" " * gap)
        out.rstrip()
        return out

    label_cols = list(_label_columns(label))
    others = [i for i in range(len(headers)) if i not in label_cols]
    if title:
        console.print(Text(title, style="bold"))
    if layout == "blocks":
        key = max((len(headers[i]) for i in others), default=0)
        for cells in all_rows:
            console.print(Text("  ".join(_text(cells[i]).plain for i in label_cols), style="bold"))
            for i in others:
                console.print(Text(f"    {headers[i]:<{key}}  ", style="dim") + _text(cells[i]))
    else:
        columns = list(range(len(headers)))
        if layout == "stacked":
            columns = others
            console.print(Text(" " + "  ".join(headers[i] for i in label_cols), style="bold"))
        indent = " " if layout == "flat" else "    "
        head = line(headers, columns, indent, "bold")
        console.print(head)
        console.print(Text(" " + "─" * (head.cell_len - 1), style="dim"))
        for n, (cells, style) in enumerate(zip(all_rows, styles, strict=True)):
            if footer and n == len(rows):
                console.print(Text(" " + "─" * (head.cell_len - 1), style="dim"))
            if layout == "stacked":
                console.print(
                    Text(" ") + Text("  ").join(_text(cells[i]) for i in label_cols), style=style
                )
            console.print(line(cells, columns, indent, style))
    if legend:
        console.print(Text(legend, style="dim"))
    console.print()


def shape_text(shape: Any) -> str:
    items = ["None" if s is None else str(s) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def tolerance_text(c: Comparison) -> str:
    s = c.stats
    if s.element_rule:
        return s.rule
    return "bitwise" if s.exact else f"{fmt(s.atol)} / {fmt(s.rtol)}"


def check_text(c: Comparison) -> str:
    """What was compared: ``output``, ``gradient input``, ``trained-weights head.kernel``."""
    return c.kind if c.quantity == "output" else f"{c.kind} {c.quantity}"


def comparison_fields(c: Comparison) -> list[tuple[str, str]]:
    """The columns of the comparisons table, as (header, text) pairs."""
    s = c.stats
    same = s.shape_a == s.shape_b
    shapes = shape_text(s.shape_a) if same else f"{shape_text(s.shape_a)} ≠ {shape_text(s.shape_b)}"
    if "n/a" in (s.dtype_a, s.dtype_b):  # one side raised instead of giving an output
        shapes = "raised"
    return [
        ("check", check_text(c)),
        ("pair", f"{c.a} vs {c.b}"),
        ("shape", shapes),
        ("max abs", fmt(s.max_abs_diff)),
        ("max rel", fmt(s.max_rel_diff)),
        ("mean abs", fmt(s.mean_abs_diff)),
        ("max ULP", fmt(s.max_ulp)),
        ("mismatched", f"{s.mismatched}/{s.total}"),
        ("bitwise", fmt(s.bitwise_equal)),
        ("atol / rtol", tolerance_text(c)),
        ("margin", fmt(s.margin)),
        ("result", "PASS" if s.passed else "FAIL"),
    ]


def margin_of(c: Comparison) -> float | None:
    """max |diff| / allowed (<= 1 passes), when the judge reports it (else None)."""
    value = getattr(c.stats, "margin", None)
    return None if value is None else float(value)


#: The compact table's short headers, explained by :data:`LEGEND`.
SHORT = {"max ULP": "ULP", "mismatched": "mism.", "bitwise": "bit"}
LEGEND = {
    "ULP": "ULP: largest difference in units in the last place",
    "mism.": "mism.: elements outside the tolerance / all",
    "bit": "bit: bitwise identical",
    "margin": "margin: max |diff| / allowed difference (<= 1 passes)",
}
#: Columns of the default (compact) comparisons table; --wide shows every field.
COMPACT = ("check", "pair", "shape", "max abs", "max rel", "max ULP", "mismatched", "bitwise",
           "margin", "result")  # fmt: skip


def _dropped_columns(result: CompareResult) -> set[str]:
    """Columns that say nothing for this report: one check kind, one tolerance for all."""
    drop = set()
    if all(c.kind == "output" and c.quantity == "output" for c in result.comparisons):
        drop.add("check")
    if len({tolerance_text(c) for c in result.comparisons}) <= 1:
        drop.add("atol / rtol")
    return drop


def tolerance_line(result: CompareResult) -> str:
    """The pass rule, with the numbers when every comparison shares them."""
    texts = {tolerance_text(c) for c in result.comparisons}
    if any(c.stats.element_rule for c in result.comparisons):
        return "pass rule: |a - b| <= allowed: an error bound or atol + rtol * |b| (docs/checks.md)"
    if texts == {"bitwise"}:
        return "pass rule: bitwise identity (--exact)"
    if len(texts) == 1:
        c = result.comparisons[0]
        return (
            f"pass rule: |a - b| <= atol + rtol * |b| with atol {fmt(c.stats.atol)}, "
            f"rtol {fmt(c.stats.rtol)}"
        )
    return "pass rule: |a - b| <= atol + rtol * |b| (tolerances per row)"


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Unicode bars scaled to the largest value (all zero: a flat line)."""
    top = max(values, default=0.0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(
        SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in values
    )


def drift_rows(training: dict[str, Any], limit: int = 10) -> list[tuple[int, list[float]]]:
    """Up to ``limit`` (step, [drift per variant]) rows, evenly spaced, always the last step."""
    steps = training["steps"]
    picks = sorted({round(i * (steps - 1) / max(1, limit - 1)) for i in range(min(limit, steps))})
    variants = list(training["drift"])
    return [(p + 1, [training["drift"][v][p] for v in variants]) for p in picks]


def training_lines(training: dict[str, Any]) -> list[str]:
    ref = training["reference"]
    losses = training["losses"][ref]
    return [
        f"Training: {training['steps']} {training['optimizer']} steps, learning rate "
        f"{fmt(training['learning_rate'])}, loss {training['loss']}; {ref} loss "
        f"{fmt(losses[0])} -> {fmt(losses[-1])}",
        f"drift: max |output - {ref}| over valid positions after each step",
    ]


def failure_lines(result: CompareResult) -> list[str]:
    """For each failed comparison: count, percentage, worst element, the tolerance needed."""
    lines = []
    for c in result.failures:
        s = c.stats
        if s.note:
            lines.append(f"{c.label}: {s.note}")
            continue
        assert s.worst_index is not None
        text = (
            f"{c.label}: {s.mismatched}/{s.total} elements mismatched "
            f"({s.mismatch_percent:.1f}%); worst at {list(s.worst_index)}: "
            f"{exact_value(s.worst_a, s.dtype_a)} vs {exact_value(s.worst_b, s.dtype_b)} "
            f"(|diff| {fmt(s.max_abs_diff)}"
        )
        if s.exact:
            text += ", bitwise identity demanded)"
        elif s.element_rule:
            text += f", margin {fmt(s.margin)} over the {s.rule} rule)"
        else:
            allowed = s.atol + s.rtol * abs(s.worst_b or 0.0)
            text += (
                f", allowed {fmt(allowed)}); would pass with atol >= {fmt(s.min_atol)} "
                f"at rtol {fmt(s.rtol)}, or rtol >= {fmt(s.min_rtol)} at atol {fmt(s.atol)}"
            )
        lines.append(text)
    return lines


def title(result: CompareResult) -> str:
    cfg, env = result.config, result.environment
    trunk = "no trunk" if cfg["rnn"] == "none" else f"{cfg['rnn']}({cfg['hidden']})"
    return (
        f"tdcheck compare: input ({cfg['batch']}, {cfg['seq']}, {cfg['features']}) -> {trunk} "
        f"-> {cfg['units']} units; {cfg['dtype']} on {env['device']}, "
        f"{framework_text(env)}"
    )


def render_json(result: CompareResult) -> str:
    return result.to_json() + "\n"


def render_markdown(result: CompareResult) -> str:
    out = [f"## {title(result)}", "", "### Layers", ""]
    out.append("| layer | type | output shape | params | connected to |")
    out.append("|---|---|---|---:|---|")
    for row in result.layers:
        out.append(
            f"| {row['name']} | {row['type']} | {shape_text(row['output_shape'])} | "
            f"{row['params']:,} | {row['connected_to']} |"
        )
    out.append(f"| **total** | | | **{result.total_params:,}** | |")
    rule = tolerance_line(result).replace("pass rule: ", "")
    out += ["", "### Comparisons", "", f"pass rule: `{rule}`", ""]
    headers = [h for h, _ in comparison_fields(result.comparisons[0])] if result.comparisons else []
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    for c in result.comparisons:
        cells = [text for _, text in comparison_fields(c)]
        cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    if result.training and result.training["drift"]:
        variants = list(result.training["drift"])
        out += ["", "### Training", "", *training_lines(result.training), ""]
        out.append("| step | " + " | ".join(variants) + " |")
        out.append("|---:|" + "---:|" * len(variants))
        for step, values in drift_rows(result.training):
            out.append(f"| {step} | " + " | ".join(fmt(v) for v in values) + " |")
    out += ["", f"**{result.verdict()}**"]
    failures = failure_lines(result)
    if failures:
        out += [""] + [f"- {line}" for line in failures]
    if result.power:
        out += ["", "```text", *result.power_lines(), "```"]
    if result.notes:
        out += [""] + [f"> {note}" for note in result.notes]
    return "\n".join(out) + "\n"


def _result_text(passed: bool) -> Any:
    from rich.text import Text

    return Text("PASS" if passed else "FAIL", style="bold green" if passed else "bold red")


KIND_TITLES = {
    "output": "Outputs",
    "gradient": "Gradients of the loss",
    "trained-weights": "Weights after training",
    "trained-output": "Outputs after training",
    "cross-device": "Across devices",
}


def _groups(result: CompareResult) -> list[tuple[str, list[Comparison]]]:
    """Comparisons grouped by kind, in order of first appearance."""
    groups: dict[str, list[Comparison]] = {}
    for c in result.comparisons:
        groups.setdefault(c.kind, []).append(c)
    return [(kind, items) for kind, items in groups.items()]


def _comparison_rows(
    result: CompareResult, items: list[Comparison], wide: bool
) -> tuple[list[str], list[list[Any]], int]:
    """Headers, rows and the number of label columns (pair, and "of" for gradients)."""
    skip = _dropped_columns(result) | {"check"}
    if not wide:
        skip |= {h for h, _ in comparison_fields(items[0]) if h not in COMPACT}
        if all(c.stats.shape_a == c.stats.shape_b and "n/a" not in (c.stats.dtype_a,
               c.stats.dtype_b) for c in items):  # fmt: skip
            skip.add("shape")
    with_quantity = any(c.quantity != "output" for c in items)
    headers = [h for h, _ in comparison_fields(items[0]) if h not in skip]
    if any(margin_of(c) is not None for c in items) and "margin" not in headers:
        headers.insert(headers.index("result"), "margin")
    rows = []
    for c in items:
        fields = dict(comparison_fields(c))
        margin = margin_of(c)
        fields.setdefault("margin", "n/a" if margin is None else fmt(margin))
        cells: list[Any] = [fields[h] for h in headers]
        cells[-1] = _result_text(c.passed)
        if with_quantity:
            cells.insert(1, c.quantity)
        rows.append(cells)
    if with_quantity:
        headers.insert(1, "of")
    if not wide:
        headers = [SHORT.get(h, h) for h in headers]
    return headers, rows, 2 if with_quantity else 1


def render_table(
    result: CompareResult,
    file: IO[str],
    *,
    width: int | None = None,
    wide: bool = False,
    color: bool | None = None,
) -> None:
    """Write the report's tables to ``file`` (colour as ``--color`` decides).

    The comparisons table shows the key columns (``wide``: every column); each table
    takes the layout that fits the width (:func:`print_table`), never cutting a number.
    """
    with report_console(file, width, color) as console:
        _render_table(result, console, wide)


def _render_table(result: CompareResult, console: Any, wide: bool = False) -> None:
    from rich.text import Text

    console.print(Text(title(result), style="bold"))
    console.print()
    print_table(
        console,
        ["layer", "type", "output shape", "params", "connected to"],
        [
            [row["name"], row["type"], shape_text(row["output_shape"]), f"{row['params']:,}",
             row["connected_to"]]
            for row in result.layers
        ],
        title="Layers", left=(0, 1, 2, 4), label=2,
        footer=["total", "", "", f"{result.total_params:,}", ""],
    )  # fmt: skip

    groups = _groups(result)
    used: set[str] = set()
    for kind, items in groups:
        headers, rows, label = _comparison_rows(result, items, wide)
        used |= set(headers)
        name = "Comparisons" if len(groups) == 1 else KIND_TITLES.get(kind, kind)
        print_table(console, headers, rows, title=name, label=label,
                    left=tuple(range(label)) + tuple(i for i, h in enumerate(headers)
                                                     if h in ("shape", "atol / rtol")))  # fmt: skip
    legend = [text for short, text in LEGEND.items() if short in used]
    if legend:
        console.print(Text("; ".join(legend), style="dim"))
    console.print(Text(tolerance_line(result), style="dim"))

    if result.training and result.training["drift"]:
        console.print()
        for line in training_lines(result.training):
            console.print(Text(line))
        variants = list(result.training["drift"])
        drift_table = [
            [str(step), *(fmt(v) for v in values)] for step, values in drift_rows(result.training)
        ]
        drift_table.append(["", *(sparkline(result.training["drift"][v]) for v in variants)])
        print_table(console, ["step", *variants], drift_table, left=())

    style = "bold green" if result.passed else "bold red"
    console.print(Text(result.verdict(), style=style))
    for line in failure_lines(result):
        console.print(Text("  " + line))
    for line in result.power_lines():
        console.print(Text(line))
    for note in result.notes:
        console.print(Text("note: " + note, style="dim"))


def render_document(
    doc: dict[str, Any],
    fmt_name: str,
    markdown: Callable[[dict[str, Any]], str],
    table: Callable[..., None],
) -> str:
    """A sweep or bench JSON document as text in one format (tables without colour, 140 wide)."""
    if fmt_name == "json":
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if fmt_name == "markdown":
        return markdown(doc)
    buffer = io.StringIO()
    table(doc, buffer, width=PIPE_WIDTH, color=False)
    return buffer.getvalue()


def render(
    result: CompareResult, fmt_name: str, *, width: int | None = None, wide: bool = False
) -> str:
    """The report as text in one format (``table`` is rendered without colour)."""
    if fmt_name == "json":
        return render_json(result)
    if fmt_name == "markdown":
        return render_markdown(result)
    buffer = io.StringIO()
    render_table(result, buffer, width=width or PIPE_WIDTH, wide=wide, color=False)
    return buffer.getvalue()
