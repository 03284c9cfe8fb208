"""``tdcheck merge``: combine the JSON reports of sweep shards into one report.

Merge never loads TensorFlow and refuses (exit 2) anything it cannot vouch for: a file that is
not JSON or not a sweep report, a report missing a key it needs, reports of different sweeps
(their grid fingerprints differ: the differing keys are named; the fingerprint holds the
resolved backend, the Keras major version and the environment variables that change numerics),
reports whose runs recorded another backend, framework version or device, the same shard or
the same case twice. What it can report honestly it reports: shards that were not given and
cases that did not run are listed in ``not_run`` (with ``missing_shards``), so the merged
report fails and its JUnit shows them as errors.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tdcheck.commands.sweep import STATUSES, summarize
from tdcheck.core.grid import fingerprint_differences, fingerprint_hash
from tdcheck.errors import ConfigError

#: The largest report merge reads (a 5000-case sweep with gradients is about 60 MB).
MAX_REPORT_BYTES = 512 * 1024**2
#: Keys a report must have, with the type each must be.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "passed": bool,
    "grid_size": int,
    "shard": (list, type(None)),
    "interrupted": bool,
    "stopped_early": bool,
    "fingerprint": dict,
    "plan": dict,
    "cases": list,
    "not_run": list,
}
CASE_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "index": int,
    "name": str,
    "status": str,
    "verdict": str,
    "error": (str, type(None)),
    "seconds": (int, float),
    "reproduce": (str, type(None)),
    "comparisons": list,
}
_NUMBER = (int, float, str, type(None))  # strict JSON writes inf/nan as strings
#: What the renderers and JUnit read from each comparison.
COMPARISON_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "a": str,
    "b": str,
    "passed": bool,
    "max_abs_diff": _NUMBER,
    "max_rel_diff": _NUMBER,
    "mean_abs_diff": _NUMBER,
    "max_ulp": _NUMBER,
    "mismatched": int,
    "total": int,
    "worst_index": (list, type(None)),
    "bitwise_equal": bool,
    "atol": _NUMBER,
    "rtol": _NUMBER,
}


def load_report(path: str) -> dict[str, Any]:
    """Read one ``tdcheck sweep --format json`` report and check its shape (exit 2 if bad)."""
    try:
        with open(path, encoding="utf-8") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_REPORT_BYTES:
                raise ConfigError(f"merge: {path!r} is {size} bytes, over the "
                                  f"{MAX_REPORT_BYTES} bytes a sweep report may have")  # fmt: skip
            doc = json.loads(handle.read(MAX_REPORT_BYTES + 1))
    except FileNotFoundError:
        raise ConfigError(f"merge: no such file {path!r}") from None
    except IsADirectoryError:
        raise ConfigError(f"merge: {path!r} is a folder, not a report") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"merge: {path!r} is not a JSON report ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "sweep":
        raise ConfigError(f"merge: {path!r} is not a tdcheck sweep JSON report")
    if not isinstance(doc.get("environment", {}), dict):
        raise ConfigError(f"merge: {path!r}: 'environment' has the wrong type")
    if "merged_from" in doc:
        raise ConfigError(f"merge: {path!r} is already a merged report; merge the shard reports")
    _check_keys(doc, REQUIRED, f"{path!r}")
    fp, plan = doc["fingerprint"], doc["plan"]
    _check_keys(fp, {"hash": str, "shards": int}, f"{path!r}: fingerprint")
    if fingerprint_hash(fp) != fp["hash"]:
        raise ConfigError(f"merge: {path!r}: fingerprint.hash does not match the fingerprint "
                          "(the report was edited); merge unedited shard reports")  # fmt: skip
    _check_keys(plan, {"indices": list, "names": list}, f"{path!r}: plan")
    indices, plan_names = plan["indices"], plan["names"]
    if (
        len(indices) != len(plan_names)
        or not all(type(i) is int for i in indices)
        or not all(isinstance(n, str) for n in plan_names)
        or len(set(indices)) != len(indices)
    ):
        raise ConfigError(f"merge: {path!r}: 'plan' must hold as many distinct whole-number "
                          "indices as names")  # fmt: skip
    shard = doc["shard"]
    if shard is not None and not (
        len(shard) == 2 and all(type(v) is int for v in shard) and 1 <= shard[0] <= shard[1]
    ):
        raise ConfigError(f"merge: {path!r}: 'shard' must be [K, N] with 1 <= K <= N")
    if (shard[1] if shard else 1) != fp["shards"]:
        raise ConfigError(f"merge: {path!r}: 'shard' disagrees with fingerprint.shards")
    for i, case in enumerate(doc["cases"]):
        where = f"{path!r}: cases[{i}]"
        if not isinstance(case, dict):
            raise ConfigError(f"merge: {where} is not an object")
        _check_keys(case, CASE_REQUIRED, where)
        if case["status"] not in STATUSES:
            raise ConfigError(f"merge: {where}: unknown status {case['status']!r}")
        for j, comparison in enumerate(case["comparisons"]):
            if not isinstance(comparison, dict):
                raise ConfigError(f"merge: {where}.comparisons[{j}] is not an object")
            _check_keys(comparison, COMPARISON_REQUIRED, f"{where}.comparisons[{j}]")
    for i, entry in enumerate(doc["not_run"]):
        where = f"{path!r}: not_run[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"merge: {where} is not an object")
        _check_keys(entry, {"index": int, "name": str, "reason": str}, where)
    return doc


def _check_keys(doc: dict[str, Any], required: dict[str, Any], where: str) -> None:
    for key, kind in required.items():
        if key not in doc:
            raise ConfigError(f"merge: {where} has no {key!r} key (is it a current sweep report?)")
        value = doc[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"merge: {where}: {key!r} has the wrong type")


def check_same_sweep(docs: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse reports whose grid fingerprints differ, naming the keys and the files."""
    first = docs[0]["fingerprint"]
    for doc, name in zip(docs[1:], names[1:], strict=True):
        if doc["fingerprint"]["hash"] != first["hash"]:
            keys = fingerprint_differences(first, doc["fingerprint"]) or ["hash"]
            raise ConfigError(
                f"merge: {names[0]!r} and {name!r} are reports of different sweeps "
                f"(they differ in {', '.join(keys)}); merge only the shards of one sweep"
            )


#: What each shard's report says it ran with that makes two runs different sweeps.
RUN_KEYS = ("backend", "keras", "tensorflow", "jax", "torch", "device", "tf32", "onednn")


def check_same_runs(docs: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse shards that ran on different backends, framework versions or devices, as
    their reports' ``environment`` records (shards that ran nothing record none)."""
    ran = [(doc["environment"], name) for doc, name in zip(docs, names, strict=True)
           if doc.get("environment")]  # fmt: skip
    if not ran:
        return
    first, first_name = ran[0]
    for env, name in ran[1:]:
        for key in (*RUN_KEYS, "backends"):
            if json.dumps(first.get(key), sort_keys=True) != json.dumps(
                env.get(key), sort_keys=True
            ):
                raise ConfigError(
                    f"merge: {first_name!r} and {name!r} ran differently ({key}: "
                    f"{_short(first.get(key))} vs {_short(env.get(key))}); merge only the "
                    "shards of one sweep run in one environment"
                )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def merge(docs: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One report with every case, ordered by grid index; see the module docstring."""
    check_same_sweep(docs, names)
    check_same_runs(docs, names)
    plan = docs[0]["plan"]
    shards_n = docs[0]["fingerprint"]["shards"]
    for doc, name in zip(docs[1:], names[1:], strict=True):
        if doc["plan"] != plan:
            raise ConfigError(f"merge: {names[0]!r} and {name!r} have the same fingerprint "
                              "but different plans (edited reports?)")  # fmt: skip
    planned = dict(zip(plan["indices"], plan["names"], strict=True))
    shard_of = {index: position % shards_n + 1 for position, index in enumerate(plan["indices"])}
    shard_files: dict[int, str] = {}
    seen: dict[int, str] = {}
    cases: list[dict[str, Any]] = []
    not_run: list[dict[str, Any]] = []
    for doc, name in zip(docs, names, strict=True):
        k = doc["shard"][0] if doc["shard"] else 1
        if k in shard_files:
            raise ConfigError(f"merge: shard {k}/{shards_n} is given twice "
                              f"({shard_files[k]!r} and {name!r})")  # fmt: skip
        shard_files[k] = name
        for entry, kind in [(c, "case") for c in doc["cases"]] + [
            (e, "not run") for e in doc["not_run"]
        ]:
            index = entry["index"]
            if index in seen:
                raise ConfigError(
                    f"merge: case {index} ({entry['name']}) is in both {seen[index]!r} and {name!r}"
                )
            if planned.get(index) != entry["name"]:
                raise ConfigError(
                    f"merge: {name!r}: case {index} ({entry['name']}) is not in the sweep's plan"
                )
            if shard_of[index] != k:
                raise ConfigError(
                    f"merge: {name!r}: case {index} ({entry['name']}) belongs to shard "
                    f"{shard_of[index]}/{shards_n}, not {k}/{shards_n}"
                )
            seen[index] = name
            (cases if kind == "case" else not_run).append(entry)
    cases.sort(key=lambda c: c["index"])
    missing_shards = [k for k in range(1, shards_n + 1) if k not in shard_files]
    for position, index in enumerate(plan["indices"]):
        if index not in seen:
            k = position % shards_n + 1
            reason = (
                f"not run: the report of shard {k}/{shards_n} was not given"
                if k in missing_shards
                else f"not run: missing from the report of shard {k}/{shards_n}"
            )
            not_run.append({"index": index, "name": planned[index], "shard": k,
                            "reason": reason})  # fmt: skip
    not_run.sort(key=lambda e: e["index"])
    summary = summarize([c["status"] for c in cases], len(not_run))
    interrupted = any(doc["interrupted"] for doc in docs)
    complete = not not_run and len(cases) == len(planned)
    return {
        "schema_version": docs[0]["schema_version"],
        "kind": "sweep",
        # A missing shard or case must not look like a green run.
        "passed": summary["passed"] == summary["total"] and not interrupted and complete,
        "summary": summary,
        "grid_size": docs[0]["grid_size"],
        "shard": None,
        "merged_from": len(docs),
        "complete": complete,
        "missing_shards": missing_shards,
        "interrupted": interrupted,
        "stopped_early": any(doc["stopped_early"] for doc in docs),
        "fingerprint": {**docs[0]["fingerprint"]},
        "plan": plan,
        "environment": next((d["environment"] for d in docs if d.get("environment")), {}),
        "cases": cases,
        "not_run": not_run,
    }


def missing_lines(doc: dict[str, Any], limit: int = 10) -> list[str]:
    """One line per missing shard and the not-run cases it held (for stderr)."""
    lines = []
    n = doc["fingerprint"]["shards"]
    for k in doc.get("missing_shards") or []:
        names = [e["name"] for e in doc["not_run"] if e.get("shard") == k]
        shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)"
                                            if len(names) > limit else "")  # fmt: skip
        noun = "case" if len(names) == 1 else "cases"
        lines.append(f"merge: shard {k}/{n} is missing ({len(names)} {noun}: {shown or 'none'})")
    return lines
