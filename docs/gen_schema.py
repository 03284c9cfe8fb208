"""Regenerate docs/schema.md, the JSON schema of every report, from the code, or check it.

python docs/gen_schema.py          # rewrite docs/schema.md
python docs/gen_schema.py --check  # exit 1 if docs/schema.md differs from the code

It runs tiny real reports (a passing compare with gradients and training, a failing one, a
sweep stopped by --fail-fast after a failed case, a merge with a missing shard, a bench with a
fixed clock), collects
every field with the JSON types seen, and marks a field nullable when it was seen as null or
its Python annotation allows None. A test fails when docs/schema.md is stale, and another
when docs/guide.md does not describe a field listed here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any

TARGET = Path(__file__).with_name("schema.md")

JSON_TYPES = {bool: "bool", int: "integer", float: "number", str: "string", list: "array",
              dict: "object", type(None): "null"}  # fmt: skip
#: Objects whose keys are listed inline rather than as rows of their own.
INLINE = {"config", "environment", "plan", "equivalence", "summary", "training", "fingerprint"}


def documents() -> dict[str, list[dict[str, Any]]]:
    """Real reports of each kind, several per kind so that optional fields show up."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tdcheck.commands.bench import BenchPlan, run_bench
    from tdcheck.commands.compare import compare
    from tdcheck.commands.merge import merge
    from tdcheck.commands.sweep import plan_sweep, run_sweep
    from tdcheck.core.config import CompareConfig

    small = {"hidden": 3, "seq": 2}
    passing = compare(**small, grad=True, train_steps=1)
    failing = compare(**small, weights="independent", initializer="he_normal")
    # A failed case with its reproduce command and, after --fail-fast, a case not run.
    unequal = CompareConfig(**small, weights="independent", initializer="he_normal")
    sweep = run_sweep(plan_sweep({"seed": "0,1"}, unequal), fail_fast=True).to_dict()
    # Shard 1 of 2 merged alone: shard 2's case is missing.
    shard = run_sweep(plan_sweep({"seq": "2,3"}, CompareConfig(hidden=3), shard=(1, 2)))
    merged = merge([shard.to_dict()], ["shard-1.json"])
    ticks = itertools.count()
    plan = BenchPlan(config=CompareConfig(hidden=3, variants=("dense", "time-distributed")),
                     seqs=(2,), batches=(1,), repeats=1, warmup=0).validated()  # fmt: skip
    bench = run_bench(plan, clock=lambda: next(ticks) * 0.001).to_dict()
    return {
        "compare": [json.loads(r.to_json()) for r in (passing, failing)],
        "sweep": [sweep, merged],
        "bench": [bench],
    }


def annotation_classes() -> dict[str, list[type]]:
    """The classes whose annotations say which fields of each list may be None."""
    from tdcheck.commands.bench import BenchResult, Timing
    from tdcheck.commands.sweep import CaseResult, SweepResult
    from tdcheck.core.result import CompareResult, Comparison
    from tdcheck.core.stats import ArrayStats

    return {
        "compare": [CompareResult], "compare.comparisons[]": [Comparison, ArrayStats],
        "sweep": [SweepResult], "sweep.cases[]": [CaseResult],
        "sweep.cases[].comparisons[]": [Comparison, ArrayStats],
        "bench": [BenchResult], "bench.results[]": [Timing], "bench.reference[]": [Timing],
    }  # fmt: skip


def _annotation(classes: list[type], key: str) -> str:
    """The Python annotation of ``key`` (a dataclass field or a property), as text."""
    from tdcheck.core.stats import ArrayStats

    names = {"ArrayStats": ArrayStats}  # result.py imports it for type checking only
    for cls in classes:
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls, localns=names)
            if key in hints:
                return str(hints[key])
        attr = getattr(cls, key, None)
        if isinstance(attr, property) and attr.fget is not None:
            return str(typing.get_type_hints(attr.fget, localns=names).get("return"))
    return ""


def _json_type_of(annotation: str) -> str:
    for word, name in (("tuple", "array"), ("list", "array"), ("dict", "object"),
                       ("bool", "bool"), ("str", "string"), ("float", "number"),
                       ("int", "integer")):  # fmt: skip
        if word in annotation:
            return name
    return "null"


def collect(kind: str, docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{path: {"types": set, "keys": set}}`` over every document of one kind."""
    fields: dict[str, dict[str, Any]] = {}

    def walk(path: str, value: Any) -> None:
        entry = fields.setdefault(path, {"types": set(), "keys": set()})
        entry["types"].add(JSON_TYPES[type(value)])
        if isinstance(value, dict):
            entry["keys"] |= set(value)
            if path.split(".")[-1] not in INLINE or path == kind:
                for key, item in value.items():
                    walk(f"{path}.{key}", item)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                walk(f"{path}[]", item)

    for doc in docs:
        walk(kind, doc)
    for path in fields:
        parent, _, key = path.rpartition(".")
        top = parent == kind and not key.endswith("[]")
        fields[path]["always"] = not top or all(key in doc for doc in docs)
    return fields


def render() -> str:
    docs = documents()
    classes = annotation_classes()
    out = [
        "# JSON schema of the reports",
        "",
        "Generated from real reports by `python docs/gen_schema.py`; a test fails when it is",
        "stale. `null?` is yes when the field can be `null` (seen as null, or its Python",
        'annotation allows None). Any number may also be the string `"inf"`, `"-inf"` or',
        '`"nan"` (strict JSON). The meaning of each field is in the guide\'s JSON schema section.',
        "",
    ]
    for kind, kind_docs in docs.items():
        fields = collect(kind, kind_docs)
        out += [f"## `{kind}`", "", "| field | type | null? | present |", "|---|---|---|---|"]
        for path, entry in fields.items():
            if path == kind:
                continue
            parent, _, key = path.rpartition(".")
            annotation = _annotation(classes.get(parent, []), key)
            types = set(entry["types"] - {"null"}) or {_json_type_of(annotation)}
            if types == {"integer", "number"}:
                types = {"number"}
            text = " or ".join(sorted(types))
            if path.split(".")[-1] in INLINE and entry["keys"]:
                text += ": " + ", ".join(f"`{k}`" for k in sorted(entry["keys"]))
            nullable = "null" in entry["types"] or "None" in annotation
            present = "always" if entry["always"] else "merged reports"
            out.append(f"| `{path}` | {text} | {'yes' if nullable else 'no'} | {present} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/schema.md is stale: run python docs/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
