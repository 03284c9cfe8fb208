"""Rendering a :class:`~tdcheck.reports.result.CompareResult` as a table, Markdown or JSON.

Tables use Rich, which honours ``NO_COLOR`` and writes plain text when the
output is not a terminal. When the comparisons table is wider than
the terminal it is shown as one block per pair instead, so a narrow terminal stays readable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from tdcheck.reports.result import CompareResult, Comparison, fmt

PIPE_WIDTH = 140


def exact_value(value: float | None, dtype: str) -> str:
    """The shortest text that round-trips ``value`` in its own dtype (float32: 9 digits)."""
    if value is None:
        return "n/a"
    try:
        import numpy as np

        return str(np.dtype(dtype).type(value))
    except (TypeError, ValueError):
        return repr(value)


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def report_console(file: IO[str], width: int | None = None) -> Iterator[Any]:
    """A Rich console for a report on ``file``.

    On a terminal: colour (unless ``NO_COLOR``) and the terminal's width. Piped or redirected:
    plain text at ``$COLUMNS`` or 140 columns, with the padding Rich adds to every line
    removed when the block ends.
    """
    from rich.console import Console

    terminal = _is_terminal(file)
    if width is None and not terminal:
        width = int(os.environ.get("COLUMNS", "") or 0) or PIPE_WIDTH
    target: IO[str] = file if terminal else io.StringIO()
    yield Console(file=target, width=width, highlight=False,
                  no_color="NO_COLOR" in os.environ or None, soft_wrap=False)  # fmt: skip
    if isinstance(target, io.StringIO):
        file.write("".join(line.rstrip() + "\n" for line in target.getvalue().splitlines()))


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
        return (
            "pass rule: |a - b| <= allowed, an error bound (docs/checks.md) or atol + rtol * |b|;"
            " margin = |a - b| / allowed <= 1"
        )
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
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}"
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


def _comparisons_table(result: CompareResult, kind: str, items: list[Comparison]) -> Any:
    from rich import box
    from rich.table import Table

    title = "Comparisons" if len(_groups(result)) == 1 else KIND_TITLES.get(kind, kind)
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    skip = _dropped_columns(result) | {"check"}
    with_quantity = any(c.quantity != "output" for c in items)
    headers = [h for h, _ in comparison_fields(items[0]) if h not in skip]
    if with_quantity:
        headers.insert(1, "of")
    for header in headers:
        right = header not in ("pair", "of", "shape", "atol / rtol")
        table.add_column(
            header, justify="right" if right else "left", no_wrap=True, min_width=len(header)
        )
    for c in items:
        cells: list[Any] = [text for h, text in comparison_fields(c) if h not in skip]
        if with_quantity:
            cells.insert(1, c.quantity)
        cells[-1] = _result_text(c.passed)
        table.add_row(*cells)
    return table


def render_table(result: CompareResult, file: IO[str], *, width: int | None = None) -> None:
    """Write the Rich tables to ``file`` (colour only when it is a colour terminal)."""
    with report_console(file, width) as console:
        _render_table(result, console)


def _render_table(result: CompareResult, console: Any) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.print(Text(title(result), style="bold"))

    layers = Table(title="Layers", title_justify="left", box=box.SIMPLE_HEAD, show_footer=True)
    layers.add_column("layer", footer="total", overflow="fold")
    layers.add_column("type", overflow="fold")
    layers.add_column("output shape", no_wrap=True)
    layers.add_column("params", justify="right", footer=f"{result.total_params:,}")
    layers.add_column("connected to")
    for row in result.layers:
        layers.add_row(
            row["name"], row["type"], shape_text(row["output_shape"]),
            f"{row['params']:,}", row["connected_to"],
        )  # fmt: skip
    console.print(layers)

    tables = [_comparisons_table(result, kind, items) for kind, items in _groups(result)]
    options_wide = console.options.update(width=10_000)
    if all(console.measure(t, options=options_wide).maximum <= console.width for t in tables):
        for table in tables:
            console.print(table)
    else:  # too narrow for wide tables: one block per comparison
        console.print(Text("Comparisons", style="italic"))
        skip = _dropped_columns(result) | {"pair"}
        for c in result.comparisons:
            block = Table(box=box.MINIMAL, show_header=False, padding=(0, 1))
            block.add_column(style="dim")
            block.add_column()
            for header, text in comparison_fields(c):
                if header not in skip:
                    block.add_row(header, _result_text(c.passed) if header == "result" else text)
            console.print(Text(c.label, style="bold"))
            console.print(block)
    console.print(Text(tolerance_line(result), style="dim"))

    if result.training and result.training["drift"]:
        console.print()
        for line in training_lines(result.training):
            console.print(Text(line))
        drift = Table(box=box.SIMPLE_HEAD)
        drift.add_column("step", justify="right")
        variants = list(result.training["drift"])
        for v in variants:
            drift.add_column(v, justify="right")
        for step, values in drift_rows(result.training):
            drift.add_row(str(step), *(fmt(v) for v in values))
        drift.add_row("", *(sparkline(result.training["drift"][v]) for v in variants))
        console.print(drift)

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
    table(doc, buffer, width=PIPE_WIDTH)
    return buffer.getvalue()


def render(result: CompareResult, fmt_name: str, *, width: int | None = None) -> str:
    """The report as text in one format (``table`` is rendered without colour)."""
    if fmt_name == "json":
        return render_json(result)
    if fmt_name == "markdown":
        return render_markdown(result)
    buffer = io.StringIO()
    render_table(result, buffer, width=width or 120)
    return buffer.getvalue()
