"""Rendering ``tdcheck export`` reports: table, Markdown, JSON (from ``result.to_dict()``)."""

from __future__ import annotations

from typing import IO, Any

from tdcheck.reports.render import print_table, render_document, report_console

KINDS = {"savedmodel": "SavedModel", "onnx": "ONNX", "tflite": "LiteRT"}
PROBE_HEADERS = ["probe", "inputs", "Keras (IN)", "plain model.export()", "tdcheck export"]


def render(doc: dict[str, Any], fmt_name: str) -> str:
    return render_document(doc, fmt_name, export_markdown, export_table)


def write(doc: dict[str, Any], fmt_name: str, file: IO[str]) -> None:
    if fmt_name == "table":
        export_table(doc, file)
    else:
        file.write(render(doc, fmt_name))


def title(doc: dict[str, Any]) -> str:
    out = doc["out"] if doc["written"] else f"{doc['out']} (not written)"
    return f"tdcheck export: {doc['in']} -> {out} ({KINDS[doc['format']]})"


def _layer_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = [[t["path"], f"TimeDistributed({t['wrapped_class']})", t["wrapped_class"]]
            for t in doc["replaced"]]  # fmt: skip
    folded = set(doc["folded"])
    rows += [[t["path"], f"TimeDistributed({t['wrapped_class']})",
              "folded: time into batch" if t["path"] in folded else "kept"]
             for t in doc["kept"]]  # fmt: skip
    return rows


def _probe_rows(doc: dict[str, Any]) -> list[list[str]]:
    return [[p["probe"], p["inputs"], p["keras"], p["plain"] or "not checked",
             p["out"] or "-"] for p in doc["probes"]]  # fmt: skip


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _artifact_rows(doc: dict[str, Any]) -> list[list[str]]:
    a = doc["artifact"]
    if not a:
        return []
    return [
        ["size", f"{a['size_bytes']:,} bytes"],
        ["export (Keras)", _seconds(a.get("export_s"))],
        ["load", _seconds(a.get("load_s"))],
        ["first call", _seconds(a.get("first_call_s"))],
        ["runtime", a.get("runtime", "")],
    ]


def _failures(doc: dict[str, Any]) -> list[str]:
    lines = []
    for c in doc["comparisons"]:
        if not c["passed"]:
            lines.append(f"{c['check']} {c['output']}: {c.get('note') or 'values differ'}")
    return lines


def export_markdown(doc: dict[str, Any]) -> str:
    out = [f"## {title(doc)}", ""]
    out += [f"> **FINDING:** {line}" for line in doc["findings"]]
    if doc["findings"]:
        out.append("")
    rows = _layer_rows(doc)
    if rows:
        out += ["### TimeDistributed layers", "", "| layer | was | now |", "|---|---|---|"]
        out += [f"| `{r[0]}` | {r[1]} | {r[2]} |" for r in rows]
        out.append("")
    out += ["### Probes", "", "| " + " | ".join(PROBE_HEADERS) + " |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in _probe_rows(doc)]
    art = _artifact_rows(doc)
    if art:
        out += ["", "### Artifact", "", "| | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in art]
    out += ["", f"**{doc['verdict']}**"]
    out += [f"- {line}" for line in _failures(doc)]
    out += [f"> {note}" for note in doc["notes"]]
    return "\n".join(out) + "\n"


def export_table(
    doc: dict[str, Any], file: IO[str], width: int | None = None, *, color: bool | None = None
) -> None:
    from rich.text import Text

    with report_console(file, width, color) as console:
        console.print(Text(title(doc), style="bold"))
        for line in doc["findings"]:
            console.print(Text("FINDING: " + line, style="bold red"))
        console.print()
        rows = _layer_rows(doc)
        if rows:
            print_table(console, ["layer", "was", "now"], rows, title="TimeDistributed layers",
                        left=(0, 1, 2))  # fmt: skip
        print_table(console, PROBE_HEADERS, _probe_rows(doc), title="Probes",
                    left=(0, 1, 2, 3, 4))  # fmt: skip
        art = _artifact_rows(doc)
        if art:
            print_table(console, ["artifact", ""], art, left=(0, 1))
        console.print(Text(doc["verdict"], style="bold green" if doc["passed"] else "bold red"))
        for line in _failures(doc):
            console.print(Text("  " + line))
        for note in doc["notes"]:
            console.print(Text("note: " + note, style="dim"))
