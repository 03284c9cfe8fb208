"""``tdcheck env``: the versions and devices a report would be produced with.

:func:`env_info` returns a flat dict (JSON-ready) so that other engines can add their own keys.
It loads the default backend (``$KERAS_BACKEND``, else tensorflow) to list its devices, and no
other: on JAX or PyTorch it runs without TensorFlow, and without the default backend's
framework it still prints every version (the devices as ``not installed``), with the pip line.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from tdcheck._version import __version__

#: The distributions ``tdcheck env`` reports, read from the package metadata (no import).
DISTRIBUTIONS = ("tensorflow", "keras", "numpy", "jax", "torch", "tf_keras", "h5py")


def env_info() -> dict[str, Any]:
    """tdcheck, Python, platform, the frameworks' versions, and the default backend's devices.

    Never raises for a missing framework: a version is None when its package is not installed
    (``devices`` too, when the default backend's is not), and ``notes`` says what to install
    and which versions are outside those tdcheck was tested with.
    """
    import numpy as np

    from tdcheck.core.backends import default_backend
    from tdcheck.core.install import untested_note
    from tdcheck.engines.base import REQUIRES, installed, load_engine

    versions = installed_versions()
    backend = default_backend()
    info: dict[str, Any] = {
        "tdcheck": __version__,
        "python": platform.python_version(),
        "backend": backend,
        "tensorflow": versions["tensorflow"],
        "keras": versions["keras"],
        "numpy": np.__version__,
        "platform": f"{platform.system()}-{platform.release()}-{platform.machine()}",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    notes: list[str] = []
    if installed(backend):
        engine = load_engine(backend)
        info.update(engine.versions())
        info["tf32"] = engine.tf32()
        info["devices"], info["gpus"] = _devices(engine)
    else:
        info["devices"], info["gpus"] = None, None
        notes.append(
            f"the default backend, {backend}, is not installed: install it: {REQUIRES[backend][1]}"
        )
    if backend == "tensorflow" and info["devices"] is not None:
        info["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    info.update(other_backends())
    info["h5py"] = versions["h5py"]
    note = untested_note(versions)
    if note:
        notes.append(note)
    info["notes"] = notes
    return info


def _devices(engine: Any) -> tuple[list[str], int]:
    """The engine's visible devices (``CPU:0``, ``GPU:0``...) and its GPU count."""
    gpus = engine.gpu_names()
    tf = getattr(engine, "tf", None)
    if tf is None:
        return ["CPU:0", *(f"GPU:{i}" for i in range(len(gpus)))], len(gpus)
    from tdcheck.engines.tensorflow import quiet, short_device

    with quiet():
        devices = [short_device(d.name) for d in tf.config.list_physical_devices()]
    return [d.replace("physical_device:", "") for d in devices], len(gpus)


def installed_versions() -> dict[str, str | None]:
    """Each of :data:`DISTRIBUTIONS`' version, None when it is not installed (no import)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
        except (OSError, ValueError) as exc:  # invalid UTF-8: UnicodeDecodeError, a ValueError
            versions[name] = f"unreadable ({type(exc).__name__})"
    return versions


def other_backends() -> dict[str, str | None]:
    """The version of each other engine's framework (``--backend``/``--backends``), None
    when it is not installed; read from the package metadata, nothing is imported.
    Metadata that cannot be read (invalid UTF-8, a broken install) reads ``unreadable``:
    ``env`` reports it, it does not fail on it."""
    from tdcheck.engines.base import REQUIRES

    versions = installed_versions()
    return {module: versions.get(module) for name, (module, _) in REQUIRES.items()
            if name != "tensorflow"}  # fmt: skip
