"""Rendering ``tdcheck scan``, ``rewrite`` and ``models`` reports: table, Markdown, JSON.

Every renderer takes the command's JSON document (``result.to_dict()``), so the three
formats always say the same thing.
"""

from __future__ import annotations

from typing import IO, Any

from tdcheck.reports.render import (
    exact_value,
    render_document,
    report_console,
    shape_text,
)
from tdcheck.reports.result import fmt


def render(doc: dict[str, Any], fmt_name: str) -> str:
    """The document as text in one format (tables without colour)."""
    kind = doc["command"]
    markdown = {"scan": scan_markdown, "rewrite": rewrite_markdown, "models": models_markdown}
    table = {"scan": scan_table, "rewrite": rewrite_table, "models": models_table}
    return render_document(doc, fmt_name, markdown[kind], table[kind])


def write(doc: dict[str, Any], fmt_name: str, file: IO[str]) -> None:
    """Write the report to ``file``; tables get colour and width when it is a terminal."""
    if fmt_name == "table":
        {"scan": scan_table, "rewrite": rewrite_table, "models": models_table}[doc["command"]](
            doc, file
        )
    else:
        file.write(render(doc, fmt_name))


def _shape(shape: Any) -> str:
    return "unknown" if shape is None else shape_text(shape)


def _wraps(layer: dict[str, Any]) -> str:
    return f"{layer['wrapped_class']}({layer['wrapped_config']})"


def _file_title(f: dict[str, Any]) -> str:
    n = len(f["time_distributed"])
    version = f" (Keras {f['keras_version']})" if f["keras_version"] else ""
    return (
        f"{f['path']}: {f['model_class']} {f['model']!r}{version}, "
        f"{n} TimeDistributed {'layer' if n == 1 else 'layers'}"
    )


# -- scan ---------------------------------------------------------------------------------


def scan_table(doc: dict[str, Any], file: IO[str], *, width: int | None = None) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    styles = {"rewritable": "bold yellow", "inference only": "yellow", "not rewritable": "dim"}
    with report_console(file, width) as console:
        wide = console.width >= 120  # else the reasons go below the table, one line each
        for f in doc["files"]:
            if f["error"]:
                console.print(Text(f"unreadable: {f['error']}", style="bold red"))
                continue
            console.print(Text(_file_title(f), style="bold"))
            if not f["time_distributed"]:
                continue
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
            table.add_column("layer", overflow="fold")
            table.add_column("wraps", overflow="fold")
            table.add_column("input shape", no_wrap=True)
            table.add_column("verdict", no_wrap=True)
            if wide:
                table.add_column("reason", overflow="fold", ratio=1)
            for t in f["time_distributed"]:
                cells = [t["path"], _wraps(t), _shape(t["input_shape"]),
                         Text(t["verdict"], style=styles.get(t["verdict"], ""))]  # fmt: skip
                table.add_row(*cells, *([t["reason"]] if wide else []))
            console.print(table)
            if not wide:  # reasons below, wrapped under their own column
                reasons = Table.grid(padding=(0, 1), pad_edge=True)
                reasons.add_column(no_wrap=True)
                reasons.add_column(overflow="fold")
                for t in f["time_distributed"]:
                    reasons.add_row(f" {t['path']}:", t["reason"])
                console.print(reasons)
                console.print()
        console.print(Text(doc["verdict"], style="bold"))


def scan_markdown(doc: dict[str, Any]) -> str:
    out = ["## tdcheck scan", ""]
    for f in doc["files"]:
        if f["error"]:
            out += [f"**{f['path']}**: unreadable: {f['error']}", ""]
            continue
        out += [f"**{_file_title(f)}**", ""]
        if f["time_distributed"]:
            out += ["| layer | wraps | input shape | verdict | reason |", "|---|---|---|---|---|"]
            for t in f["time_distributed"]:
                out.append(
                    f"| `{t['path']}` | {_wraps(t)} | {_shape(t['input_shape'])} | "
                    f"**{t['verdict']}** | {t['reason']} |"
                )
            out.append("")
    out.append(f"**{doc['verdict']}**")
    return "\n".join(out) + "\n"


# -- comparisons shared by rewrite and models ---------------------------------------------


def _check_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for c in doc["comparisons"]:
        shapes = (
            _shape(c["shape_a"])
            if c["shape_a"] == c["shape_b"]
            else f"{_shape(c['shape_a'])} ≠ {_shape(c['shape_b'])}"
        )
        rows.append([
            c["check"], c["output"], shapes, fmt(c["max_abs_diff"]), fmt(c["max_rel_diff"]),
            fmt(c["max_ulp"]), f"{c['mismatched']}/{c['total']}", fmt(c["bitwise_equal"]),
            "PASS" if c["passed"] else "FAIL",
        ])  # fmt: skip
    return rows


CHECK_HEADERS = ["check", "output", "shape", "max abs", "max rel", "max ULP", "mismatched",
                 "bitwise", "result"]  # fmt: skip


NARROW_DROPS = ("max rel", "max ULP", "mismatched")


def _print_checks(doc: dict[str, Any], console: Any) -> None:
    """The checks table; on a narrow terminal without the columns that do not fit."""
    from rich.text import Text

    wide = console.options.update(width=10_000)
    for n in range(len(NARROW_DROPS) + 1):
        table = _checks_table(doc, set(NARROW_DROPS[:n]))
        if console.measure(table, options=wide).maximum <= console.width:
            break
    console.print(table)
    if n:
        left_out = ", ".join(NARROW_DROPS[:n])
        console.print(Text(f"({left_out}: too narrow here; see --format json)", style="dim"))


def _checks_table(doc: dict[str, Any], drop: set[str] | frozenset[str] = frozenset()) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    outputs = {c["output"] for c in doc["comparisons"]}
    title = "Checks" if len(outputs) != 1 else f"Checks (output {next(iter(outputs))!r})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    keep = [(h != "output" or len(outputs) != 1) and h not in drop for h in CHECK_HEADERS]
    for h, kept in zip(CHECK_HEADERS, keep, strict=True):
        if kept:
            table.add_column(h, justify="left" if h in ("check", "output", "shape") else "right",
                             overflow="fold", no_wrap=h in ("check", "shape"),
                             min_width=len(h))  # fmt: skip
    for row in _check_rows(doc):
        cells = [cell for cell, kept in zip(row, keep, strict=True) if kept]
        passed = row[-1] == "PASS"
        table.add_row(*cells[:-1], Text(row[-1], style="bold green" if passed else "bold red"))
    return table


def _failure_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for c in doc["comparisons"]:
        if c["passed"]:
            continue
        if c.get("note"):
            lines.append(f"{c['check']} {c['output']}: {c['note']}")
        elif c["worst_index"] is not None:
            lines.append(
                f"{c['check']} {c['output']}: {c['mismatched']}/{c['total']} mismatched; worst at "
                f"{c['worst_index']}: {exact_value(c['worst_a'], c['dtype_a'])} vs "
                f"{exact_value(c['worst_b'], c['dtype_b'])} "
                f"(|diff| {fmt(c['max_abs_diff'])}, atol {fmt(c['atol'])}, rtol {fmt(c['rtol'])})"
            )
    return lines


def _rule_line(doc: dict[str, Any]) -> str:
    tol = doc["tolerance"]
    return (
        f"pass rule: |b - a| <= atol + rtol * |a| with {tol['source']} tolerances "
        f"(atol {fmt(tol['atol'])}, rtol {fmt(tol['rtol'])} for {tol['dtype']})"
    )


def _params_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [
        [p["layer"], p["class_a"] or "-", p["class_b"] or "-",
         "-" if p["params_a"] is None else f"{p['params_a']:,}",
         "-" if p["params_b"] is None else f"{p['params_b']:,}",
         "yes" if p["equal"] else "NO"]
        for p in doc["params"]
    ]  # fmt: skip


# -- models -------------------------------------------------------------------------------


def models_title(doc: dict[str, Any]) -> str:
    return f"tdcheck models: {doc['a']['path']} vs {doc['b']['path']}"


def models_table(doc: dict[str, Any], file: IO[str], *, width: int | None = None) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    with report_console(file, width) as console:
        console.print(Text(models_title(doc), style="bold"))
        _print_models_body(doc, console, Table, box, Text)


def _tensors(items: list[dict[str, Any]]) -> str:
    return "; ".join(f"{t['name']} {_shape(t['shape'])} {t['dtype']}" for t in items)


def _model_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [
        [side, m["name"], m["class"], _tensors(m["inputs"]), _tensors(m["outputs"]),
         f"{m['params']:,}", str(m["time_distributed"])]
        for side, m in (("A", doc["a"]), ("B", doc["b"]))
    ]  # fmt: skip


MODEL_HEADERS = ["", "model", "class", "inputs", "outputs", "params", "TD layers"]


def _print_models_body(doc: dict[str, Any], console: Any, Table: Any, box: Any, Text: Any) -> None:
    models = Table(title="Models", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for h in MODEL_HEADERS:
        models.add_column(h, justify="right" if h in ("params", "TD layers") else "left",
                          overflow="fold", min_width=len(h))  # fmt: skip
    for row in _model_rows(doc):
        models.add_row(*row)
    console.print(models)
    params = Table(title="Parameters by layer", title_justify="left", box=box.SIMPLE_HEAD,
                   pad_edge=False)  # fmt: skip
    for h, short in (
        ("layer", "layer"),
        ("A", "class A"),
        ("B", "class B"),
        ("params A", "params A"),
        ("params B", "params B"),
        ("equal", "equal"),
    ):
        params.add_column(short, justify="right" if h.startswith(("params", "equal")) else "left",
                          overflow="fold")  # fmt: skip
    for row in _params_rows(doc):
        params.add_row(*row)
    params.add_row("total", "", "", f"{doc['a']['params']:,}", f"{doc['b']['params']:,}",
                   "yes" if doc["a"]["params"] == doc["b"]["params"] else "NO")  # fmt: skip
    console.print(params)
    _print_checks(doc, console)
    console.print(Text(_rule_line(doc), style="dim"))
    console.print(Text(doc["verdict"], style="bold green" if doc["passed"] else "bold red"))
    for line in _failure_lines(doc):
        console.print(Text("  " + line))
    for note in doc.get("notes", []):
        console.print(Text("note: " + note, style="dim"))


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _models_markdown_body(doc: dict[str, Any]) -> list[str]:
    out = ["### Models", "", *_md_table(MODEL_HEADERS, _model_rows(doc)), ""]
    out += ["### Parameters by layer", ""]
    out += _md_table(["layer", "class A", "class B", "params A", "params B", "equal"],
                     _params_rows(doc))  # fmt: skip
    out += [f"| **total** | | | **{doc['a']['params']:,}** | **{doc['b']['params']:,}** | |", ""]
    out += ["### Checks", "", _rule_line(doc), ""]
    out += _md_table(CHECK_HEADERS, _check_rows(doc))
    out += ["", f"**{doc['verdict']}**"]
    out += [f"- {line}" for line in _failure_lines(doc)]
    out += [f"> {note}" for note in doc.get("notes", [])]
    return out


def models_markdown(doc: dict[str, Any]) -> str:
    return "\n".join([f"## {models_title(doc)}", "", *_models_markdown_body(doc)]) + "\n"


# -- rewrite ------------------------------------------------------------------------------


def _speed_rows(doc: dict[str, Any]) -> list[list[str]]:
    before, after = doc["before"], doc["after"]
    same = "equal" if before["params"] == after["params"] else "DIFFERENT"
    rows = [
        ["TimeDistributed layers", str(before["time_distributed"]),
         str(after["time_distributed"]), ""],
        ["parameters", f"{before['params']:,}", f"{after['params']:,}", same],
    ]  # fmt: skip
    for key, label in (("call_s", "eager call"), ("predict_first_s", "predict, first call"),
                       ("predict_steady_s", "predict, steady state")):  # fmt: skip
        b, a = doc["before"]["timing"].get(key), doc["after"]["timing"].get(key)
        if b is None or a is None:
            continue
        rows.append([label, _seconds(b), _seconds(a), f"{b / a:.1f}x" if a > 0 else "n/a"])
    return rows


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def rewrite_title(doc: dict[str, Any]) -> str:
    out = doc["out"] or "(not written)"
    return f"tdcheck rewrite: {doc['in']} -> {out}"


def rewrite_table(doc: dict[str, Any], file: IO[str], *, width: int | None = None) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    with report_console(file, width) as console:
        console.print(Text(rewrite_title(doc), style="bold"))
        for line in doc["findings"]:
            console.print(Text("FINDING: " + line, style="bold red"))
        layers = Table(title="Rewritten", title_justify="left", box=box.SIMPLE_HEAD,
                       pad_edge=False)  # fmt: skip
        for h in ("layer", "was", "now", "input shape"):
            layers.add_column(h, overflow="fold")
        for t in doc["replaced"]:
            layers.add_row(t["path"], f"TimeDistributed({t['wrapped_class']})",
                           t["wrapped_class"], _shape(t["input_shape"]))  # fmt: skip
        for t in doc["kept"]:
            layers.add_row(t["path"], f"TimeDistributed({t['wrapped_class']})",
                           f"kept: {t['reason']}", _shape(t["input_shape"]))  # fmt: skip
        console.print(layers)
        if doc["comparisons"]:
            _print_checks(doc, console)
            console.print(Text(_rule_line(doc), style="dim"))
        speed = Table(title=f"Before / after ({doc['timing_shape']})", title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
        for h in ("", "before", "after", "speed-up"):
            speed.add_column(h, justify="left" if not h else "right")
        for row in _speed_rows(doc):
            speed.add_row(*row)
        console.print(speed)
        console.print(Text(doc["verdict"], style="bold green" if doc["passed"] else "bold red"))
        for line in _failure_lines(doc) + doc["regressions"]:
            console.print(Text("  " + line))
        for note in doc["notes"]:
            console.print(Text("note: " + note, style="dim"))


def rewrite_markdown(doc: dict[str, Any]) -> str:
    out = [f"## {rewrite_title(doc)}", ""]
    out += [f"> **FINDING:** {line}" for line in doc["findings"]]
    if doc["findings"]:
        out.append("")
    rows = [[f"`{t['path']}`", f"TimeDistributed({t['wrapped_class']})", t["wrapped_class"],
             _shape(t["input_shape"])] for t in doc["replaced"]]  # fmt: skip
    rows += [[f"`{t['path']}`", f"TimeDistributed({t['wrapped_class']})",
              f"kept: {t['reason']}", _shape(t["input_shape"])] for t in doc["kept"]]  # fmt: skip
    out += ["### Rewritten", "", *_md_table(["layer", "was", "now", "input shape"], rows), ""]
    if doc["comparisons"]:
        out += ["### Checks", "", _rule_line(doc), "", *_md_table(CHECK_HEADERS, _check_rows(doc))]
    out += ["", f"### Before / after ({doc['timing_shape']})", ""]
    out += _md_table(["", "before", "after", "speed-up"], _speed_rows(doc))
    out += ["", f"**{doc['verdict']}**"]
    out += [f"- {line}" for line in _failure_lines(doc) + doc["regressions"]]
    out += [f"> {note}" for note in doc["notes"]]
    return "\n".join(out) + "\n"
