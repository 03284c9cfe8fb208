"""``tdcheck env``: the versions and devices a report would be produced with.

:func:`env_info` returns a flat dict (JSON-ready) so that other engines can add their own keys.
"""

from __future__ import annotations

from typing import Any

from tdcheck._version import __version__


def env_info() -> dict[str, Any]:
    """tdcheck, Python, platform, TensorFlow, Keras and NumPy versions, and visible devices.

    Raises :class:`~tdcheck.errors.EnvironmentProblem` (exit 3) without TensorFlow.
    """
    from tdcheck.engines.tensorflow import (
        environment,
        gpu_names,
        load_tensorflow,
        quiet,
        short_device,
    )

    tf, keras = load_tensorflow()
    info: dict[str, Any] = {"tdcheck": __version__}
    info.update(environment(tf, keras, ""))
    del info["device"]  # the device a run used; here every visible one is listed
    with quiet():
        devices = [short_device(d.name) for d in tf.config.list_physical_devices()]
    info["devices"] = [d.replace("physical_device:", "") for d in devices]
    info["gpus"] = len(gpu_names(tf))
    info.update(other_backends())
    return info


def other_backends() -> dict[str, str | None]:
    """The version of each other engine's framework (``--backend``/``--backends``), None
    when it is not installed; read from the package metadata, nothing is imported.
    Metadata that cannot be read (invalid UTF-8, a broken install) reads ``unreadable``:
    ``env`` reports it, it does not fail on it."""
    from importlib import metadata

    from tdcheck.engines.base import REQUIRES

    versions: dict[str, str | None] = {}
    for name, (module, _line) in REQUIRES.items():
        if name == "tensorflow":
            continue
        try:
            versions[module] = metadata.version(module)
        except metadata.PackageNotFoundError:
            versions[module] = None
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            versions[module] = f"unreadable ({type(exc).__name__})"
    return versions
