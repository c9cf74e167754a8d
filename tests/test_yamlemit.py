"""The fast cassette emitter reads back identically with PyYAML's safe loader, whatever the data."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gwsvcr.cassette.emit import Flow, document, scalar

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
tricky = st.sampled_from(["", " ", "yes", "No", "ON", "off", "null", "~", "1e3", "0x1F", "0o17", "017", "1_000",
                          "2026-01-01", "12:30", ".inf", "-.inf", ".nan", "#x", "a #b", "a: b", "- a", "[x]",
                          "{x}", "*a", "&a", "!tag", "|", ">", "'q'", '"q"', "%x", "@x", "`x", "a\nb", "a\n",
                          "a\n\n", " lead", "trail ", "\t", "\u2028", "\x85", "\ufeff", "\x00", "\x7f", "é",
                          "𝄞", "---", "...", "a\r\nb", "<html>\n <p>x</p>\n</html>\n", "=", "<<", "Y", "n"])
values = st.recursive(scalars | tricky, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | tricky, inner, max_size=4), max_leaves=25)


def load(text: str) -> object:
    return yaml.load(text, Loader=yaml.SafeLoader)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12) | tricky, values, min_size=1, max_size=6))
def test_round_trip(doc: dict) -> None:
    assert load(document(doc)) == doc


@given(st.lists(scalars | tricky, max_size=4))
def test_flow_lists_round_trip(items: list) -> None:
    assert load(document({"h": Flow(items)})) == {"h": items}


def test_readable_shapes() -> None:
    text = document({"request": {"method": "POST", "headers": Flow(["Content-Type", "application/json"]),
                                 "json": {"operationName": "StopCallRecording"}},
                     "messages": [{"event": "CallRecordingStateChange (Stopped)", "delay": 0.252},
                                  {"hold": 1e-05, "message": {"channel": "/meta/connect", "successful": True}}],
                     "GSIP_RECORD": "OFF", "page": "<p>\n  x\n</p>\n"})
    assert "  headers: [Content-Type, application/json]" in text
    assert "    operationName: StopCallRecording" in text
    assert "- event: CallRecordingStateChange (Stopped)\n  delay: 0.252" in text
    assert "GSIP_RECORD: \"OFF\"" in text and "hold: 1.0e-05" in text
    assert "page: |\n  <p>\n    x\n  </p>" in text
    assert scalar(float("inf")) == ".inf"
