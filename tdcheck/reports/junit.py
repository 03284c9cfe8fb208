"""JUnit XML for sweep reports: one ``testcase`` per case, ``failure``/``error`` with the numbers.

The layout is the one GitHub, GitLab and Jenkins read: ``testsuites > testsuite > testcase``,
``classname`` = ``tdcheck.commands.sweep``, ``name`` = the case name built from its configuration.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from tdcheck.reports.render import fmt


def comparison_text(c: dict[str, Any]) -> str:
    pair = f"{c['a']} vs {c['b']}"
    if c.get("quantity", "output") != "output":
        pair += f" [{c['quantity']}]"
    return (
        f"{'PASS' if c['passed'] else 'FAIL'} {c.get('kind', 'output')} {pair}: "
        f"max_abs_diff={fmt(c['max_abs_diff'])} max_rel_diff={fmt(c['max_rel_diff'])} "
        f"mean_abs_diff={fmt(c['mean_abs_diff'])} max_ulp={fmt(c['max_ulp'])} "
        f"mismatched={c['mismatched']}/{c['total']} worst_index={c['worst_index']} "
        f"bitwise_equal={c['bitwise_equal']} atol={fmt(c['atol'])} rtol={fmt(c['rtol'])}"
    )


def to_junit(doc: dict[str, Any]) -> str:
    """The XML text for a sweep (or merged) JSON document."""
    s = doc["summary"]
    seconds = sum(float(c.get("seconds") or 0) for c in doc["cases"])
    root = ET.Element(
        "testsuites", name="tdcheck", tests=str(s["total"]), failures=str(s["failed"]),
        errors=str(s["errored"]), time=f"{seconds:.3f}",
    )  # fmt: skip
    suite = ET.SubElement(
        root, "testsuite", name="tdcheck sweep", tests=str(s["total"]),
        failures=str(s["failed"]), errors=str(s["errored"]), skipped="0", time=f"{seconds:.3f}",
    )  # fmt: skip
    env = doc.get("environment") or {}
    if env:
        props = ET.SubElement(suite, "properties")
        for key, value in env.items():
            ET.SubElement(props, "property", name=str(key), value=str(value))
    for case in doc["cases"]:
        tc = ET.SubElement(
            suite, "testcase", classname="tdcheck.commands.sweep", name=case["name"],
            time=f"{float(case.get('seconds') or 0):.3f}",
        )  # fmt: skip
        if case["status"] == "failed":
            failed = [c for c in case["comparisons"] if not c["passed"]]
            node = ET.SubElement(tc, "failure", message=case["verdict"], type="NotEquivalent")
            node.text = "\n".join(comparison_text(c) for c in failed)
        elif case["status"] == "errored":
            node = ET.SubElement(tc, "error", message=case["error"] or "", type="Error")
            node.text = case["error"] or ""
        if case.get("comparisons"):
            ET.SubElement(tc, "system-out").text = "\n".join(
                comparison_text(c) for c in case["comparisons"]
            )
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
