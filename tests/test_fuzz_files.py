"""Seeded fuzzing of every reader of user files: .keras, .h5, .npz (baselines and inputs)
and sweep reports (JSON).

Each file is a real one (saved by Keras, written by ``--save-arrays``, by ``sweep``), mutated
by seeded byte flips (flip, truncate, zero a range, splice) and by structure mutations (a
value of the decoded config/report replaced by a hostile one: a wrong type, an object where a
number belongs, a 600-deep list, invalid UTF-8, NaN...). Every outcome must be exit 0, 1 or 2,
never a traceback nor exit 3 ("unexpected"), with exactly one line on stderr for 2, and a
multi-file ``scan`` must still report the good file given beside the bad one.

The number of cases per kind is ``TDCHECK_FUZZ_CASES`` (default 60; the issue's measurement
ran 2000).
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tdcheck.cli import cli
from tdcheck.commands.models import load_inputs
from tdcheck.core import baseline
from tdcheck.errors import ConfigError

CASES = int(os.environ.get("TDCHECK_FUZZ_CASES", "60"))


def _deep(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    None, 0, -1, 10**40, 1.5, float("nan"), True, "", "x", "->", "ab,bc->", "\udcff",
    [], [None], {}, {"config": [1]}, {"class_name": 3}, [[1, [2]]], "a" * 5000, _deep(600),
]  # fmt: skip


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key in list(value):
            yield from _paths(value[key], (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def mutate_structure(doc, rng: random.Random):
    """``doc`` with 1-3 of its values (at any depth) replaced by hostile ones."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        node = doc
        for key in path[:-1]:
            node = node[key]
        value = rng.choice(HOSTILE)
        # a fresh copy; the 600-deep list is built anew (deepcopy of it would exceed Python's
        # recursion limit in the test itself, not in tdcheck)
        node[path[-1]] = _deep(600) if value is HOSTILE[-1] else copy.deepcopy(value)
    return doc


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One seeded byte-level damage: flips, a truncation, a zeroed range or a splice."""
    data = bytearray(data)
    kind = rng.choice(["flip", "flip", "truncate", "zero", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)) :]
    elif kind == "zero":
        start = rng.randrange(len(data))
        data[start : start + rng.randint(1, 256)] = bytes(min(256, len(data) - start))
    else:
        start, end = sorted(rng.randrange(len(data)) for _ in range(2))
        data[start:start] = data[start:end]
    return bytes(data)


def dumps(doc) -> bytes:
    return json.dumps(doc, allow_nan=True, default=str).encode("utf-8", "surrogateescape")


def run(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "120"})


def contract(result, what: str) -> str | None:
    """Why ``result`` breaks the contract (None when it keeps it)."""
    if result.exit_code not in (0, 1, 2):
        return f"{what}: exit {result.exit_code}: {result.stderr[-300:]!r}"
    if "Traceback" in result.stderr or "unexpected" in result.stderr:
        return f"{what}: {result.stderr[-300:]!r}"
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        if len(errors) != 1 or not errors[0].startswith("tdcheck: error: "):
            return f"{what}: exit 2 without one error line: {result.stderr!r}"
    return None


def _report(problems: list[str], cases: int) -> None:
    assert not problems, f"{len(problems)} of {cases} cases broke the contract:\n" + "\n".join(
        problems[:10]
    )


# -- model files ----------------------------------------------------------------------------


def _zip_members(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def _scan_both(runner, bad: str, good: str, what: str) -> str | None:
    table = run(runner, "scan", bad, good)  # the table renders whatever the file held
    problem = contract(table, what + " (table)")
    if problem is None and (good not in table.stdout or (table.exit_code != 2 and
                            "unreadable" in table.stdout)):  # fmt: skip
        problem = f"{what}: the table does not report the good file: {table.stdout[-300:]!r}"
    result = run(runner, "scan", "--format", "json", bad, good)
    problem = problem or contract(result, what)
    if problem is None:
        files = json.loads(result.stdout)["files"]
        if [f["path"] for f in files] != [bad, good] or files[1]["error"] is not None:
            problem = f"{what}: the good file beside it was not reported: {result.stdout[:300]}"
    return problem


def test_scan_survives_mutated_keras_files(saved_models, tmp_path, runner):
    rng = random.Random(1701)
    sources = [saved_models[n] for n in ("functional", "nested", "two", "masked", "conv")]
    problems = []
    for i in range(CASES):
        source = rng.choice(sources)
        members = _zip_members(source)
        target = tmp_path / f"k{i}.keras"
        if i % 3 == 0:
            target.write_bytes(mutate_bytes(Path(source).read_bytes(), rng))
        else:
            name = "config.json" if i % 3 == 1 else "metadata.json"
            members[name] = dumps(mutate_structure(json.loads(members[name]), rng))
            _write_zip(target, members)
        problem = _scan_both(runner, str(target), saved_models["sequential"], f"case {i}")
        if problem:
            problems.append(problem)
    _report(problems, CASES)


def test_scan_survives_mutated_h5_files(saved_models, tmp_path, runner):
    h5py = pytest.importorskip("h5py")
    rng = random.Random(1702)
    source = saved_models["h5"]
    raw = Path(source).read_bytes()
    with h5py.File(source, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
    problems = []
    for i in range(CASES):
        target = tmp_path / f"h{i}.h5"
        if i % 2 == 0:
            target.write_bytes(mutate_bytes(raw, rng))
        else:
            target.write_bytes(raw)
            with h5py.File(target, "r+") as handle:
                choice = i % 6
                if choice == 1:  # invalid UTF-8 in the config
                    handle.attrs["model_config"] = np.bytes_(b'{"class_name": "\xff\xfe"}')
                elif choice == 3:
                    handle.attrs["keras_version"] = np.bytes_(b"\xff\xc0 2.1")
                else:
                    handle.attrs["model_config"] = dumps(mutate_structure(config, rng))
        problem = _scan_both(runner, str(target), saved_models["sequential"], f"case {i}")
        if problem:
            problems.append(problem)
    _report(problems, CASES)


def test_rewrite_and_models_refuse_mutated_keras_configs(saved_models, tmp_path, runner):
    """Keras loading a malformed config: exit 2 naming the file, never 3 (a dozen cases:
    each one loads Keras)."""
    rng = random.Random(1703)
    members = _zip_members(saved_models["functional"])
    config = json.loads(members["config.json"])
    problems = []
    cases = max(6, CASES // 10)
    for i in range(cases):
        target = tmp_path / f"r{i}.keras"
        _write_zip(target, {**members, "config.json": dumps(mutate_structure(config, rng))})
        args = (["rewrite", str(target), "--dry-run", "--checks", "1", "--no-timing"]
                if i % 2 else ["models", saved_models["functional"], str(target), "--checks", "1"])  # fmt: skip
        problem = contract(run(runner, *args), f"case {i} ({args[0]})")
        if problem:
            problems.append(problem)
    _report(problems, cases)


# -- arrays: baselines and inputs -----------------------------------------------------------


@pytest.fixture(scope="module")
def real_archive(tf_keras, tmp_path_factory):
    """A real ``--save-arrays`` archive of a small comparison."""
    from tdcheck import files
    from tdcheck.commands.compare import archive, compare

    path = str(tmp_path_factory.mktemp("fuzz") / "base.npz")
    files.save_arrays(path, archive(compare(hidden=3, units=2, seq=3, input="random")))
    return path


def _npz_structure_mutation(path: str, rng: random.Random) -> bytes:
    arrays = dict(np.load(path, allow_pickle=False))
    key = rng.choice(sorted(arrays))
    choice = rng.randrange(6)
    if key == baseline.META_KEY or choice == 0:
        meta = json.loads(arrays[baseline.META_KEY].tobytes())
        text = dumps(mutate_structure(meta, rng))
        arrays[baseline.META_KEY] = np.frombuffer(text, np.uint8)
    elif choice == 1:
        arrays[key] = np.full_like(arrays[key], np.nan, dtype=np.float64)
    elif choice == 2:
        arrays[key] = np.zeros((rng.randint(1, 4),) * rng.randint(0, 3), np.float32)
    elif choice == 3:
        arrays[key] = np.array(["text"])
    elif choice == 4:
        del arrays[key]
    else:
        with np.errstate(all="ignore"):
            arrays[key] = arrays[key].astype(np.float16) * 1e30
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_baselines_and_inputs_survive_mutated_archives(real_archive, tmp_path):
    from tdcheck.core.config import CompareConfig

    rng = random.Random(1704)
    raw = Path(real_archive).read_bytes()
    cfg = CompareConfig(hidden=3, units=2, seq=3, input="random").validated().resolve_sizes(None)
    x = np.random.default_rng(0).standard_normal((1, 3, 4))
    specs = [("x", (None, None, 4), "float32")]
    problems = []
    for i in range(CASES):
        target = tmp_path / f"a{i}.npz"
        data = mutate_bytes(raw, rng) if i % 2 else _npz_structure_mutation(real_archive, rng)
        target.write_bytes(data)
        for what, read in (
            ("baseline", lambda p: baseline.check_matches(baseline.load(p), cfg, x)),
            ("input", lambda p: load_inputs([p], specs)),
        ):
            try:
                read(str(target))
            except ConfigError as exc:
                if "\n" in exc.message or not exc.message:
                    problems.append(f"case {i} ({what}): {exc.message!r}")
            except Exception as exc:  # the contract: only ConfigError (exit 2)
                problems.append(f"case {i} ({what}): {type(exc).__name__}: {exc}")
    _report(problems, CASES)


def test_compare_inputs_survive_mutated_npy_files(tmp_path):
    from tdcheck.core.inputs import load_npy

    rng = random.Random(1706)
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32))
    raw = buffer.getvalue()
    problems = []
    for i in range(CASES):
        target = tmp_path / f"x{i}.npy"
        target.write_bytes(mutate_bytes(raw, rng))
        try:
            load_npy(str(target), max_bytes=1 << 20)
        except ConfigError as exc:
            if "\n" in exc.message or str(target) not in exc.message:
                problems.append(f"case {i}: {exc.message!r}")
        except Exception as exc:
            problems.append(f"case {i}: {type(exc).__name__}: {exc}")
    _report(problems, CASES)


# -- sweep reports ----------------------------------------------------------------------------


def test_merge_survives_mutated_reports(tmp_path, runner):
    from tdcheck.commands.sweep import CaseResult, SweepResult, plan_sweep
    from tdcheck.core.config import CompareConfig

    docs = []
    for k in (1, 2):
        plan = plan_sweep({"hidden": "3,4,5"}, CompareConfig(), shard=(k, 2))
        result = SweepResult(
            cases=[CaseResult(c.index, c.name, {}, "passed", 0.5) for c in plan.cases],
            grid_size=plan.grid_size, shard=plan.shard, fingerprint=plan.fingerprint,
            plan=plan.plan_dict(), environment={"backend": "tensorflow", "keras": "3"},
        )  # fmt: skip
        docs.append(result.to_dict())
    good = tmp_path / "shard2.json"
    good.write_text(json.dumps(docs[1]))
    rng = random.Random(1705)
    raw = json.dumps(docs[0]).encode()
    problems = []
    for i in range(CASES):
        target = tmp_path / f"s{i}.json"
        if i % 2:
            target.write_bytes(mutate_bytes(raw, rng))
        else:
            doc = mutate_structure(docs[0], rng)
            target.write_bytes(dumps(doc))
        problem = contract(run(runner, "merge", str(target), str(good), "-q"), f"case {i}")
        if problem:
            problems.append(problem)
    _report(problems, CASES)
