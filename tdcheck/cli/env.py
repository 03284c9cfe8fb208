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
    """Print tdcheck, Python, platform, TensorFlow, Keras and NumPy versions, the devices,
    and the versions of JAX, PyTorch and tf_keras (the other backends) where installed.

    \b
    Example:
      tdcheck env
      tdcheck env --format json > environment.json
    Exit codes: 0 printed, 3 TensorFlow cannot be imported.
    """
    from tdcheck.commands.env import env_info

    info = env_info()
    if format_ == "json":
        click.echo(json.dumps(info, indent=2))
        return 0
    width = max(len(key) for key in info)
    for key, value in info.items():
        if value is None:  # a backend that is not installed
            text = "not installed"
        else:
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        click.echo(f"{key.ljust(width)}  {text or '-'}")
    return 0


COMMANDS = [env_command]
