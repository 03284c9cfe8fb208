"""Rendering sweep reports (from their JSON documents, so merged reports render the same)."""

from __future__ import annotations

import math
from typing import IO, Any

from tdcheck.reports.render import (
    fmt,
    print_table,
    render_document,
    report_console,
    table_layout,
)

#: Above this many cases the tables list only the failed and errored ones.
MAX_LISTED = 50


def _num(value: Any) -> float:
    if isinstance(value, str):  # "inf", "nan" in strict JSON
        return math.inf if value in ("inf", "nan") else -math.inf
    return -math.inf if value is None else float(value)


def _is_oracle(c: dict[str, Any]) -> bool:
    return "oracle" in (c["a"], c["b"])


def worst(case: dict[str, Any], oracle: bool | None = None) -> dict[str, Any] | None:
    """The comparison with the largest absolute difference (failures first): among the
    variant pairs (``oracle=False``: what the user came for, e.g. time-distributed vs dense),
    the oracle comparisons (``oracle=True``), or all (None)."""
    comps = [c for c in case.get("comparisons") or [] if oracle is None or _is_oracle(c) == oracle]
    if not comps:
        return None
    return max(comps, key=lambda c: (not c["passed"], _num(c["max_abs_diff"])))


def pair_text(c: dict[str, Any]) -> str:
    """``time-distributed vs dense``, with the quantity when it is not the output."""
    quantity = c.get("quantity", "output")
    return f"{c['a']} vs {c['b']}" + ("" if quantity == "output" else f" [{quantity}]")


def case_row(case: dict[str, Any]) -> list[str]:
    """case, status, worst variant pair, its max abs and max ULP, bitwise variant pairs, the
    worst oracle comparison's max abs (the variant pairs' worst comes first: the oracle's is
    almost always ``trunk vs oracle``). Without variant pairs, the worst of all."""
    w = worst(case, oracle=False) or worst(case)
    o = worst(case, oracle=True)
    pairs = [c for c in case.get("comparisons") or [] if not _is_oracle(c)]
    bitwise = f"{sum(c['bitwise_equal'] for c in pairs)}/{len(pairs)}" if pairs else "-"
    oracle = fmt(o["max_abs_diff"]) + ("" if o["passed"] else " FAIL") if o else "-"
    if w is None:
        return [case["name"], case["status"].upper(), case.get("error") or "", "", "", bitwise,
                oracle]  # fmt: skip
    return [
        case["name"], case["status"].upper(), pair_text(w), fmt(w["max_abs_diff"]),
        fmt(w["max_ulp"]), bitwise, oracle,
    ]  # fmt: skip


HEADERS = ["case", "result", "worst variant pair", "max abs", "max ULP", "bitwise pairs",
           "oracle max abs"]  # fmt: skip


#: Short names of the config keys in the table's case labels.
_LABEL_KEYS = {"initializer": "init", "bias_initializer": "bias", "activation": "act",
               "time_dim": "time", "learning_rate": "lr", "train_steps": "steps"}  # fmt: skip


def _label_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return "none" if value is None else str(value)


def short_labels(cases: list[dict[str, Any]]) -> dict[int, str]:
    """``{index: "#3 seq=5 init=he_normal"}``: each case's index and the options that differ
    between the cases (the full name is in the JSON and JUnit reports). Empty when a case
    has no config (reports written without one)."""
    if not cases or any(not isinstance(c.get("config"), dict) for c in cases):
        return {}
    keys = list(dict.fromkeys(k for c in cases for k in c["config"]))
    varying = [k for k in keys if len({repr(c["config"].get(k)) for c in cases}) > 1]
    return {
        c["index"]: " ".join(
            [f"#{c['index']}"]
            + [f"{_LABEL_KEYS.get(k, k)}={_label_value(c['config'].get(k))}" for k in varying]
        )
        for c in cases
    }


def listed_cases(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cases = doc["cases"]
    if len(cases) <= MAX_LISTED:
        return cases
    return [c for c in cases if c["status"] != "passed"]


def headline(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    where = ""
    if doc.get("shard"):
        k, n = doc["shard"]
        where = f" (shard {k}/{n} of a {doc['grid_size']}-case grid)"
    elif doc.get("merged_from"):
        where = f" (merged from {doc['merged_from']} reports)"
    verdict = "PASSED" if doc["passed"] else "FAILED"
    tail = ""
    if doc.get("complete") is False:
        planned = s["total"] + s.get("not_run", 0)
        tail += f"; incomplete: {s['total']} of {planned} planned cases present"
    if doc.get("interrupted"):
        tail += "; interrupted, partial report"
    elif doc.get("stopped_early"):
        tail += "; stopped at the first failure (--fail-fast)"
    if s.get("not_run") and doc.get("complete") is not False:
        tail += f"; {s['not_run']} not run"
    return (
        f"{verdict}: {s['passed']} passed, {s['failed']} failed, {s['errored']} errored "
        f"of {s['total']} cases{where}{tail}"
    )


def failure_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    for case in doc["cases"]:
        if case["status"] == "errored":
            lines.append(f"{case['name']}: error: {case['error']}")
        elif case["status"] == "failed":
            lines.append(f"{case['name']}: {case['verdict']}")
    return lines


def executor_lines(doc: dict[str, Any]) -> list[str]:
    """``--executor ray``: where the cases ran, the findings (workers running different
    versions) and every case that ran again after its worker died. Nothing for local runs."""
    executor = doc.get("executor")
    if not executor:
        return []
    workers = executor.get("workers") or {}
    lines = [f"Ray: {executor.get('cluster')}, {len(workers)} worker(s): " + "; ".join(
        f"{label} on {w.get('host')} (pid {w.get('pid')}) ran "
        f"{len(w.get('cases') or [])} case(s)" for label, w in workers.items()
    )]  # fmt: skip
    lines += [f"finding: {finding}" for finding in executor.get("findings") or []]
    for case in doc["cases"]:
        worker = case.get("worker") or {}
        if worker.get("retried"):
            lines.append(f"{case['name']}: ran again on {worker.get('id')}: {worker['retried']}")
    return lines


def reproduce_sections(doc: dict[str, Any], limit: int = MAX_LISTED) -> list[tuple[str, list[str]]]:
    """The "Not run" and "Reproduce" sections appended to the sweep reports: titles and items.

    Not run: every case of the plan that has no result, with why. Reproduce: the
    ``tdcheck compare`` command of every failed or errored case. At most ``limit`` items each.
    """
    sections = []
    not_run = [f"{e['name']}: {e['reason']}" for e in doc.get("not_run") or []]
    again = [c["reproduce"] for c in doc["cases"] if c.get("reproduce")]
    for title, items in ((f"Not run ({len(not_run)})", not_run), ("Reproduce", again)):
        if items:
            more = [f"... and {len(items) - limit} more (see the JSON report)"]
            sections.append((title, items[:limit] + (more if len(items) > limit else [])))
    return sections


def render_markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    out = [f"## {report_title(doc)}", "", f"**{headline(doc)}**", ""]
    out += ["| total | passed | failed | errored |", "|---:|---:|---:|---:|"]
    out += [f"| {s['total']} | {s['passed']} | {s['failed']} | {s['errored']} |", ""]
    cases = listed_cases(doc)
    if cases:
        out += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(case_row(c)) + " |" for c in cases]
    failures = failure_lines(doc)
    if failures:
        out += ["", "### Failures", ""] + [f"- {line}" for line in failures]
    ray_lines = executor_lines(doc)
    if ray_lines:
        out += ["", "### Workers", ""] + [f"- {line}" for line in ray_lines]
    for title, items in reproduce_sections(doc):
        out += ["", f"### {title}", ""]
        out += [f"- `{item}`" if item.startswith("tdcheck ") else f"- {item}" for item in items]
    return "\n".join(out) + "\n"


#: The terminal table's columns: the case on its own line when narrow, the numbers under it.
TABLE_HEADERS = ["case", "result", "max abs", "ULP", "bit", "oracle", "worst variant pair"]
WIDE_HEADERS = ["case", "result", "max abs", "max rel", "ULP", "bit", "margin", "oracle",
                "seconds", "worst variant pair"]  # fmt: skip
TABLE_LEGEND = (
    "max abs, ULP: of the worst variant pair; bit: variant pairs bitwise identical / all "
    "pairs; oracle: max abs of the worst comparison with the oracle"
)
SHORT_LEGEND = "case: # and the options that differ (full names: --wide, JSON, JUnit)"


def table_row(case: dict[str, Any], wide: bool = False) -> list[str]:
    """The terminal table's cells (an errored case's message is printed below the table)."""
    w = worst(case, oracle=False) or worst(case)
    name, result, pair, max_abs, max_ulp, bitwise, oracle = case_row(case)
    if w is None:  # errored: the message is printed below the table
        pair = max_abs = max_ulp = "-"
    if not wide:
        return [name, result, max_abs, max_ulp, bitwise, oracle, pair]
    max_rel = fmt(w["max_rel_diff"]) if w else "-"
    margin = fmt(w.get("margin")) if w and w.get("margin") is not None else "-"
    return [name, result, max_abs, max_rel, max_ulp, bitwise, margin, oracle,
            f"{case['seconds']:.2f}", pair]  # fmt: skip


def report_title(doc: dict[str, Any]) -> str:
    """``tdcheck merge`` for a merged report, else ``tdcheck sweep``."""
    return "tdcheck merge" if doc.get("merged_from") else "tdcheck sweep"


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

    s = doc["summary"]
    print_table(
        console, ["total", "passed", "failed", "errored"],
        [[str(s["total"]), str(s["passed"]), str(s["failed"]), str(s["errored"])]],
        title=report_title(doc), left=(),
    )  # fmt: skip
    cases = listed_cases(doc)
    if cases:
        headers = WIDE_HEADERS if wide else TABLE_HEADERS
        styles = {"PASSED": "green", "FAILED": "bold red", "ERRORED": "bold yellow"}
        rows: list[list[Any]] = [table_row(case, wide) for case in cases]
        last = len(headers) - 1  # the worst pair: beside the case name when stacked
        legend = TABLE_LEGEND
        layout, _ = table_layout(headers, rows, console.width, (0, last))
        if not wide and layout != "flat":  # the full names do not fit: short labels
            labels = short_labels(doc["cases"])
            if labels:
                room = console.width - 2 - max(len(str(r[last])) for r in rows)
                for case, row in zip(cases, rows, strict=True):
                    label = labels[case["index"]]
                    row[0] = label if len(label) <= room else f"#{case['index']}"
                legend += "\n" + SHORT_LEGEND
        for row in rows:
            row[1] = Text(row[1], style=styles[row[1]])
        name = "Cases" if len(cases) == len(doc["cases"]) else "Failed and errored cases"
        print_table(console, headers, rows, title=name, left=(0, 1, last), label=(0, last),
                    legend=legend)  # fmt: skip
    for line in failure_lines(doc):
        console.print(Text("  " + line))
    for line in executor_lines(doc):
        console.print(Text(line))
    for title, items in reproduce_sections(doc):
        console.print(Text(f"{title}:"))
        for item in items:
            console.print(Text("  " + item), soft_wrap=True)
    console.print(Text(headline(doc), style="bold green" if doc["passed"] else "bold red"))


def render(doc: dict[str, Any], fmt_name: str) -> str:
    return render_document(doc, fmt_name, render_markdown, render_table)
