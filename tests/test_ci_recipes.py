"""The CI recipes in docs/ci are complete, install tdcheck the way it is distributed (from
the repository or a wheel built from it), parse, and their commands are valid tdcheck
invocations; docs/ci/ci.sh runs for real (no network: tdcheck is already installed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest

from tdcheck.cli import cli

yaml = pytest.importorskip("yaml")

CI = Path(__file__).resolve().parents[1] / "docs" / "ci"
SUBSTITUTIONS = {"${{ matrix.shard }}": "1", "${CI_NODE_INDEX}": "1", "${CI_NODE_TOTAL}": "4"}


def scripts(path: Path) -> list[str]:
    """Every shell script of a workflow: GitHub `run:` steps, GitLab `script:` lines."""
    doc = yaml.safe_load(path.read_text())
    out = []
    for job in (doc.get("jobs") or doc).values():
        if not isinstance(job, dict):
            continue
        out += [step["run"] for step in job.get("steps", []) if "run" in step]
        out += job.get("script", [])
    return out


def tdcheck_commands(script: str) -> list[list[str]]:
    for key, value in SUBSTITUTIONS.items():
        script = script.replace(key, value)
    script = script.replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        words = shlex.split(line.split(" || ")[0], comments=True)
        if words and words[0] == "tdcheck":
            commands.append(words[1:])
    return commands


def check_parses(args: list[str]) -> None:
    """Parse a command line as tdcheck would (unknown options and bad choices raise)."""
    if args == ["--version"]:
        return
    ctx = cli.make_context("tdcheck", list(args))
    name, command, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
    assert command is not None, args
    with ctx:
        command.make_context(name, rest, parent=ctx)


def test_github_workflow_is_complete_and_installs_from_a_wheel():
    path = CI / "github-actions.yml"
    doc = yaml.safe_load(path.read_text())
    assert set(doc["jobs"]) == {"build", "sweep", "merge"}
    assert doc["jobs"]["sweep"]["needs"] == "build"
    assert doc["jobs"]["sweep"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert doc["jobs"]["merge"]["if"] == "always()"  # a failed or missing shard still merges
    runs = scripts(path)
    assert any("python -m build --wheel" in run for run in runs)
    installs = [line for run in runs for line in run.splitlines() if "pip install" in line]
    assert installs and all(
        re.search(r"pip install (--upgrade pip build|--upgrade pip|dist/\*\.whl)$", line.strip())
        for line in installs
    ), installs  # never `pip install tdcheck`: it is not on a package index
    commands = [c for run in runs for c in tdcheck_commands(run)]
    assert [c[c.index("--color") + 2] if "--color" in c else c[0] for c in commands] == [
        "--version", "sweep", "merge",
    ]  # fmt: skip
    for command in commands:
        check_parses(command)


def test_gitlab_pipeline_is_complete_and_installs_from_a_wheel():
    path = CI / "gitlab-ci.yml"
    doc = yaml.safe_load(path.read_text())
    assert doc["stages"] == ["build", "sweep", "merge"]
    assert doc["sweep"]["parallel"] == 4
    assert doc["merge"]["when"] == "always"
    assert doc["sweep"]["artifacts"]["reports"]["junit"] == "junit-*.xml"
    commands = [c for script in scripts(path) for c in tdcheck_commands(script)]
    assert len(commands) == 3
    for command in commands:
        check_parses(command)
    assert all("pip install tdcheck" not in script for script in scripts(path))


def test_every_recipe_script_is_valid_bash():
    for path in (CI / "github-actions.yml", CI / "gitlab-ci.yml"):
        for script in scripts(path):
            subprocess.run(["bash", "-n", "-c", script], check=True)
    subprocess.run(["bash", "-n", str(CI / "ci.sh")], check=True)
    for command in tdcheck_commands((CI / "ci.sh").read_text()):
        check_parses([word.replace("$out", "/tmp") for word in command])


def test_bad_command_lines_do_not_parse():  # the checker above can fail
    with pytest.raises(click.UsageError):
        check_parses(["sweep", "--hiden", "4"])
    with pytest.raises(click.BadParameter):
        check_parses(["compare", "--rnn", "lstn"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_sh_runs(tmp_path):
    tdcheck_bin = Path(shutil.which("tdcheck") or "")
    if not tdcheck_bin.name:
        pytest.skip("console script not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("TDCHECK_DEBUG",)}
    env.update(PATH=f"{tdcheck_bin.parent}{os.pathsep}{env['PATH']}", TDCHECK_OUT=str(tmp_path))
    proc = subprocess.run(["bash", str(CI / "ci.sh")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "tdcheck: equivalent"
    assert json.loads((tmp_path / "compare.json").read_text())["passed"] is True
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert sweep["summary"]["total"] == 2
    assert ET.parse(tmp_path / "junit.xml").getroot().get("tests") == "2"
