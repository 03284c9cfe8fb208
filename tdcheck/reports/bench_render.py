"""Rendering ``tdcheck bench`` reports: tables with ratios, a terminal bar chart, a PNG plot."""

from __future__ import annotations

from typing import IO, Any

from tdcheck.core.backends import LABELS, VERSION_KEYS
from tdcheck.reports.render import fmt, print_table, render_document, report_console

BAR_WIDTH = 30


def seconds(value: float) -> str:
    """``0.000123`` -> ``123 µs``; three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale or unit == "µs":
            return f"{value / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Results and reference rows, in cell order, each cell's variants then ``matmul``."""
    out = []
    refs = {(r["mode"], r["time_dim"], r["seq"], r["batch"]): r for r in doc["reference"]}
    cell = None
    for r in doc["results"]:
        key = (r["mode"], r["time_dim"], r["seq"], r["batch"])
        if cell is not None and key != cell:
            out.append(refs[cell])
        cell = key
        out.append(r)
    if cell is not None:
        out.append(refs[cell])
    return out


HEADERS = ["mode", "time", "seq", "batch", "variant", "min", "median", "max", "× dense",
           "steps/s", "efficiency", "first call", "= dense"]  # fmt: skip


def row_cells(r: dict[str, Any]) -> list[str]:
    if r.get("error"):
        head = [r["mode"], r["time_dim"], str(r["seq"]), str(r["batch"]), r["variant"]]
        return [*head, "error", "", "", "", "", "", "", "raised"]
    return [
        r["mode"], r["time_dim"], str(r["seq"]), str(r["batch"]), r["variant"],
        seconds(r["min_s"]), seconds(r["median_s"]), seconds(r["max_s"]),
        fmt(r["ratio_to_dense"]) if r.get("ratio_to_dense") is not None else "",
        f"{r['throughput']:.3g}",
        fmt(r["efficiency"]) if r.get("efficiency") is not None else "",
        seconds(r["trace_s"]),
        {True: "yes", False: "NO", None: ""}[r.get("matches_dense")],
    ]  # fmt: skip


def framework(env: dict[str, Any]) -> str:
    """``"TensorFlow 2.21.0, Keras 3.15.1"``, ``"JAX 0.10.2, Keras 3.15.1"``... (the backend
    the report ran on; reports from before ``--backend`` are TensorFlow's)."""
    backend = env.get("backend", "tensorflow")
    version = env.get(VERSION_KEYS.get(backend, backend), "?")
    return f"{LABELS.get(backend, backend)} {version}, Keras {env['keras']}"


def headline(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    what = doc["plan"]["what"] + (" forward+backward" if doc["plan"]["backward"] else " forward")
    return (
        f"tdcheck bench: {what}, median of {doc['plan']['repeats']} calls after "
        f"{doc['plan']['warmup']} warm-ups; {env['device']} ({env['device_name']}), "
        f"{env['cpu_count']} CPUs, {framework(env)}"
    )


def equivalence_line(doc: dict[str, Any]) -> str:
    e = doc["equivalence"]
    mark = "equivalent" if e["passed"] else "NOT EQUIVALENT, timings compare different computations"
    return f"pre-check (seq {e['seq']}, batch {e['batch']}): {mark}: {e['verdict']}"


def bar_chart(doc: dict[str, Any], width: int = 10_000) -> list[str]:
    """One block per cell: each variant's median as a bar, scaled to the slowest; the bars
    shrink (down to 8 characters) so a line fits ``width``."""
    lines: list[str] = []
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in doc["results"]:
        if r.get("median_s") is not None:
            cells.setdefault((r["mode"], r["time_dim"], r["seq"], r["batch"]), []).append(r)
    for (mode, dim, seq, batch), items in cells.items():
        top = max(r["median_s"] for r in items) or 1.0
        lines.append(f"{mode} {dim} seq={seq} batch={batch}")
        name = max(len(r["variant"]) for r in items)
        bar = max(8, min(BAR_WIDTH, width - name - 2 - 1 - 1 - 9 - 7))
        for r in items:
            n = max(1, round(bar * r["median_s"] / top))
            ratio = f" ×{r['ratio_to_dense']:.2f}" if r.get("ratio_to_dense") else ""
            lines.append(
                f"  {r['variant']:<{name}} {'█' * n:<{bar}} {seconds(r['median_s'])}{ratio}"
            )
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    out = [f"## {headline(doc)}", "", equivalence_line(doc), ""]
    if doc.get("verdict"):
        out[-1:] = ["", f"**{doc['verdict']}**", ""]
    out += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * 5 + "---:|" * 7 + "---|"]
    out += ["| " + " | ".join(row_cells(r)) + " |" for r in rows(doc)]
    if doc["notes"]:
        out += [""] + [f"> {n}" for n in doc["notes"]]
    return "\n".join(out) + "\n"


#: The terminal table, one block per cell ("graph static seq=100 batch=32"); --wide adds
#: min, max, efficiency and the cell's values are the block's title either way.
CELL_HEADERS = ["variant", "median", "× dense", "first call", "= dense"]
WIDE_CELL_HEADERS = ["variant", "min", "median", "max", "× dense", "steps/s", "efficiency",
                     "first call", "= dense"]  # fmt: skip
TABLE_LEGEND = (
    "× dense: median / dense's median; steps/s: timesteps per second; first call: tracing "
    "and compiling; = dense: output matches dense"
)


def cell_cells(r: dict[str, Any], wide: bool = False) -> list[str]:
    """One row of a cell's block: :func:`row_cells` without the cell's own values."""
    full = dict(zip(HEADERS, row_cells(r), strict=True))
    return [full[h] for h in (WIDE_CELL_HEADERS if wide else CELL_HEADERS)]


def render_table(
    doc: dict[str, Any],
    file: IO[str],
    width: int | None = None,
    *,
    wide: bool = False,
    color: bool | None = None,
) -> None:
    """Write the report with Rich (plain text when piped); ``wide``: every column."""
    with report_console(file, width, color) as console:
        _render_table(doc, console, wide)


def _render_table(doc: dict[str, Any], console: Any, wide: bool = False) -> None:
    from rich.text import Text

    console.print(Text(headline(doc), style="bold"))
    style = "green" if doc["equivalent"] else "bold red"
    console.print(Text(equivalence_line(doc), style=style))
    console.print()
    blocks: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows(doc):
        blocks.setdefault((r["mode"], r["time_dim"], r["seq"], r["batch"]), []).append(r)
    headers = WIDE_CELL_HEADERS if wide else CELL_HEADERS
    for (mode, dim, seq, batch), items in blocks.items():
        print_table(
            console, headers, [cell_cells(r, wide) for r in items],
            title=f"{mode}, {dim} length, seq {seq}, batch {batch}",
            left=(0,), row_styles=["dim" if r["variant"] == "matmul" else None for r in items],
        )  # fmt: skip
    console.print(Text(TABLE_LEGEND, style="dim"))
    console.print()
    for line in bar_chart(doc, console.width):
        console.print(Text(line))
    for note in doc["notes"]:
        console.print(Text("note: " + note, style="dim"))
    if doc.get("verdict"):  # reports from before the verdict have none
        console.print(Text(doc["verdict"], style="bold green" if doc["passed"] else "bold red"))


def render(doc: dict[str, Any], fmt_name: str) -> str:
    return render_document(doc, fmt_name, render_markdown, render_table)


def check_plot_available() -> None:
    """Raise EnvironmentProblem (exit 3) with the install hint when matplotlib is missing."""
    import importlib.util

    from tdcheck.core.install import install_hint
    from tdcheck.errors import EnvironmentProblem

    if importlib.util.find_spec("matplotlib") is None:
        raise EnvironmentProblem(
            f"--plot needs matplotlib, which is not installed: {install_hint('plot')}"
        )


def write_plot(doc: dict[str, Any], path: str) -> None:
    """Median time against sequence length: one panel per (mode, time dimension), one line
    per variant (and batch size), the reference matmul dotted; a cross marks a cell whose
    output did not match dense's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tdcheck.files import atomic_write_with

    panels = list(dict.fromkeys((r["mode"], r["time_dim"]) for r in doc["results"]))
    variants = [*dict.fromkeys(r["variant"] for r in doc["results"]), "matmul"]
    colors = {v: f"C{i}" for i, v in enumerate(variants)}
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), dpi=100,
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, (mode, dim) in zip(axes.flat, panels, strict=False):
        rows_here = [
            r
            for r in [*doc["results"], *doc["reference"]]
            if (r["mode"], r["time_dim"]) == (mode, dim) and r.get("median_s")
        ]
        for variant in variants:
            for batch in sorted({r["batch"] for r in rows_here}):
                pts = sorted((r["seq"], r["median_s"], r.get("matches_dense")) for r in rows_here
                             if r["variant"] == variant and r["batch"] == batch)  # fmt: skip
                if not pts:
                    continue
                label = (
                    variant if len({r["batch"] for r in rows_here}) == 1 else f"{variant} b{batch}"
                )
                style = ":" if variant == "matmul" else "-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o",
                        color=colors[variant], label=label)  # fmt: skip
                bad = [p for p in pts if p[2] is False]
                if bad:
                    ax.plot([p[0] for p in bad], [p[1] for p in bad], "x", color="black",
                            markersize=10, label="_nolegend_")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{mode}, {dim} length", fontsize=9)
        ax.set_xlabel("sequence length")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("median time per call (s)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8)
    env = doc["environment"]
    fig.suptitle(
        f"tdcheck bench ({doc['plan']['what']}): {env['device']}, {framework(env)}  "
        "(x: output differs from dense)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    atomic_write_with(path, lambda handle: fig.savefig(handle, format="png"))
    plt.close(fig)
