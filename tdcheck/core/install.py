"""How to install what a command needs, and which versions tdcheck was tested with.

Every install hint tdcheck prints comes from :func:`install_hint`, so that they all say the
same true thing. tdcheck is on no package index (``pip download tdcheck`` finds nothing), so
an extra is installed from a checkout of tdcheck (``pip install '.[torch]'``), from a wheel
built there (``pip install 'dist/tdcheck-0.1.0-py3-none-any.whl[torch]'``) or from a git URL
(``pip install 'tdcheck[torch] @ git+<repository URL>'``); into an environment that already
holds tdcheck, the package itself is enough (``pip install torch``).

Pure Python: nothing here imports a framework.

>>> install_hint("torch")
"pip install 'torch>=2.2' (or, in a checkout of tdcheck: pip install '.[torch]')"
>>> outside_tested({"keras": "3.16.0", "tensorflow": "2.21.0"})
['Keras 3.16.0 (tested: 3.15)']
"""

from __future__ import annotations

#: Each extra of pyproject.toml that a message can ask for, and what it installs (the same
#: requirement strings as pyproject.toml; tests/test_install.py compares them).
EXTRAS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow>=2.16,<3",),
    "gpu": ("tensorflow[and-cuda]>=2.16,<3",),
    "jax": ("jax>=0.4.26",),
    "torch": ("torch>=2.2",),
    "keras2": ("tensorflow>=2.16,<3", "tf_keras>=2.16"),
    "plot": ("matplotlib>=3.7",),
    "ray": ("ray[default]>=2.9",),
}

#: The release series tdcheck's tests and measurements ran on (docs/backends.md, "Versions").
#: Other versions are allowed by pyproject.toml but unmeasured: ``tdcheck env`` says so.
TESTED: dict[str, tuple[str, str]] = {
    # distribution: (label, tested series: a version prefix)
    "keras": ("Keras", "3.15"),
    "tensorflow": ("TensorFlow", "2.21"),
    "jax": ("JAX", "0.10"),
    "torch": ("PyTorch", "2.13"),
    "tf_keras": ("tf_keras", "2.21"),
}


def pip_line(extra: str) -> str:
    """``pip install 'jax>=0.4.26'``: the extra's packages, for an environment holding tdcheck.

    >>> pip_line("keras2")
    "pip install 'tensorflow>=2.16,<3' 'tf_keras>=2.16'"
    """
    return "pip install " + " ".join(f"'{p}'" for p in EXTRAS[extra])


def install_hint(extra: str) -> str:
    """:func:`pip_line`, and the extra's install from a checkout of tdcheck."""
    return f"{pip_line(extra)} (or, in a checkout of tdcheck: pip install '.[{extra}]')"


def _series(version: str, prefix: str) -> bool:
    base = version.split("+")[0]
    return base == prefix or base.startswith(prefix + ".")


def outside_tested(versions: dict[str, str | None]) -> list[str]:
    """``["Keras 3.16.0 (tested: 3.15)"]``: the installed versions outside :data:`TESTED`
    (None or missing: not installed, not listed)."""
    out = []
    for name, (label, prefix) in TESTED.items():
        version = versions.get(name)
        if version and not _series(version, prefix):
            out.append(f"{label} {version} (tested: {prefix})")
    return out


def untested_note(versions: dict[str, str | None]) -> str | None:
    """One line for a report or ``tdcheck env`` when a version is outside :data:`TESTED`."""
    items = outside_tested(versions)
    if not items:
        return None
    return (
        f"untested versions: {', '.join(items)}; tdcheck's measurements and the Keras 3.15 "
        "findings in its docs may not hold (the checks themselves still run and judge)"
    )
