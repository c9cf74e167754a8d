"""Each option is declared once (gwsvcr/options.py): every surface has exactly the options its family declares for
it, with the declared defaults (the gwsvcr command's flags, the addons' mitmproxy options, the mount JSON,
``replaying()``/``recording()`` and the pytest marker), and one check refuses a bad value on each of them."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pytest
from click.testing import CliRunner
from mitmproxy import exceptions
from mitmproxy.test import taddons

from gwsvcr import api, pytest_plugin
from gwsvcr.addons.guard import Guard
from gwsvcr.addons.recorder import GwsRecorder
from gwsvcr.addons.replayer import GwsReplayer
from gwsvcr.cli.main import main
from gwsvcr.options import GUARD, RECORD, REPLAY, Family, OptionProblems, Surface, replay_config
from gwsvcr.replay import ReplayConfig
from gwsvcr.service import MOUNT_OPTIONS, MountError, parse_mount
from tests.procs import ROOT

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
# What a surface takes beside its family's options: what one process or one call needs, not the options.
OWN = {
    ("replay", Surface.CLI): {"cassette_path", "host", "port", "confdir", "sets", "upstream", "workers", "peer",
                              "quiet"},
    ("replay", Surface.ADDON): {"gwsvcr_replay_cassette", "gwsvcr_replay_upstream", "gwsvcr_replay_peers"},
    ("replay", Surface.API): {"cassette", "service"},
    ("record", Surface.CLI): {"upstream", "cassette", "host", "port", "confdir", "sets", "proxy_mode", "upstream_ca",
                              "insecure", "quiet"},
    ("record", Surface.ADDON): {"gwsvcr_record_cassette"},
    ("record", Surface.API): {"cassette", "upstream"},
    # the commands whose only family options are GUARD's (replay and record have it among theirs)
    ("sim", Surface.CLI): {"host", "port", "confdir", "sets", "event_delay_ms", "user", "password", "recording_state",
                           "drop_notification", "wrong_state", "extra_delay_ms", "refuse", "new_call_ids",
                           "forget_after"},
    ("service", Surface.CLI): {"host", "port", "confdir", "sets", "keep_mb"},
}
GUARDED = ("sim", "service")


def _normal(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(value)
    return value.value if isinstance(value, StrEnum) else value


def _by_name(family: Family, surface: Surface, found: dict[str, Any], command: str = "") -> dict[str, Any]:
    """A surface's options (by the name it spells them with) as option names and defaults; what is not the
    family's stays under its own name, so that it shows in a comparison. ``command``: the gwsvcr command whose
    flags ``found`` holds, when not the family's name."""
    names = {o.addon if surface is Surface.ADDON else o.name: o.name for o in family.options}
    own = OWN.get((command or family.name, surface), set())
    return {names.get(k, k): _normal(v) for k, v in found.items() if k not in own}


def click_surface(family: Family, command: str = "") -> dict[str, Any]:
    args = {"replay": [str(SAMPLE)], "record": ["--upstream", "http://127.0.0.1:9", "--cassette", "c.yaml"]}
    command = command or family.name
    return main.commands[command].make_context(command, args.get(command, [])).params


class _Loader:
    def __init__(self) -> None:
        self.defaults: dict[str, Any] = {}

    def add_option(self, name: str, typespec: Any, default: Any, help: str, choices: Any = None) -> None:
        self.defaults[name] = default


def addon_surface(family: Family) -> dict[str, Any]:
    loader = _Loader()
    {"replay": GwsReplayer, "record": GwsRecorder, "guard": Guard}[family.name]().load(loader)
    return loader.defaults


def mount_surface(family: Family) -> dict[str, Any]:
    """What a mount was given: its replay configuration, and what the mount holds beside it (allow_host_header)."""
    request = parse_mount({"cassette": str(SAMPLE)})
    return {name: getattr(request.config if hasattr(request.config, name) else request, name) for name in MOUNT_OPTIONS}


def api_surface(family: Family) -> dict[str, Any]:
    function, made = {"replay": (api.replaying, api.Replay), "record": (api.recording, api.Recording)}[family.name]
    found = {p.name: p.default for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}
    # what the class takes itself (the rest it passes on as given) has the function's defaults
    explicit = {p.name: p.default for p in inspect.signature(made).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert {k: v for k, v in found.items() if k in explicit} == explicit
    return found


def marker_surface(family: Family) -> dict[str, Any]:
    lines: list[str] = []

    class Config:
        def addinivalue_line(self, name: str, line: str) -> None:
            lines.append(line)

        def getoption(self, name: str) -> Any:
            return None

    pytest_plugin.pytest_configure(Config())  # type: ignore[arg-type]
    signature = next(line for line in lines if line.startswith("gws_cassette(")).split(":", 1)[0]
    call = ast.parse(signature, mode="eval").body
    assert isinstance(call, ast.Call)
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != "path"}


SURFACES: dict[Surface, Callable[[Family], dict[str, Any]]] = {
    Surface.CLI: click_surface, Surface.ADDON: addon_surface, Surface.MOUNT: mount_surface, Surface.API: api_surface,
    Surface.MARKER: marker_surface}


@pytest.mark.parametrize(("family", "surface"), [(f, s) for f in (REPLAY, RECORD) for s in Surface if s in f.surfaces]
                         + [(GUARD, Surface.ADDON)], ids=lambda x: getattr(x, "name", x))
def test_each_surface_has_the_options_declared_for_it_with_their_defaults(family: Family, surface: Surface) -> None:
    declared = {o.name: _normal(o.default_on(surface)) for o in family.on(surface)}
    assert _by_name(family, surface, SURFACES[surface](family)) == declared


@pytest.mark.parametrize("command", GUARDED)
def test_commands_without_replay_options_have_the_guards(command: str) -> None:
    """gwsvcr sim and service take --allow-host-header from GUARD, as replay and record from their families."""
    declared = {o.name: _normal(o.default_on(Surface.CLI)) for o in GUARD.on(Surface.CLI)}
    assert _by_name(GUARD, Surface.CLI, click_surface(GUARD, command), command) == declared
    # one declaration: the same mitmproxy option and check, whichever addon of a master declares it first
    assert GUARD["allow_host_header"] == REPLAY["allow_host_header"] == RECORD["allow_host_header"]


def test_replay_config_defaults_are_the_declared_ones() -> None:
    """A Replayer built without options (ReplayConfig()) replays as a mount without options does."""
    assert ReplayConfig() == replay_config(REPLAY.read({}, Surface.MOUNT))
    fields = {f for f in ReplayConfig.__dataclass_fields__ if f != "has_upstream"}
    assert fields <= {o.name for o in REPLAY.options}


def test_one_check_refuses_a_bad_value_on_every_surface() -> None:
    said = "speed: must be more than 0, not 0.0"
    result = CliRunner().invoke(main, ["replay", str(SAMPLE), "--speed", "0"])
    assert result.exit_code == 2 and "Invalid value for '--speed': must be more than 0, not 0.0" in result.output
    addon = GwsReplayer()
    with taddons.context(addon) as tctx, pytest.raises(exceptions.OptionsError, match=f"gwsvcr_replay_{said}"):
        tctx.configure(addon, gwsvcr_replay_cassette=str(SAMPLE), gwsvcr_replay_speed=0.0)
    with pytest.raises(MountError) as caught:
        parse_mount({"cassette": str(SAMPLE), "speed": 0})
    assert caught.value.problems == [said]
    with pytest.raises(OptionProblems) as bad:
        RECORD.read({"mode": "twice", "max_body": 16}, Surface.API)
    assert bad.value.problems == ["mode: must be one of once, new_episodes, all, none, not 'twice'",
                                  "max_body: must be a string, not 16"]


def test_a_bool_takes_its_own_negative_and_the_older_spelling() -> None:
    replay = main.commands["replay"]
    for args, repeats in (([], True), (["--no-allow-repeats"], False), (["--no-repeat"], False)):
        assert replay.make_context("replay", [str(SAMPLE), *args]).params["allow_repeats"] is repeats


def test_recording_passes_only_what_differs_from_the_command_defaults() -> None:
    values = RECORD.read({"redact_json": ["a.b"], "max_body": "16m", "session_cookies": ("SID",)}, Surface.API)
    assert RECORD.command_line(values) == ["--record-mode", "all", "--redact-json", "a.b", "--session-cookie", "SID"]
