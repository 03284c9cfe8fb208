"""``tdcheck env``."""

from __future__ import annotations

import json

import click


@click.command("env")
@click.option(
    "--format",
    "format_",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Output format on stdout.",
)
def env_command(format_: str) -> int:
    """Print tdcheck, Python, platform, TensorFlow, Keras and NumPy versions, the devices of
    the default backend ($KERAS_BACKEND, else tensorflow), and the versions of JAX, PyTorch
    and tf_keras (the other backends) where installed. Needs no TensorFlow: without the
    default backend's framework it says what to install. Notes name versions outside those
    tdcheck was tested with.

    \b
    Example:
      tdcheck env
      KERAS_BACKEND=jax tdcheck env --format json > environment.json
    Exit codes: 0 printed, 3 the default backend is installed but cannot start.
    """
    from tdcheck.commands.env import env_info

    info = env_info()
    if format_ == "json":
        click.echo(json.dumps(info, indent=2))
        return 0
    notes = info.pop("notes")
    width = max(len(key) for key in info)
    for key, value in info.items():
        if value is None:
            text = {"tf32": "- (no GPU)", "devices": "unknown (backend not installed)",
                    "gpus": "unknown"}.get(key, "not installed")  # fmt: skip
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        click.echo(f"{key.ljust(width)}  {text or '-'}")
    for note in notes:
        click.echo(f"note: {note}")
    return 0


COMMANDS = [env_command]
