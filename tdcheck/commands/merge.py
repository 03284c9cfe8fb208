"""``tdcheck merge``: combine the JSON reports of sweep shards into one report."""

from __future__ import annotations

import json
from typing import Any

from tdcheck.commands.sweep import summarize
from tdcheck.errors import ConfigError


def load_report(path: str) -> dict[str, Any]:
    """Read one ``tdcheck sweep --format json`` report; exit 2 on anything else."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"merge: no such file {path!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"merge: {path!r} is not a JSON report ({exc})") from None
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "sweep"
        or not isinstance(doc.get("cases"), list)
    ):
        raise ConfigError(f"merge: {path!r} is not a tdcheck sweep JSON report")
    return doc


def merge(docs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One report with every case, ordered by grid index; the same index twice is an error."""
    seen: dict[int, str] = {}
    cases = []
    for doc, name in zip(docs, names, strict=True):
        for case in doc["cases"]:
            index = case["index"]
            if index in seen:
                raise ConfigError(
                    f"merge: case {index} ({case['name']}) is in both {seen[index]!r} and {name!r}"
                )
            seen[index] = name
            cases.append(case)
    cases.sort(key=lambda c: c["index"])
    sizes = {doc.get("grid_size") for doc in docs}
    summary = summarize([c["status"] for c in cases])
    interrupted = any(doc.get("interrupted") for doc in docs)
    grid_size = sizes.pop() if len(sizes) == 1 else None
    complete = grid_size is not None and len(cases) == grid_size
    return {
        "schema_version": docs[0].get("schema_version", 1),
        "kind": "sweep",
        # A missing shard must not look like a green run.
        "passed": summary["passed"] == summary["total"] and not interrupted and complete,
        "summary": summary,
        "grid_size": grid_size,
        "shard": None,
        "merged_from": len(docs),
        "complete": complete,
        "interrupted": interrupted,
        "stopped_early": any(doc.get("stopped_early") for doc in docs),
        "environment": docs[0].get("environment") or {},
        "cases": cases,
    }
