"""The options of replay and record (and of every serving command: ``GUARD``), each declared once: its name, kind,
default, help sentence and check.

Every surface is made from these declarations: the ``gwsvcr replay`` / ``gwsvcr record`` flags (cli/options.py),
the mitmproxy options of the addons (addons/flowconv.py ``add_options``, ``option_values``), the service's mount
JSON (:func:`gwsvcr.service.parse_mount`), the marker and ``gws_config`` of the pytest plugin, and the keywords of
:func:`gwsvcr.replaying` / :func:`gwsvcr.recording` (written out there so that editors show them, and checked
against this module by tests/test_options.py). No click, no mitmproxy here.

An option has one name, the same everywhere, spelled by each surface's convention:

- keyword, mount JSON field, marker keyword: the name (``match_headers``);
- mitmproxy: the family's prefix and the name (``gwsvcr_replay_match_headers``), unless ``addon`` keeps an older
  one (``gwsvcr_redact_headers``);
- click: ``--kebab-name``, ``--name/--no-name`` for a bool, unless ``flag`` says otherwise: a repeatable option
  is singular (``--match-header``), ``--strict/--lenient``; ``aliases`` keeps older spellings working
  (``--no-repeat``).

Adding an option (the first step is the one place; the others are where it is used, and tests say when one is
missing):

1. Append an :class:`Option` to ``REPLAY`` or ``RECORD`` below (to ``SESSION`` for both): name, kind, default,
   help (one sentence that reads right after a flag and in ``--help``), and ``check`` when its kind does not say
   all that is valid (a function raising ``ValueError`` with the reason; the message gets the option's name in
   front). ``surfaces`` when it is not on every surface of its family (``raise_on_miss``: the API only).
2. Use it: a replay option the engine reads is a :class:`~gwsvcr.replay.ReplayConfig` field of the same name
   (:func:`replay_config` fills the fields; any other option is in the values that :meth:`Family.read` and
   addons/flowconv.py ``option_values`` give); the recorder reads its mitmproxy option in ``addons/recorder.py``.
3. Add the keyword, with the same default, to :func:`gwsvcr.replaying` (or :func:`gwsvcr.recording`); nothing
   else: ``Replay``, the mount, the click command, the addon and the marker take it from here.

Something one surface has that is no option of the family (``--workers``, ``gwsvcr_replay_peers``, the cassette)
stays declared on that surface, and is named in ``OWN`` of tests/test_options.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from gwsvcr import guard
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.bodies import DEFAULT_MAX_BODY
from gwsvcr.record.modes import HELP as RECORD_MODES
from gwsvcr.record.modes import RecordMode
from gwsvcr.record.redact import Redactor
from gwsvcr.replay import ReplayConfig
from gwsvcr.replay.faults import check as check_faults
from gwsvcr.timeline import Timing

__all__ = ["ALLOW_HOST_HEADER", "GUARD", "RECORD", "REPLAY", "SESSION", "Family", "Kind", "Option", "OptionProblems",
           "Surface", "replay_config"]


class Surface(StrEnum):
    CLI = "cli"  # the gwsvcr command's flags
    ADDON = "addon"  # the mitmproxy options of addons/replayer.py, addons/recorder.py
    MOUNT = "mount"  # the JSON of POST /__gwsvcr__/mounts
    API = "api"  # the keywords of gwsvcr.replaying / gwsvcr.recording
    MARKER = "marker"  # @pytest.mark.gws_cassette(...) and the gws_config fixture


class Kind(Enum):
    BOOL = "true or false"
    FLOAT = "a number"
    CHOICE = "one of"
    NAMES = "a list of strings"  # repeatable on the command line
    TEXT = "a string"


class OptionProblems(GwsvcrError, ValueError):
    """Values that are not what their options take: ``problems`` has one sentence per bad or unknown option."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    default: Any
    help: str
    check: Callable[[Any], None] | None = None  # raises ValueError(reason) for a value its kind lets through
    choices: type[StrEnum] | None = None  # for Kind.CHOICE: the values, and what a value becomes
    metavar: str = ""
    flag: str = ""  # the click declaration when not the kebab-case name ("--match-header", "--strict/--lenient")
    aliases: tuple[str, ...] = ()  # older click spellings still accepted (" /--no-repeat": a bool's negative)
    addon: str = ""  # the mitmproxy name when not the family's prefix and the name
    surfaces: frozenset[Surface] | None = None  # None: every surface of its family
    defaults: Mapping[Surface, Any] = field(default_factory=dict)  # a surface whose default differs on purpose

    def default_on(self, surface: Surface) -> Any:
        return self.defaults.get(surface, self.default)

    @property
    def flags(self) -> tuple[str, ...]:
        """The click declarations: the flag (``--x`` or ``--x/--no-x``), then the aliases."""
        kebab = self.name.replace("_", "-")
        flag = self.flag or (f"--{kebab}/--no-{kebab}" if self.kind is Kind.BOOL else f"--{kebab}")
        return (flag, *self.aliases)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.choices) if self.choices else ()

    def validate(self, value: Any, spelled: str = "") -> Any:
        """``value`` as the engine takes it (a list as a tuple, a choice as its enum member), or ValueError naming
        the option (as ``spelled`` on its surface, else by its name) and saying what it takes."""
        try:
            return self.parse(value)
        except ValueError as e:
            raise ValueError(f"{spelled or self.name}: {e}") from None

    def parse(self, value: Any) -> Any:
        """:meth:`validate` for a surface that names the option itself (click): ValueError says only why."""
        kind = self.kind
        if kind is Kind.BOOL and isinstance(value, bool):
            checked: Any = value
        elif kind is Kind.FLOAT and isinstance(value, int | float) and not isinstance(value, bool):
            checked = float(value)
        elif kind is Kind.CHOICE and self.choices is not None and value in self.values:
            checked = self.choices(value)
        elif kind is Kind.NAMES and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            checked = tuple(value)
        elif kind is Kind.TEXT and isinstance(value, str):
            checked = value
        elif kind is Kind.CHOICE:
            raise ValueError(f"must be one of {', '.join(self.values)}, not {value!r}")
        else:
            raise ValueError(f"must be {kind.value}, not {value!r}")
        if self.check is not None:
            self.check(checked)
        return checked


@dataclass(frozen=True)
class Family:
    """The options of one command family, in the order ``--help`` lists them."""

    name: str
    prefix: str  # of the mitmproxy names
    surfaces: frozenset[Surface]
    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        named = tuple(dataclasses.replace(o, addon=o.addon or self.prefix + o.name) for o in self.options)
        object.__setattr__(self, "options", named)

    def __getitem__(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(name)

    def on(self, surface: Surface) -> tuple[Option, ...]:
        return tuple(o for o in self.options if surface in (o.surfaces or self.surfaces))

    def read(self, given: Mapping[str, Any], surface: Surface, others: Collection[str] = ()) -> dict[str, Any]:
        """Every option of ``surface``, as given or its default, validated; names in ``others`` are left to the
        caller. :class:`OptionProblems` lists every unknown name and every bad value."""
        options = self.on(surface)
        known = [o.name for o in options]
        problems = [f"unknown option {name!r} (options: {', '.join([*others, *known])})"
                    for name in given if name not in known and name not in others]
        values = {}
        for option in options:
            try:
                values[option.name] = option.validate(given.get(option.name, option.default_on(surface)))
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise OptionProblems(problems)
        return values

    def keywords(self, surface: Surface) -> str:
        """``name=default, ...`` as a signature shows them."""
        return ", ".join(f"{o.name}={o.default_on(surface)!r}" for o in self.on(surface))

    def addon_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The mitmproxy settings for ``values`` (by option name)."""
        return {o.addon: _plain(values[o.name]) for o in self.on(Surface.ADDON) if o.name in values}

    def command_line(self, values: Mapping[str, Any]) -> list[str]:
        """``values`` as arguments of the gwsvcr command, those equal to its defaults left out."""
        args: list[str] = []
        for o in self.on(Surface.CLI):
            if o.name not in values or o.validate(values[o.name]) == o.validate(o.default_on(Surface.CLI)):
                continue
            value = values[o.name]
            flag = o.flags[0]
            if o.kind is Kind.BOOL:
                args.append(flag.split("/")[0 if value else 1])
            elif o.kind is Kind.NAMES:
                args += [item for v in value for item in (flag, v)]
            else:
                args += [flag, str(value)]
        return args


def _plain(value: Any) -> Any:
    """A value as mitmproxy's options hold it: a list, a choice as its string."""
    if isinstance(value, list | tuple):
        return list(value)
    return value.value if isinstance(value, StrEnum) else value


def _more_than_zero(value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be more than 0, not {value!r}")


def _not_redacted(headers: tuple[str, ...]) -> None:
    redacted = [h for h in headers if Redactor().redacts_header(h)]
    if redacted:
        raise ValueError(f"{', '.join(redacted)}: recorded values are redaction placeholders, never equal to a live "
                         "value")


def _host_names(names: tuple[str, ...]) -> None:
    problems = guard.bad_names(names)
    if problems:
        raise ValueError("; ".join(problems))


# Which Host names a serving command answers besides the local ones (gwsvcr/guard.py): replay and record have it
# among their options; sim and service, whose other options are their own, take it from GUARD; the guard addon
# (addons/guard.py) holds its mitmproxy option on every command.
ALLOW_HOST_HEADER = Option(
    "allow_host_header", Kind.NAMES, (), "Answer requests whose Host header is this name too (besides localhost, IP "
    "addresses, the --host name and the upstream's): a name of this machine your clients use; any other is refused, "
    "as a web page pointing its own name at this machine would send it.", metavar="NAME",
    addon="gwsvcr_allow_host_header", check=_host_names)
GUARD = Family("guard", "gwsvcr_", frozenset({Surface.CLI, Surface.ADDON}), (ALLOW_HOST_HEADER,))

SESSION = (  # what identifies a client session (gwsvcr/session.py), for record and replay alike
    Option("session_cookies", Kind.NAMES, (), "Only this cookie identifies a client session (default: any cookie "
           "the server sets).", metavar="NAME", flag="--session-cookie", addon="gwsvcr_session_cookies"),
    Option("session_headers", Kind.NAMES, (), "Only this header identifies a client session (default: "
           "Authorization, and API-key headers for requests that carry nothing else).", metavar="NAME",
           flag="--session-header", addon="gwsvcr_session_headers"),
)

# Values the client makes and the server sends back (gwsvcr/correlate.py): found in a recording with no option;
# these name a location the detection missed, or turn one off.
_AT = "(a query parameter, header or JSON field name, or the end of a dotted path)"
_CORRELATE = f"Values at this location {_AT} are ones the client makes, found even when short"
_NO_CORRELATE = "Values at this location are not client-made after all (turns a found one off)"

REPLAY = Family("replay", "gwsvcr_replay_", frozenset(Surface), (
    Option("timing", Kind.CHOICE, Timing.RECORDED.value, "recorded: each reply and event after its recorded "
           "delay; instant: no delays, same order.", choices=Timing),
    Option("speed", Kind.FLOAT, 1.0, "Scale every delay: 2 replays twice as fast.", check=_more_than_zero),
    Option("strict", Kind.BOOL, True, "strict: an unmatched request gets a 500 explaining the closest recorded ones, "
           "and the run exits 1; lenient: 404, or the upstream answers it.", flag="--strict/--lenient"),
    Option("json_ignore", Kind.NAMES, (), "JSON body path ignored when matching REST requests (volatile fields), "
           "e.g. requestId.", metavar="PATH"),
    Option("ignore_query", Kind.NAMES, (), "Query parameter left out when matching REST requests, e.g. _ (a cache "
           "buster).", metavar="NAME"),
    Option("match_headers", Kind.NAMES, (), "Header compared when matching REST requests (headers are ignored "
           "otherwise).", metavar="NAME", flag="--match-header", check=_not_redacted),
    Option("allow_repeats", Kind.BOOL, True, "Answer a request asked more often than recorded with its last "
           "recorded answer again; off: a miss.", aliases=(" /--no-repeat",)),
    Option("correlate", Kind.NAMES, (), f"{_CORRELATE}: left out of matching, the live value answered wherever the "
           "recorded one stood.", metavar="NAME"),
    Option("no_correlate", Kind.NAMES, (), f"{_NO_CORRELATE}.", metavar="NAME"),
    Option("faults", Kind.NAMES, (), "Inject this fault, e.g. 'unknown-client after op 2', 'reconnect-none after "
           "#7', 'drop-connect event 3', 'delay event 2 by 1s', 'duplicate event 1', 'reset POST /api/v2/me/calls/*', "
           "'http 503 /meta/handshake times 1' (README: Reproducing a field failure).", metavar="SPEC",
           flag="--fault", check=check_faults),
    *SESSION,
    ALLOW_HOST_HEADER,
    Option("raise_on_miss", Kind.BOOL, True, "Leaving the with block raises ReplayMiss when a strict replay missed "
           "(unless the block raised already), as VCR.py raises on a miss; False only lists them.",
           surfaces=frozenset({Surface.API})),
))

RECORD = Family("record", "gwsvcr_record_", frozenset({Surface.CLI, Surface.ADDON, Surface.API}), (
    Option("mode", Kind.CHOICE, RecordMode.ONCE.value, RECORD_MODES, choices=RecordMode, flag="--record-mode",
           defaults={Surface.API: RecordMode.ALL.value}),  # a test harness records to re-record
    Option("redact_headers", Kind.NAMES, (), "Also redact this header's values (Authorization, Cookie, Set-Cookie, "
           "X-CSRF-TOKEN and others always are).", metavar="NAME", flag="--redact-header",
           addon="gwsvcr_redact_headers"),
    Option("redact_json", Kind.NAMES, (), "Also redact this dotted JSON path, e.g. call.participants.*.phoneNumber.",
           metavar="PATH", addon="gwsvcr_redact_json"),
    Option("hosts", Kind.NAMES, (), "Regular mode: record only this host (others pass through untouched); none "
           "given: all.", metavar="HOST", flag="--allow-host", surfaces=frozenset({Surface.CLI, Surface.ADDON})),
    Option("max_body", Kind.TEXT, DEFAULT_MAX_BODY, "Bodies larger than this (512k, 16m, 1g) stream through "
           "unrecorded; the cassette keeps their size and SHA-256.", metavar="SIZE"),
    Option("ignore_query", Kind.NAMES, (), "Replay leaves this query parameter out when matching (written to the "
           "cassette header), e.g. _ (a jQuery cache buster).", metavar="NAME"),
    Option("match_headers", Kind.NAMES, (), "Replay compares this header when matching (written to the cassette "
           "header).", metavar="NAME", flag="--match-header"),
    Option("correlate", Kind.NAMES, (), f"{_CORRELATE} (written to the cassette header).", metavar="NAME"),
    Option("no_correlate", Kind.NAMES, (), f"{_NO_CORRELATE}; written to the cassette header.", metavar="NAME"),
    *SESSION,
    ALLOW_HOST_HEADER,
))


def replay_config(values: Mapping[str, Any], *, has_upstream: bool = False) -> ReplayConfig:
    """The replay engine's configuration from ``values`` of :data:`REPLAY`'s options, validated (as
    :meth:`Family.read` gives them); what each surface builds its replayers from."""
    fields = {f.name for f in dataclasses.fields(ReplayConfig)}
    return ReplayConfig(has_upstream=has_upstream, **{name: v for name, v in values.items() if name in fields})
