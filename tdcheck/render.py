"""Rendering a :class:`~tdcheck.report.CompareResult` as a table, Markdown or JSON.

Tables use Rich, which honours ``NO_COLOR`` and writes plain text when the
output is not a terminal. When the comparisons table is wider than
the terminal it is shown as one block per pair instead, so a narrow terminal stays readable.
"""

from __future__ import annotations

import io
import math
import os
from typing import IO, Any

from tdcheck.report import CompareResult, Comparison

PIPE_WIDTH = 140


def fmt(value: Any) -> str:
    """Numbers for humans: 3 significant digits, exact zero as ``0``, None as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.3g}"
    return str(value)


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


def shape_text(shape: Any) -> str:
    items = ["None" if s is None else str(s) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def tolerance_text(c: Comparison) -> str:
    s = c.stats
    return "bitwise" if s.exact else f"{fmt(s.atol)} / {fmt(s.rtol)}"


def comparison_fields(c: Comparison) -> list[tuple[str, str]]:
    """The columns of the comparisons table, as (header, text) pairs."""
    s = c.stats
    same = s.shape_a == s.shape_b
    shapes = shape_text(s.shape_a) if same else f"{shape_text(s.shape_a)} ≠ {shape_text(s.shape_b)}"
    return [
        ("pair", c.label),
        ("kind", c.kind),
        ("shape", shapes),
        ("max abs", fmt(s.max_abs_diff)),
        ("max rel", fmt(s.max_rel_diff)),
        ("mean abs", fmt(s.mean_abs_diff)),
        ("max ULP", fmt(s.max_ulp)),
        ("mismatched", f"{s.mismatched}/{s.total}"),
        ("bitwise", fmt(s.bitwise_equal)),
        ("atol / rtol", tolerance_text(c)),
        ("result", "PASS" if s.passed else "FAIL"),
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
    out += ["", "### Comparisons", ""]
    headers = [h for h, _ in comparison_fields(result.comparisons[0])] if result.comparisons else []
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    for c in result.comparisons:
        cells = [text for _, text in comparison_fields(c)]
        cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", f"**{result.verdict()}**"]
    failures = failure_lines(result)
    if failures:
        out += [""] + [f"- {line}" for line in failures]
    if result.notes:
        out += [""] + [f"> {note}" for note in result.notes]
    return "\n".join(out) + "\n"


def _result_text(passed: bool) -> Any:
    from rich.text import Text

    return Text("PASS" if passed else "FAIL", style="bold green" if passed else "bold red")


def _comparisons_table(result: CompareResult) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title="Comparisons", title_justify="left", box=box.SIMPLE_HEAD)
    fields = comparison_fields(result.comparisons[0]) if result.comparisons else []
    # One kind only (plain forward outputs): the column says nothing, drop it.
    skip = {"kind"} if len({c.kind for c in result.comparisons}) <= 1 else set()
    for header, _ in fields:
        if header in skip:
            continue
        right = header not in ("pair", "kind", "shape", "atol / rtol")
        table.add_column(
            header, justify="right" if right else "left", no_wrap=True, min_width=len(header)
        )
    for c in result.comparisons:
        cells: list[Any] = [text for h, text in comparison_fields(c) if h not in skip]
        cells[-1] = _result_text(c.passed)
        table.add_row(*cells)
    return table


def render_table(result: CompareResult, file: IO[str], *, width: int | None = None) -> None:
    """Write the Rich tables to ``file`` (colour only when it is a colour terminal)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    terminal = _is_terminal(file)
    if width is None and not terminal:
        # Piped or redirected: a fixed width (or $COLUMNS) rather than Rich's 80.
        width = int(os.environ.get("COLUMNS", "") or 0) or PIPE_WIDTH
    target = file if terminal else io.StringIO()
    console = Console(
        file=target,
        width=width,
        highlight=False,
        no_color="NO_COLOR" in os.environ or None,
        soft_wrap=False,
    )
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

    table = _comparisons_table(result)
    if (
        console.measure(table, options=console.options.update(width=10_000)).maximum
        <= console.width
    ):
        console.print(table)
    else:  # too narrow for one wide table: one block per comparison
        console.print(Text("Comparisons", style="italic"))
        for c in result.comparisons:
            block = Table(box=box.MINIMAL, show_header=False, padding=(0, 1))
            block.add_column(style="dim")
            block.add_column()
            for header, text in comparison_fields(c)[1:]:
                block.add_row(header, _result_text(c.passed) if header == "result" else text)
            console.print(Text(c.label, style="bold"))
            console.print(block)

    style = "bold green" if result.passed else "bold red"
    console.print(Text(result.verdict(), style=style))
    for line in failure_lines(result):
        console.print(Text("  " + line))
    for note in result.notes:
        console.print(Text("note: " + note, style="dim"))
    if target is not file:  # plain text: drop the padding Rich adds to every line
        assert isinstance(target, io.StringIO)
        file.write("".join(line.rstrip() + "\n" for line in target.getvalue().splitlines()))


def render(result: CompareResult, fmt_name: str, *, width: int | None = None) -> str:
    """The report as text in one format (``table`` is rendered without colour)."""
    if fmt_name == "json":
        return render_json(result)
    if fmt_name == "markdown":
        return render_markdown(result)
    buffer = io.StringIO()
    render_table(result, buffer, width=width or 120)
    return buffer.getvalue()
