"""The docs stay true to --help and to the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tdcheck.core.config import ACTIVATIONS, INITIALIZERS
from tdcheck.core.tolerances import DEFAULT_TOLERANCES
from tdcheck.core.variants import VARIANT_NAMES

ROOT = Path(__file__).resolve().parents[1]


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_help():
    assert (ROOT / "docs" / "cli.md").read_text() == _gen_cli().render(), (
        "docs/cli.md is stale: run python docs/gen_cli.py"
    )


def test_guide_documents_every_option_and_choice():
    guide = (ROOT / "docs" / "guide.md").read_text()
    help_text = (ROOT / "docs" / "cli.md").read_text()
    for option in sorted(set(re.findall(r"--[a-z][a-z-]+", help_text))):
        assert f"`{option}" in guide, f"docs/guide.md does not document {option}"
    for command in ("compare", "sweep", "merge"):
        assert f"## `tdcheck {command}`" in help_text
        assert f"tdcheck {command}" in guide
    for name in (*VARIANT_NAMES, *INITIALIZERS, *ACTIVATIONS):
        assert name in guide, name


def test_guide_tolerance_table_matches_the_code():
    guide = (ROOT / "docs" / "guide.md").read_text()
    for dtype, (atol, rtol) in DEFAULT_TOLERANCES.items():
        assert f"| `{dtype}` | {atol:g} | {rtol:g} |" in guide, dtype


def test_readme_has_the_two_fresh_machine_commands():
    readme = (ROOT / "README.md").read_text()
    # TensorFlow is an extra (a JAX user skips it): the first command must ask for it.
    assert "pip install '.[tensorflow]' && tdcheck compare --hidden 5 --seq 3" in readme
    assert 'pip install -e ".[test,tensorflow,jax,ray]" && python -m pytest -q -n 2' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q -n 2" in ci
    assert 'pip install --quiet -e ".[test,tensorflow,jax,ray]"' in ci  # two backends, and Ray


def _load_doc_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_json_schema_is_generated_from_the_code():
    assert (ROOT / "docs" / "schema.md").read_text() == _load_doc_script("gen_schema").render(), (
        "docs/schema.md is stale: run python docs/gen_schema.py"
    )


def test_guide_describes_every_json_field():
    schema = (ROOT / "docs" / "schema.md").read_text()
    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide[guide.index("## JSON schema") : guide.index("## CI recipes")]
    paths = re.findall(r"^\| `([a-z_.\[\]]+)` \|", schema, flags=re.MULTILINE)
    assert len(paths) > 100
    for path in paths:
        leaf = path.split(".")[-1].removesuffix("[]")
        assert f"`{leaf}`" in section, f"docs/guide.md's JSON schema does not describe {path}"
    assert "| `compare.training` | object: " in schema and "| yes | always |" in schema
    assert "| `sweep.merged_from` | integer | no | merged reports |" in schema


def test_measured_figures_are_current_on_the_machine_they_were_measured_on():
    gen = _load_doc_script("gen_figures")
    env = gen.environment_line()
    for filename in gen.FILES:
        found = gen.regions((ROOT / "docs" / filename).resolve().read_text())
        for name, body in found.items():
            recorded = gen.recorded_environment(body)
            assert recorded, f"{filename}: figure {name!r} does not say where it was measured"
            if name not in gen.FIGURES:
                continue  # the slow survey: python docs/gen_figures.py --survey
            if recorded != env:
                pytest.skip(f"figures measured on {recorded}; this is {env}")
            assert body == gen.render_body(name, env), (
                f"{filename}: figure {name!r} is stale: run python docs/gen_figures.py"
            )
    assert {"seed", "gelu", "float64-survey", "readme-example", "readme-scan", "models-scan"} <= {
        name for f in gen.FILES for name in gen.regions((ROOT / "docs" / f).resolve().read_text())
    }


def test_compare_vs_seed_says_where_the_seed_script_is_missing(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TDCHECK_SEED_SCRIPT"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_vs_seed.py"),
         "--seed-script", str(tmp_path / "seed.py")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        f"compare_vs_seed: error: no seed script at '{tmp_path / 'seed.py'}'; give its path "
        "with --seed-script PATH (or set $TDCHECK_SEED_SCRIPT)\n"
    )


def test_guide_limits_are_the_code_constants():
    from tdcheck.cli.sweep import MAX_CASES_CAP
    from tdcheck.commands.bench import MAX_CELLS, MAX_REPEATS, MAX_WARMUP
    from tdcheck.core.config import DTYPE_MAX, MAX_MEMORY, MAX_SEED, MAX_TRAIN_STEPS

    guide = (ROOT / "docs" / "guide.md").read_text()
    text = " ".join(guide[guide.index("**Limits.**") : guide.index("**Help.**")].split())
    for fragment in (
        f"`--train-steps` {MAX_TRAIN_STEPS}", f"`sweep --max-cases` {MAX_CASES_CAP}",
        f"`bench --repeats` {MAX_REPEATS}", f"`--warmup` {MAX_WARMUP}",
        f"at most {MAX_CELLS} cells", f"`--seed` 0..{MAX_SEED}",
        f"`--max-memory` {MAX_MEMORY // 1024**5} PiB", f"(float16: {DTYPE_MAX['float16']:g})",
    ):  # fmt: skip
        assert fragment in text, fragment


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_anchor_slugs_follow_github():
    path = ROOT / "docs" / "checks.md"
    assert {"how-a-comparison-is-judged", "power---power", "time-dimension---time-dim"} <= (
        _anchors(path)
    )


def test_internal_links_and_anchors_exist():
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []
