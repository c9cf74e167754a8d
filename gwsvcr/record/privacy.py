"""The personal-data policy: which GWS fields hold a person's phone number or name, and a redactor that also
finds their values inside other strings (``gwsvcr redact --pii``, ``har import``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from gwsvcr.cassette import Cassette
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.redact import PLACEHOLDER, Redactor

__all__ = ["PERSONAL_FIELDS", "RedactionError", "cassette_bodies", "make_redactor", "personal_values",
           "redact_cassette"]

# GWS fields that carry a person's phone number or name (docs.genesys.com call and user resources).
PERSONAL_FIELDS = ("phoneNumber", "formattedPhoneNumber", "e164Number", "digits", "dnis", "ani", "otherDN",
                   "userName", "employeeId", "firstName", "lastName", "emailAddress", "displayName")



class RedactionError(GwsvcrError):
    """A redaction rule that cannot work (a pattern that is not a regex)."""


def personal_values(bodies: Iterable[Any]) -> set[str]:
    """Values of personal GWS fields anywhere in these JSON bodies, so that they can be found inside other
    strings too (GSIP_REC_FN holds the agent's and the other party's numbers)."""
    found: set[str] = set()
    stack = list(bodies)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if key in PERSONAL_FIELDS and isinstance(item, (str, int)) and not isinstance(item, bool):
                    text = str(item)
                    if len(text) >= 3 and not PLACEHOLDER.fullmatch(text):  # "" or "1" would hit everything
                        found.add(text)
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def make_redactor(json_paths: tuple[str, ...], patterns: tuple[str, ...], pii: bool, headers: tuple[str, ...],
                  bodies: Iterable[Any] = ()) -> tuple[Redactor, list[str]]:
    """A redactor and the rules it applies (for the cassette header). With ``pii``, the personal values found
    in ``bodies`` are also replaced inside any string, by the same placeholder as in their own field."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise RedactionError(f"{pattern!r} is not a regex: {e}") from None
    paths = tuple(json_paths) + (PERSONAL_FIELDS if pii else ())
    rules = Redactor(headers, paths, patterns).rules()
    found = sorted(personal_values(bodies), key=len, reverse=True) if pii else []
    if found:
        patterns += ("(?<![0-9A-Za-z])(?:" + "|".join(map(re.escape, found)) + ")(?![0-9A-Za-z])",)
        rules.append("values of those personal fields wherever they occur inside other strings")
    return Redactor(headers, paths, patterns), rules


def cassette_bodies(loaded: Cassette) -> Iterator[Any]:
    for ex in loaded.exchanges:
        yield ex.request.body
        if ex.response is not None:
            yield [item.message for item in ex.reply_items()] or ex.response.body


def redact_cassette(loaded: Cassette, redactor: Redactor, rules: list[str]) -> None:
    for ex in loaded.exchanges:
        redactor.exchange(ex)
    loaded.header.redactions += [r for r in rules if r not in loaded.header.redactions]
