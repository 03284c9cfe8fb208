"""Rendering ``tdcheck scan``, ``rewrite`` and ``models`` reports: table, Markdown, JSON.

Every renderer takes the command's JSON document (``result.to_dict()``), so the three
formats always say the same thing. Tables go through :func:`~tdcheck.reports.render.print_table`
(one line per row when it fits, else stacked, never a cut cell).
"""

from __future__ import annotations

from typing import IO, Any

from tdcheck.core.result import fmt
from tdcheck.reports.render import (
    exact_value,
    print_table,
    render_document,
    report_console,
    shape_text,
)


def render(doc: dict[str, Any], fmt_name: str) -> str:
    """The document as text in one format (tables without colour)."""
    kind = doc["command"]
    markdown = {"scan": scan_markdown, "rewrite": rewrite_markdown, "models": models_markdown}
    return render_document(doc, fmt_name, markdown[kind], TABLES[kind])


def write(doc: dict[str, Any], fmt_name: str, file: IO[str]) -> None:
    """Write the report to ``file``; tables get colour and width when it is a terminal."""
    if fmt_name == "table":
        TABLES[doc["command"]](doc, file)
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


def _verdict_text(doc: dict[str, Any]) -> Any:
    from rich.text import Text

    return Text(doc["verdict"], style="bold green" if doc["passed"] else "bold red")


# -- scan ---------------------------------------------------------------------------------

VERDICT_STYLES = {"rewritable": "bold yellow", "inference only": "yellow", "not rewritable": "dim"}


def scan_table(
    doc: dict[str, Any], file: IO[str], width: int | None = None, *, color: bool | None = None
) -> None:
    from rich.text import Text

    with report_console(file, width, color) as console:
        for f in doc["files"]:
            if f["error"]:  # said once, on stderr (the verdict line counts it)
                continue
            console.print(Text(_file_title(f), style="bold"))
            if not f["time_distributed"]:
                console.print()
                continue
            rows = [[t["path"], _wraps(t), _shape(t["input_shape"]),
                     Text(t["verdict"], style=VERDICT_STYLES.get(t["verdict"], ""))]
                    for t in f["time_distributed"]]  # fmt: skip
            print_table(console, ["layer", "wraps", "input shape", "verdict"], rows,
                        left=(0, 1, 2, 3))  # fmt: skip
            for t in f["time_distributed"]:
                console.print(Text(f"  {t['path']}: {t['reason']}"))
            for key in ("export_warning", "rewrite_blocked"):
                if f.get(key):
                    console.print(Text(f"  {f[key]}", style="yellow"))
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
        for key in ("export_warning", "rewrite_blocked"):
            if f.get(key):
                out += [f"> {f[key]}", ""]
    out.append(f"**{doc['verdict']}**")
    return "\n".join(out) + "\n"


# -- comparisons shared by rewrite and models ---------------------------------------------


def _shapes(c: dict[str, Any]) -> str:
    if c["shape_a"] == c["shape_b"]:
        return _shape(c["shape_a"])
    return f"{_shape(c['shape_a'])} ≠ {_shape(c['shape_b'])}"


def _check_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for c in doc["comparisons"]:
        rows.append([
            c["check"], c["output"], _shapes(c), fmt(c["max_abs_diff"]), fmt(c["max_rel_diff"]),
            fmt(c["max_ulp"]), f"{c['mismatched']}/{c['total']}", fmt(c["bitwise_equal"]),
            "PASS" if c["passed"] else "FAIL",
        ])  # fmt: skip
    return rows


CHECK_HEADERS = ["check", "output", "shape", "max abs", "max rel", "max ULP", "mismatched",
                 "bitwise", "result"]  # fmt: skip
#: The terminal table's headers: short enough for one line per row at 80 columns (the
#: shape is in the check's label; the output's shape shows only where the two differ).
TABLE_CHECK_HEADERS = ["check", "output", "shape", "max abs", "max rel", "ULP", "bad",
                       "bitwise", "result"]  # fmt: skip
TABLE_CHECK_LEGEND = (
    "bad: mismatched/all elements; ULP: largest distance in units in the last place"
)


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
                f"(|diff| {fmt(_own(c, 'worst_abs_diff', 'max_abs_diff'))}, allowed "
                f"{fmt(_own(c, 'worst_allowed', 'allowed'))}; atol {fmt(c['atol'])}, "
                f"rtol {fmt(c['rtol'])})"
            )
            where = c.get("max_abs_diff_index")
            if where is not None and where != c["worst_index"]:
                lines.append(
                    f"  largest |diff| {fmt(c['max_abs_diff'])} at {where}: "
                    f"{exact_value(c['max_abs_diff_a'], c['dtype_a'])} vs "
                    f"{exact_value(c['max_abs_diff_b'], c['dtype_b'])}"
                )
    return lines


def _own(c: dict[str, Any], key: str, fallback: str) -> Any:
    """The worst element's own figure, or (reports from before it existed) the overall one."""
    value = c.get(key)
    return c.get(fallback) if value is None else value


def _same_lines(doc: dict[str, Any]) -> list[str]:
    """The float64 same-computation checks, one line each (docs/checks.md)."""
    lines = []
    for c in doc.get("same_computation") or []:
        state = "PASS" if c["passed"] else "FAIL"
        what = (
            "bitwise identical"
            if c["bitwise_equal"]
            else f"max abs {fmt(c['max_abs_diff'])}, margin {fmt(c['margin'])}"
        )
        line = f"{c['check']} {c['output']}: {what} ({c['rule']}) {state}"
        if c.get("note") and not c["passed"]:
            line += f"; {c['note']}"
        lines.append(line)
    return lines


def _same_markdown(doc: dict[str, Any]) -> list[str]:
    lines = _same_lines(doc)
    return (
        ["", "### Same computation in float64", "", *[f"- {line}" for line in lines]]
        if lines
        else []
    )


def _rule_line(doc: dict[str, Any]) -> str:
    if doc.get("pass_rule"):  # rewrite: same computation in float64, rounding by its size
        return str(doc["pass_rule"])
    tol = doc["tolerance"]
    text = (
        f"pass rule: |b - a| <= atol + rtol * |a| with {tol['source']} tolerances "
        f"(atol {fmt(tol['atol'])}, rtol {fmt(tol['rtol'])} for {tol['dtype']})"
    )
    own = tol.get("per_output") or {}
    if own:
        text += "; " + ", ".join(
            f"{name}: atol {fmt(v['atol'])}, rtol {fmt(v['rtol'])}" for name, v in own.items()
        )
    return text


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _class_cell(p: dict[str, Any]) -> str:
    a, b = p["class_a"] or "-", p["class_b"] or "-"
    return a if a == b else f"{a} → {b}"


def _params_cell(p: dict[str, Any]) -> str:
    a, b = _count(p["params_a"]), _count(p["params_b"])
    return a if a == b else f"{a} ≠ {b}"


def _weights_cell(p: dict[str, Any]) -> str:
    state = p.get("weights")
    if state is None:  # a report from before weights were compared
        return "yes" if p["equal"] else "NO"
    return "DIFFER" if state == "differ" else state


def _params_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [[p["layer"], _class_cell(p), _params_cell(p), fmt(p.get("max_abs_diff")),
             _weights_cell(p)] for p in doc["params"]]  # fmt: skip


def _params_footer(doc: dict[str, Any], before: str = "a", after: str = "b") -> list[str]:
    a, b = doc[before]["params"], doc[after]["params"]
    differ = sum(p.get("weights") in ("differ", "shapes differ", "only in A", "only in B")
                 for p in doc["params"])  # fmt: skip
    return ["total", "", f"{a:,}" if a == b else f"{a:,} ≠ {b:,}", "",
            f"{differ} differ" if differ else "bitwise"]  # fmt: skip


# -- models -------------------------------------------------------------------------------


def _tensors(items: list[dict[str, Any]]) -> str:
    return "; ".join(f"{t['name']} {_shape(t['shape'])} {t['dtype']}" for t in items)


MODEL_HEADERS = ["", "model", "class", "inputs", "outputs", "params", "TD layers"]
PARAM_HEADERS = ["layer", "class (A → B)", "params", "max abs", "weights"]


def _model_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [
        [side, m["name"], m["class"], _tensors(m["inputs"]), _tensors(m["outputs"]),
         _count(m["params"]), _count(m["time_distributed"])]
        for side, m in (("A", doc["a"]), ("B", doc["b"]))
    ]  # fmt: skip


def models_title(doc: dict[str, Any]) -> str:
    return f"tdcheck models: {doc['a']['path']} vs {doc['b']['path']}"


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _models_markdown_body(doc: dict[str, Any]) -> list[str]:
    out = ["### Models", "", *_md_table(MODEL_HEADERS, _model_rows(doc)), ""]
    if doc["params"]:  # none when a side is an artifact (it has no layers)
        out += ["### Layers (matched by name)", ""]
        out += _md_table(PARAM_HEADERS, _params_rows(doc))
        out += ["| " + " | ".join(f"**{cell}**" if cell else "" for cell in _params_footer(doc))
                + " |", ""]  # fmt: skip
    out += ["### Checks", "", _rule_line(doc), ""]
    out += _md_table(CHECK_HEADERS, _check_rows(doc))
    out += _same_markdown(doc)
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


def _layer_rows(doc: dict[str, Any], reasons: bool = False) -> list[list[str]]:
    """Each TimeDistributed layer: replaced by its layer, or kept (with the reason)."""
    rows = [[t["path"], f"TimeDistributed({t['wrapped_class']})", t["wrapped_class"],
             _shape(t["input_shape"])] for t in doc["replaced"]]  # fmt: skip
    rows += [[t["path"], f"TimeDistributed({t['wrapped_class']})",
              f"kept: {t['reason']}" if reasons else "kept", _shape(t["input_shape"])]
             for t in doc["kept"]]  # fmt: skip
    return rows


def weights_line(doc: dict[str, Any]) -> str:
    """A rewrite's weights in one line: the layers matched by name, and which differ."""
    rows = doc["params"]
    differ = [p for p in rows if p.get("weights") not in ("bitwise", "none")]
    if not differ:
        return f"weights: all {len(rows)} layers bitwise identical to the original's"
    worst = ", ".join(f"{p['layer']} ({p.get('weights')}, max abs {fmt(p.get('max_abs_diff'))})"
                      for p in differ)  # fmt: skip
    return f"weights: {len(differ)} of {len(rows)} layers differ from the original's: {worst}"


def rewrite_title(doc: dict[str, Any]) -> str:
    out = doc["out"] or "(not written)"
    return f"tdcheck rewrite: {doc['in']} -> {out}"


def rewrite_markdown(doc: dict[str, Any]) -> str:
    out = [f"## {rewrite_title(doc)}", ""]
    out += [f"> **FINDING:** {line}" for line in doc["findings"]]
    if doc["findings"]:
        out.append("")
    rows = [[f"`{row[0]}`", *row[1:]] for row in _layer_rows(doc, reasons=True)]
    out += ["### Rewritten", "", *_md_table(["layer", "was", "now", "input shape"], rows), ""]
    if doc["comparisons"]:
        out += ["### Checks", "", _rule_line(doc), "", *_md_table(CHECK_HEADERS, _check_rows(doc))]
        out += _same_markdown(doc)
    if doc.get("params"):
        out += ["", weights_line(doc)]
    out += ["", f"### Before / after ({doc['timing_shape']})", ""]
    out += _md_table(["", "before", "after", "speed-up"], _speed_rows(doc))
    out += ["", f"**{doc['verdict']}**"]
    out += [f"- {line}" for line in _failure_lines(doc) + doc["regressions"]]
    out += [f"> {note}" for note in doc["notes"]]
    return "\n".join(out) + "\n"


# -- tables -------------------------------------------------------------------------------


def _print_checks(doc: dict[str, Any], console: Any) -> None:
    """The checks, one line per row at 80 columns: the output column only when there are
    several outputs, the shape column only where an output's shapes differ."""
    from rich.text import Text

    outputs = {c["output"] for c in doc["comparisons"]}
    single = len(outputs) == 1
    same_shapes = all(c["shape_a"] == c["shape_b"] for c in doc["comparisons"])
    title = f"Checks (output {next(iter(outputs))!r})" if single else "Checks"
    keep = [not ((single and h == "output") or (same_shapes and h == "shape"))
            for h in TABLE_CHECK_HEADERS]  # fmt: skip
    headers = [h for h, k in zip(TABLE_CHECK_HEADERS, keep, strict=True) if k]
    rows = []
    for row in _check_rows(doc):
        cells: list[Any] = [c for c, k in zip(row, keep, strict=True) if k]
        cells[-1] = Text(row[-1], style="bold green" if row[-1] == "PASS" else "bold red")
        rows.append(cells)
    left = tuple(i for i, h in enumerate(headers) if h in ("check", "output", "shape"))
    print_table(console, headers, rows, title=title, left=left, legend=TABLE_CHECK_LEGEND)
    console.print(Text(_rule_line(doc), style="dim"))
    console.print()
    same = _same_lines(doc)
    if same:
        console.print(Text("Same computation in float64", style="bold"))
        for line in same:
            console.print(Text("  " + line))
        console.print()


def _print_end(doc: dict[str, Any], console: Any, extra: list[str]) -> None:
    from rich.text import Text

    console.print(_verdict_text(doc))
    for line in _failure_lines(doc) + extra:
        console.print(Text("  " + line))
    for note in doc.get("notes", []):
        console.print(Text("note: " + note, style="dim"))


def models_table(
    doc: dict[str, Any], file: IO[str], width: int | None = None, *, color: bool | None = None
) -> None:
    from rich.text import Text

    with report_console(file, width, color) as console:
        console.print(Text(models_title(doc), style="bold"))
        console.print()
        print_table(console, MODEL_HEADERS, _model_rows(doc), title="Models",
                    left=(0, 1, 2, 3, 4))  # fmt: skip
        if doc["params"]:  # none when a side is an artifact (it has no layers)
            print_table(console, PARAM_HEADERS, _params_rows(doc),
                        title="Layers (matched by name)", left=(0, 1, 4),
                        footer=_params_footer(doc))  # fmt: skip
        _print_checks(doc, console)
        _print_end(doc, console, [])


def rewrite_table(
    doc: dict[str, Any], file: IO[str], width: int | None = None, *, color: bool | None = None
) -> None:
    from rich.text import Text

    with report_console(file, width, color) as console:
        console.print(Text(rewrite_title(doc), style="bold"))
        for line in doc["findings"]:
            console.print(Text("FINDING: " + line, style="bold red"))
        console.print()
        print_table(console, ["layer", "was", "now", "input shape"], _layer_rows(doc),
                    title="Rewritten", left=(0, 1, 2, 3))  # fmt: skip
        if doc["kept"]:
            for t in doc["kept"]:
                console.print(Text(f"  {t['path']} kept: {t['reason']}"))
            console.print()
        if doc["comparisons"]:
            _print_checks(doc, console)
        if doc.get("params"):
            console.print(Text(weights_line(doc)))
            console.print()
        print_table(console, ["", "before", "after", "speed-up"], _speed_rows(doc),
                    title=f"Before / after ({doc['timing_shape']})", left=(0,))  # fmt: skip
        _print_end(doc, console, doc["regressions"])


TABLES = {"scan": scan_table, "rewrite": rewrite_table, "models": models_table}
