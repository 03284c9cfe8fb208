"""The CI recipes in docs/ci are complete, work in a user's repository (tdcheck checked out
at a pinned ref and built into a wheel there: it is on no package index), parse, and their
commands are valid tdcheck invocations; docs/ci/ci.sh runs for real (no network: tdcheck is
already installed) and keeps exit 3 (environment) distinct from exit 2 (usage)."""

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


INSTALL_WHEEL_WITH_TF = 'python -m pip install "$(ls dist/tdcheck-*.whl)[tensorflow]"'


def test_github_workflow_is_complete_and_installs_from_a_wheel():
    path = CI / "github-actions.yml"
    doc = yaml.safe_load(path.read_text())
    assert set(doc["jobs"]) == {"build", "sweep", "merge"}
    assert doc["jobs"]["sweep"]["needs"] == "build"
    assert doc["jobs"]["sweep"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert doc["jobs"]["merge"]["if"] == "always()"  # a failed or missing shard still merges
    # In the user's repository: tdcheck is checked out at a pinned ref into a subfolder.
    checkout = doc["jobs"]["build"]["steps"][0]
    assert checkout["uses"] == "actions/checkout@v4"
    assert checkout["with"] == {"repository": "${{ env.TDCHECK_REPOSITORY }}",
                                "ref": "${{ env.TDCHECK_REF }}", "path": ".tdcheck-src"}  # fmt: skip
    assert doc["env"] == {"TDCHECK_REPOSITORY": "OWNER/tdcheck", "TDCHECK_REF": "REF"}
    runs = scripts(path)
    assert any("python -m build --wheel --outdir dist .tdcheck-src" in run for run in runs)
    assert not any(re.search(r"build .*--outdir dist \.$", run, re.M) for run in runs)
    installs = [line.split("#")[0].strip() for run in runs for line in run.splitlines()
                if "pip install" in line]  # fmt: skip
    assert installs == [
        "python -m pip install --upgrade pip build",
        "python -m pip install --upgrade pip",
        INSTALL_WHEEL_WITH_TF,
        "python -m pip install dist/tdcheck-*.whl",
    ]  # never `pip install tdcheck`: it is on no package index
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
    assert doc["variables"] == {"TDCHECK_GIT": "<repository URL>", "TDCHECK_REF": "<tag or commit>"}
    assert doc["build-wheel"]["script"][:2] == [
        'git clone "$TDCHECK_GIT" .tdcheck-src', 'git -C .tdcheck-src checkout "$TDCHECK_REF"',
    ]  # fmt: skip
    assert doc["build-wheel"]["script"][-1] == "python -m build --wheel --outdir dist .tdcheck-src"
    assert doc["sweep"]["script"][0] == INSTALL_WHEEL_WITH_TF
    assert doc["merge"]["script"][0] == "python -m pip install dist/tdcheck-*.whl"
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


def _ci_sh_without_tdcheck(tmp_path, **env_vars):
    """docs/ci/ci.sh copied into a user's repository (not a checkout of tdcheck), with no
    tdcheck on PATH: it must say where tdcheck comes from before installing anything."""
    repo = tmp_path / "user-repo"
    (repo / "ci").mkdir(parents=True)
    script = repo / "ci" / "ci.sh"
    script.write_text((CI / "ci.sh").read_text())
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "tdcheck").exists())  # fmt: skip
    env = {"PATH": path, "HOME": str(tmp_path), **env_vars}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          cwd=repo, timeout=60), repo  # fmt: skip


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_sh_in_a_user_repository_needs_a_source_exit_3(tmp_path):
    proc, repo = _ci_sh_without_tdcheck(tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == (
        "ci.sh: tdcheck is not installed and this file is not in a checkout of tdcheck: set "
        "TDCHECK_WHEEL, TDCHECK_SRC, or TDCHECK_GIT and TDCHECK_REF\n"
    )
    assert not (repo / ".venv-tdcheck").exists()  # nothing installed


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_sh_git_source_needs_a_pinned_ref_exit_2(tmp_path):
    proc, repo = _ci_sh_without_tdcheck(tmp_path, TDCHECK_GIT="https://example.invalid/t.git")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "ci.sh: TDCHECK_GIT needs TDCHECK_REF, the tag or commit of tdcheck to run\n"
    )
    assert not (repo / ".tdcheck-src").exists()


def _ci_sh_with_fake_tdcheck(tmp_path, compare_rc, sweep_rc):
    """ci.sh's verdict logic, with a stand-in tdcheck that exits with the given codes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tdcheck"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'case "$1" in --version) echo 0 ;; compare) exit {compare_rc} ;; sweep) exit {sweep_rc} ;; esac\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TDCHECK_OUT": str(tmp_path)}
    return subprocess.run(["bash", str(CI / "ci.sh")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)  # fmt: skip


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("compare_rc", "sweep_rc", "expected", "line"),
    [
        (0, 0, 0, "tdcheck: equivalent"),
        (1, 0, 1, "tdcheck: NOT equivalent (see {out}/)"),
        (0, 2, 2, "tdcheck: bad usage (exit 2): fix the command line"),
        (3, 1, 3, "tdcheck: environment problem (exit 3): a framework is missing or broken"),
        (2, 3, 3, "tdcheck: environment problem (exit 3): a framework is missing or broken"),
    ],
)
def test_ci_sh_keeps_exit_3_apart_from_exit_2(tmp_path, compare_rc, sweep_rc, expected, line):
    proc = _ci_sh_with_fake_tdcheck(tmp_path, compare_rc, sweep_rc)
    assert proc.returncode == expected
    said = proc.stdout if expected == 0 else proc.stderr
    assert said.splitlines()[-1] == line.format(out=tmp_path)
