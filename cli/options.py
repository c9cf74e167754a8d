"""The click options of ``gwsvcr replay`` and ``gwsvcr record``, made from their declarations in
:mod:`gwsvcr.options`: a command takes them as keywords of the options' own names, already checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from gwsvcr.options import Family, Kind, Option, Surface

__all__ = ["options_of"]


def options_of(family: Family) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding every option ``family`` has on the command line, in its order."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(family.on(Surface.CLI)):
            command = click.option(*option.flags, option.name, **_settings(option))(command)
        return command

    return decorate


def _settings(option: Option) -> dict[str, Any]:
    def checked(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            return option.parse(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx, param) from None

    settings: dict[str, Any] = {"help": option.help, "callback": checked}
    if option.kind is Kind.NAMES:
        return {**settings, "multiple": True, "metavar": option.metavar}
    settings.update(default=option.default_on(Surface.CLI), show_default=True)
    if option.kind is Kind.FLOAT:
        settings["type"] = float
    elif option.kind is Kind.CHOICE:
        settings["type"] = click.Choice(option.values)
    elif option.kind is Kind.TEXT:
        settings["metavar"] = option.metavar
    return settings
