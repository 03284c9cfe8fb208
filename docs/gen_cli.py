"""Regenerate docs/cli.md from the commands' --help, or check it is current.

python docs/gen_cli.py          # rewrite docs/cli.md
python docs/gen_cli.py --check  # exit 1 if docs/cli.md differs from --help
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from tdcheck.cli import cli

TARGET = Path(__file__).with_name("cli.md")


def render() -> str:
    runner = CliRunner()
    parts = [
        "# Command reference",
        "",
        "Generated from `--help` by `python docs/gen_cli.py`; a test fails when it is stale.",
        "",
    ]
    commands = [[]] + [[name] for name in sorted(cli.commands)]
    for args in commands:
        result = runner.invoke(cli, [*args, "--help"], env={"COLUMNS": "100"}, terminal_width=100)
        title = " ".join(["tdcheck", *args])
        parts += [f"## `{title}`", "", "```text", result.output.rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/cli.md is stale: run python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
