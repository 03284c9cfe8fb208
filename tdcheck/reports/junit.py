"""JUnit XML for sweep reports and single comparisons.

The layout is the one GitHub, GitLab and Jenkins read: ``testsuites > testsuite > testcase``.

- Sweep (and merged) reports: ``classname`` = ``tdcheck.sweep``, one ``testcase`` per case
  named from its configuration; ``failure`` (type ``NotEquivalent``) or ``error`` with the
  numbers and the ``tdcheck compare`` command that reproduces the case. A case of the plan that
  did not run (interrupted, stopped by ``--fail-fast``, or in a shard whose report was not given
  to merge) is a testcase with an ``error`` of type ``NotRun`` saying why: a JUnit-only reader
  sees red, as the exit code says.
- ``compare --junit``: one ``testsuite`` named after the configuration, one ``testcase`` per
  judged pair, a ``failure`` with the pair's statistics when it fails.
- ``models --junit`` and ``rewrite --junit``: one ``testcase`` per check and output, a
  ``failure`` with its statistics when it fails (a rewrite's regressions too).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from tdcheck.core.config import CompareConfig
from tdcheck.core.grid import case_name
from tdcheck.reports.render import fmt


def comparison_text(c: dict[str, Any]) -> str:
    pair = f"{c['a']} vs {c['b']}"
    if c.get("quantity", "output") != "output":
        pair += f" [{c['quantity']}]"
    text = (
        f"{'PASS' if c['passed'] else 'FAIL'} {c.get('kind', 'output')} {pair}: "
        f"max_abs_diff={fmt(c['max_abs_diff'])} max_rel_diff={fmt(c['max_rel_diff'])} "
        f"mean_abs_diff={fmt(c['mean_abs_diff'])} max_ulp={fmt(c['max_ulp'])} "
        f"mismatched={c['mismatched']}/{c['total']} worst_index={c['worst_index']} "
        f"bitwise_equal={c['bitwise_equal']} atol={fmt(c['atol'])} rtol={fmt(c['rtol'])}"
    )
    for key in ("margin", "allowed", "rule"):  # judged-by fields, where the report has them
        if c.get(key) is not None:
            text += f" {key}={fmt(c[key]) if key != 'rule' else c[key]}"
    if c.get("note"):
        text += f" note={c['note']}"
    return text


def _suite(root: ET.Element, name: str, counts: dict[str, int], seconds: float) -> ET.Element:
    attrs = {"tests": str(counts["tests"]), "failures": str(counts["failures"]),
             "errors": str(counts["errors"]), "time": f"{seconds:.3f}"}  # fmt: skip
    root.attrib.update(attrs)
    return ET.SubElement(root, "testsuite", {"name": name, "skipped": "0", **attrs})


def _properties(suite: ET.Element, env: dict[str, Any]) -> None:
    if env:
        props = ET.SubElement(suite, "properties")
        for key, value in env.items():
            ET.SubElement(props, "property", name=str(key), value=str(value))


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_junit(doc: dict[str, Any]) -> str:
    """The XML text for a sweep (or merged) JSON document."""
    s = doc["summary"]
    not_run = doc.get("not_run") or []
    seconds = sum(float(c.get("seconds") or 0) for c in doc["cases"])
    counts = {"tests": s["total"] + len(not_run), "failures": s["failed"],
              "errors": s["errored"] + len(not_run)}  # fmt: skip
    root = ET.Element("testsuites", name="tdcheck")
    suite = _suite(root, "tdcheck sweep", counts, seconds)
    _properties(suite, doc.get("environment") or {})
    entries = [(c["index"], c, None) for c in doc["cases"]]
    entries += [(e["index"], None, e) for e in not_run]
    for _, case, missing in sorted(entries, key=lambda entry: entry[0]):
        if missing is not None:
            tc = ET.SubElement(suite, "testcase", classname="tdcheck.sweep",
                               name=missing["name"], time="0.000")  # fmt: skip
            node = ET.SubElement(tc, "error", message=missing["reason"], type="NotRun")
            node.text = f"{missing['name']}: {missing['reason']}"
            continue
        assert case is not None
        tc = ET.SubElement(
            suite, "testcase", classname="tdcheck.sweep", name=case["name"],
            time=f"{float(case.get('seconds') or 0):.3f}",
        )  # fmt: skip
        again = f"\nReproduce: {case['reproduce']}" if case.get("reproduce") else ""
        if case["status"] == "failed":
            failed = [c for c in case["comparisons"] if not c["passed"]]
            node = ET.SubElement(tc, "failure", message=case["verdict"], type="NotEquivalent")
            node.text = "\n".join(comparison_text(c) for c in failed) + again
        elif case["status"] == "errored":
            node = ET.SubElement(tc, "error", message=case["error"] or "", type="Error")
            node.text = (case["error"] or "") + again
        if case.get("comparisons"):
            ET.SubElement(tc, "system-out").text = "\n".join(
                comparison_text(c) for c in case["comparisons"]
            )
    return _text(root)


def result_name(config: dict[str, Any]) -> str:
    """The case name of a compare report's (resolved) ``config``, as a sweep would name it."""
    fields = {f: config[f] for f in CompareConfig.__dataclass_fields__ if f in config}
    fields["variants"] = tuple(fields.get("variants") or ())
    if fields.get("lengths") is not None:
        fields["lengths"] = tuple(fields["lengths"])
    return case_name(CompareConfig(**fields))


def compare_to_junit(doc: dict[str, Any], name: str) -> str:
    """The XML text for one ``compare`` JSON document: a testcase per judged pair."""
    comparisons = doc["comparisons"]
    failed = sum(not c["passed"] for c in comparisons)
    root = ET.Element("testsuites", name="tdcheck")
    suite = _suite(root, f"tdcheck compare {name}",
                   {"tests": len(comparisons), "failures": failed, "errors": 0}, 0.0)  # fmt: skip
    _properties(suite, doc.get("environment") or {})
    for c in comparisons:
        label = f"{c.get('kind', 'output')} {c['a']} vs {c['b']}"
        if c.get("quantity", "output") != "output":
            label += f" [{c['quantity']}]"
        tc = ET.SubElement(suite, "testcase", classname="tdcheck.compare", name=label,
                           time="0.000")  # fmt: skip
        if not c["passed"]:
            node = ET.SubElement(tc, "failure", message=doc["verdict"], type="NotEquivalent")
            node.text = comparison_text(c)
        else:
            ET.SubElement(tc, "system-out").text = comparison_text(c)
    return _text(root)


def check_text(c: dict[str, Any]) -> str:
    """One ``models``/``rewrite`` check (a model's output on one input set) in one line."""
    text = (
        f"{'PASS' if c['passed'] else 'FAIL'} {c['check']} output {c['output']}: "
        f"max_abs_diff={fmt(c['max_abs_diff'])} max_rel_diff={fmt(c['max_rel_diff'])} "
        f"mean_abs_diff={fmt(c['mean_abs_diff'])} max_ulp={fmt(c['max_ulp'])} "
        f"mismatched={c['mismatched']}/{c['total']} worst_index={c['worst_index']} "
        f"bitwise_equal={c['bitwise_equal']} atol={fmt(c['atol'])} rtol={fmt(c['rtol'])}"
    )
    if c.get("note"):
        text += f" note={c['note']}"
    return text


def models_to_junit(doc: dict[str, Any]) -> str:
    """The XML text for a ``models`` or ``rewrite`` JSON document: a testcase per check and
    output (classname ``tdcheck.models`` / ``tdcheck.rewrite``); a rewrite's regressions and
    a parameter-count change are failing testcases of their own."""
    command = doc["command"]
    classname = f"tdcheck.{command}"
    cases: list[tuple[str, str | None, str]] = [
        (f"{c['check']} [{c['output']}]", None if c["passed"] else check_text(c), check_text(c))
        for c in doc["comparisons"]
    ]
    if command == "rewrite":
        cases += [(f"regression {n + 1}", text, text) for n, text in enumerate(doc["regressions"])]
        before, after = doc["before"]["params"], doc["after"]["params"]
        if before != after:
            text = f"parameters differ: {before} before, {after} after"
            cases.append(("parameters", text, text))
        name = f"tdcheck rewrite {doc['in']}"
    else:
        name = f"tdcheck models {doc['a']['path']} vs {doc['b']['path']}"
    failed = sum(failure is not None for _, failure, _ in cases)
    root = ET.Element("testsuites", name="tdcheck")
    suite = _suite(root, name, {"tests": len(cases), "failures": failed, "errors": 0}, 0.0)
    if doc.get("backend"):
        _properties(suite, {"backend": doc["backend"]})
    for label, failure, text in cases:
        tc = ET.SubElement(suite, "testcase", classname=classname, name=label, time="0.000")
        if failure is not None:
            node = ET.SubElement(tc, "failure", message=doc["verdict"], type="NotEquivalent")
            node.text = failure
        else:
            ET.SubElement(tc, "system-out").text = text
    return _text(root)
