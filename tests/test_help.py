"""Every command's --help shows how it is used: an example a user can copy."""

from __future__ import annotations

import click
from click.testing import CliRunner

from gwsvcr.cli.main import main


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in group.commands.items():
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out += commands(command, (*prefix, name))
    return out


def test_every_command_has_an_example_in_its_help() -> None:
    without = []
    for path in commands(main):
        done = CliRunner().invoke(main, [*path, "--help"])
        assert done.exit_code == 0, (path, done.output)
        if "Example" not in done.output or f"gwsvcr {path[0]}" not in done.output:
            without.append(" ".join(path))
    assert without == [], f"no example in --help: {without}"
    assert {"demo", "har", "import"} <= {p[0] for p in commands(main)}
