"""The install tells the truth: the extras in pyproject.toml, the one place the install hints
come from (tdcheck.core.install), the LICENSE, and `tdcheck env` without TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tdcheck.cli import cli
from tdcheck.core.install import EXTRAS, TESTED, install_hint, outside_tested, pip_line

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_hints_name_the_extras_of_pyproject():
    extras = PYPROJECT["optional-dependencies"]
    for name, packages in EXTRAS.items():
        assert tuple(extras[name]) == packages, name
    assert install_hint("jax") == (
        "pip install 'jax>=0.4.26' (or, in a checkout of tdcheck: pip install '.[jax]')"
    )
    assert pip_line("keras2") == "pip install 'tensorflow>=2.16,<3' 'tf_keras>=2.16'"


def test_tensorflow_is_an_extra_and_h5py_a_dependency():
    deps = PYPROJECT["dependencies"]
    assert not any(d.startswith("tensorflow") for d in deps), deps  # a JAX user skips 1.9 GB
    assert "h5py>=3.0" in deps and "keras>=3.0,<4" in deps
    assert "tensorflow>=2.16,<3" in PYPROJECT["optional-dependencies"]["tensorflow"]


def test_license_file_is_the_apache_2_text():
    text = (ROOT / "LICENSE").read_text()
    assert PYPROJECT["license"] == "Apache-2.0" and PYPROJECT["license-files"] == ["LICENSE"]
    assert text.split("\n")[1].strip() == "Apache License"
    assert "Version 2.0, January 2004" in text and text.count("\n") == 202
    assert "END OF TERMS AND CONDITIONS" in text
    assert "urls" not in PYPROJECT  # no true project URL is known (README says so)


def index_installs(text: str) -> list[str]:
    """``pip install tdcheck`` / ``'tdcheck[jax]'`` lines: those need a package index (a git
    URL, ``'tdcheck[jax] @ git+...'``, and a wheel file name do not)."""
    found = []
    for m in re.finditer(r"pip install (--\S+ )*['\"]?tdcheck(\[[^\]]*\])?", text):
        rest = text[m.end() :]
        if rest[:1] in ("-", "_", ".", "/") or rest.lstrip("'\" ").startswith("@"):
            continue
        found.append(m.group(0))
    return found


def test_no_message_or_doc_asks_for_tdcheck_from_a_package_index():
    """`pip install 'tdcheck[torch]'` finds nothing: tdcheck is on no index."""
    assert index_installs("pip install 'tdcheck[torch]' or pip install tdcheck") == [
        "pip install 'tdcheck[torch]", "pip install tdcheck",
    ]  # fmt: skip
    assert index_installs("pip install 'tdcheck[jax] @ git+https://x' tdcheck-0.1.whl") == []
    paths = [*ROOT.glob("tdcheck/**/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md"),
             *ROOT.glob("docs/ci/*")]  # fmt: skip
    for path in paths:
        assert index_installs(path.read_text()) == [], path


def test_outside_tested_names_each_version():
    assert outside_tested({"keras": "3.15.1", "tensorflow": "2.21.0", "jax": None}) == []
    assert outside_tested({"keras": "3.16.0", "torch": "2.13.0+cpu", "jax": "0.4.30"}) == [
        "Keras 3.16.0 (tested: 3.15)", "JAX 0.4.30 (tested: 0.10)",
    ]  # fmt: skip
    assert outside_tested({"keras": "3.150.0"}) == ["Keras 3.150.0 (tested: 3.15)"]
    assert set(TESTED) == {"keras", "tensorflow", "jax", "torch", "tf_keras"}


def _without_tensorflow(monkeypatch):
    """This process as after `pip install .`: TensorFlow neither importable nor listed."""
    import importlib.metadata as metadata
    import importlib.util

    from tdcheck.engines import base

    real_find, real_version = importlib.util.find_spec, metadata.version

    def version(name):
        if name == "tensorflow":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real_find(name, *a))  # fmt: skip
    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(base, "_LOADED", {})  # a fresh process has loaded no engine
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


def test_env_without_tensorflow_prints_what_to_install(runner, monkeypatch):
    _without_tensorflow(monkeypatch)
    result = runner.invoke(cli, ["env"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "tensorflow  not installed" in lines
    assert "backend     tensorflow" in lines
    assert "devices     unknown (backend not installed)" in lines
    assert (
        "note: the default backend, tensorflow, is not installed: install it: pip install "
        "'tensorflow>=2.16,<3' (or, in a checkout of tdcheck: pip install '.[tensorflow]')"
    ) in lines
    doc = json.loads(runner.invoke(cli, ["env", "--format", "json"]).stdout)
    assert (doc["tensorflow"], doc["devices"], doc["gpus"]) == (None, None, None)
    assert doc["notes"][0].startswith("the default backend, tensorflow, is not installed")


def test_compare_without_tensorflow_is_exit_3_with_the_install_line(runner, monkeypatch):
    _without_tensorflow(monkeypatch)
    result = runner.invoke(cli, ["compare"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == (
        "tdcheck: error: the tensorflow backend needs 'tensorflow', which is not installed; "
        "install it: pip install 'tensorflow>=2.16,<3' (or, in a checkout of tdcheck: "
        "pip install '.[tensorflow]')\n"
    )


def test_env_with_a_broken_default_backend_exits_3(runner, monkeypatch):
    from tdcheck.engines import base
    from tdcheck.errors import EnvironmentProblem

    def broken(name):
        raise EnvironmentProblem("TensorFlow cannot be imported (libcudart.so: not found)")

    monkeypatch.setattr(base, "load_engine", broken)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    result = runner.invoke(cli, ["env"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == (
        "tdcheck: error: TensorFlow cannot be imported (libcudart.so: not found)\n"
    )


@pytest.mark.slow
def test_env_on_jax_does_not_import_tensorflow():
    pytest.importorskip("jax")
    code = (
        "import sys, json\nfrom tdcheck.commands.env import env_info\n"
        "info = env_info()\n"
        "print(json.dumps([info['backend'], info['devices'], 'tensorflow' in sys.modules]))\n"
    )
    env = {**__import__("os").environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    backend, devices, tf_loaded = json.loads(proc.stdout.splitlines()[-1])
    assert (backend, tf_loaded) == ("jax", False)
    assert devices[0] == "CPU:0"


def test_env_names_versions_outside_the_tested_series(runner, monkeypatch):
    import tdcheck.commands.env as env_module

    real = env_module.installed_versions
    monkeypatch.setattr(env_module, "installed_versions",
                        lambda: {**real(), "keras": "3.16.0", "tensorflow": "2.21.0",
                                 "jax": "0.4.30", "torch": None, "tf_keras": None})  # fmt: skip
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    result = runner.invoke(cli, ["env"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "note: untested versions: Keras 3.16.0 (tested: 3.15), JAX 0.4.30 (tested: 0.10); "
        "tdcheck's measurements and the Keras 3.15 findings in its docs may not hold (the "
        "checks themselves still run and judge)"
    )
