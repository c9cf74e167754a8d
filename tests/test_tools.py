"""Cassette tools: show, diff, redact, HAR import/export, report; on real recordings and on broken input.

The recordings are real: ``gwsvcr sim`` behind ``gwsvcr record``, driven by the aiocometd-ng peer, twice (a
re-recording of the same session differs in ids, clientIds, cookies and timing only).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gwsvcr import cassette as cas
from gwsvcr import wire
from gwsvcr.cassette import Cassette, Episode, Exchange, Header, ReplyItem, Request, Response
from gwsvcr.cli.main import main
from gwsvcr.cli.tools import register
from gwsvcr.record.redact import Redactor
from gwsvcr.tools import diff, har, show
from gwsvcr.tools.progress import Progress
from tests.procs import PEERS, ROOT, Proc, gwsvcr

if "show" not in main.commands:  # until cli/main.py calls register(main) itself
    register(main)

OPS = "StopCallRecording,StartCallRecording,PauseCallRecording,ResumeCallRecording"
BROWSER_HAR = ROOT / "tests" / "data" / "browser_cometd.har"
PHONE = re.compile(r"(?<!\d)1500\d(?!\d)")
# run the real command line in a fresh interpreter, as a user does, with the tools registered
REGISTERED_MAIN = ("from gwsvcr.cli.main import main\nfrom gwsvcr.cli.tools import register\n"
                   "register(main) if 'show' not in main.commands else None\nmain()")
CLI = [sys.executable, "-c", REGISTERED_MAIN]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def drive(url: str, ops: str = OPS) -> list[dict[str, object]]:
    """One scripted agent session (aiocometd-ng) against ``url``; its JSON-lines records."""
    done = subprocess.run([sys.executable, str(PEERS / "aiocometd_client.py"), "--url", url, "--ops", ops,
                           "--password", "secret"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def events_of(records: list[dict[str, object]]) -> list[object]:
    return [r["recordingState"] for r in records if r["type"] == "event"]


@dataclass
class Recordings:
    a: Path
    b: Path  # the same session recorded again


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recordings]:
    folder = tmp_path_factory.mktemp("recordings")
    sim = gwsvcr("sim", "--event-delay-ms", "250")
    paths = []
    try:
        for name in ("a.yaml", "b.yaml"):
            recorder = gwsvcr("record", "--upstream", sim.url, "--cassette", str(folder / name))
            try:
                drive(recorder.url)
            finally:
                assert recorder.stop() == 0, recorder.stderr
            paths.append(folder / name)
    finally:
        assert sim.stop() == 0, sim.stderr
    yield Recordings(*paths)


@pytest.fixture
def a_copy(recordings: Recordings, tmp_path: Path) -> Path:
    return Path(shutil.copy(recordings.a, tmp_path / "copy.yaml"))


def replay_and_drive(path: Path, ops: str = OPS) -> tuple[list[dict[str, object]], Proc]:
    replayer = gwsvcr("replay", str(path))
    try:
        records = drive(replayer.url, ops)
    finally:
        code = replayer.stop()
    assert code == 0, replayer.stderr
    return records, replayer


# ------------------------------------------------------------------------------------------------------ show


def test_show_prints_each_event_with_its_cause_in_100_columns(recordings: Recordings) -> None:
    result = run("show", recordings.a)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    post = next(line for line in lines if "-> POST /api/v2/me/calls/" in line and "StopCallRecording" in line)
    number = re.search(r"#(\d+) ->", post).group(1)  # type: ignore[union-attr]
    event = next(line for line in lines if "CallRecordingStateChange (Stopped)" in line)
    assert re.search(rf"<- /v2/me/calls +CallRecordingStateChange \(Stopped\)  \d+ ms after #{number} "
                     "StopCallRecording$", event), event
    assert sum("CallRecordingStateChange" in line for line in lines) == 4


def test_show_json_filters_by_session_and_channel(recordings: Recordings) -> None:
    result = run("show", recordings.a, "--session", "s1", "--channel", "/v2/me/*", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["summary"] for r in rows] == ["CallRecordingStateChange (Stopped)",
                                            "CallRecordingStateChange (Recording)",
                                            "CallRecordingStateChange (Paused)",
                                            "CallRecordingStateChange (Recording)"]
    assert [r["after"] for r in rows] == OPS.split(",")
    assert all(r["kind"] == "event" and 200 <= r["delay_ms"] <= 600 for r in rows)


def test_show_names_an_unknown_session(recordings: Recordings) -> None:
    result = run("show", recordings.a, "--session", "s9")
    assert result.exit_code == 1
    assert f"{recordings.a}: no session 's9'; it has s1" in result.stderr


# ------------------------------------------------------------------------------------------------------ diff


def test_diff_ignores_a_rerecording_of_the_same_session(recordings: Recordings) -> None:
    a, b = recordings.a.read_text(), recordings.b.read_text()
    client_ids = re.compile(r"clientId: (\w+)")
    assert set(client_ids.findall(a)).isdisjoint(client_ids.findall(b)), "a real re-recording has new ids"
    result = run("diff", recordings.a, recordings.b)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.startswith("equivalent:")


def test_diff_finds_a_changed_notification(recordings: Recordings, a_copy: Path) -> None:
    text = a_copy.read_text()
    assert text.count("recordingState: Paused") == 1
    a_copy.write_text(text.replace("recordingState: Paused", "recordingState: Stopped"))
    result = run("diff", recordings.a, a_copy)
    assert result.exit_code == 1
    # labelled as show labels it, state included; paired with the event of the same kind in its place
    assert re.search(r"s1: A#(\d+) <- /v2/me/calls CallRecordingStateChange \(Paused\) became "
                     r"B#\1 <- /v2/me/calls CallRecordingStateChange \(Stopped\)\n"
                     r' +event\.data\.call\.recordingState: "Paused" in A, "Stopped" in B\n', result.stdout)
    assert result.stdout.splitlines()[-1].startswith("different: 1 difference")


def test_diff_pairs_events_by_content_not_position(recordings: Recordings, a_copy: Path) -> None:
    """B got one more notification (a Stopped right after the Start): every other event still pairs with its
    equal, and only the extra one is reported, labelled with its state."""
    loaded = cas.load(a_copy)
    carrier = next(ex for ex in loaded.exchanges if any(
        i.is_event and i.message["data"]["call"]["recordingState"] == "Recording" for i in ex.reply_items()))
    event = next(i for i in carrier.reply_items() if i.is_event)
    extra = json.loads(json.dumps(event.message))
    extra["data"]["call"]["recordingState"] = "Stopped"
    assert carrier.response is not None
    carrier.response.body.append(ReplyItem(extra, event="CallRecordingStateChange (Stopped)", cause=event.cause,
                                           after=event.after, delay=event.delay))
    cas.save(loaded, a_copy)
    result = run("diff", recordings.a, a_copy)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        f"s1: only in B: B#{carrier.number} <- /v2/me/calls CallRecordingStateChange (Stopped)",
        f"different: 1 difference(s), 0 in timing, between {recordings.a} (A) and {a_copy} (B)"]


def test_diff_takes_a_redacted_value_for_the_value_it_hides(recordings: Recordings, a_copy: Path) -> None:
    redacted = a_copy.with_name("redacted.yaml")
    done = run("redact", a_copy, "-o", redacted, "--pattern", PHONE.pattern)
    assert done.exit_code == 0 and "pattern: " in done.stderr, done.stderr
    assert PHONE.search(a_copy.read_text()) and not PHONE.search(redacted.read_text())
    result = run("diff", recordings.a, redacted)
    assert result.exit_code == 0, result.stdout
    assert run("diff", recordings.a, redacted, "--exact").exit_code == 1
    assert diff.changed_fields({"x": "call <redacted> to 15000"}, {"x": "call 01RC to 15001"}) == [
        'x: "call <redacted> to 15000" in A, "call 01RC to 15001" in B']


def test_diff_finds_a_missing_operation_and_late_events(recordings: Recordings, a_copy: Path) -> None:
    loaded = cas.load(a_copy)
    pause = next(ex for ex in loaded.exchanges if isinstance(ex.request.body, dict)
                 and ex.request.body.get("operationName") == "PauseCallRecording")
    loaded.exchanges.remove(pause)
    for ex in loaded.exchanges:
        for item in ex.reply_items():
            if item.cause == pause.number:
                item.cause = None
            elif item.after == "StopCallRecording":
                item.delay = (item.delay or 0) + 0.4
    cas.save(loaded, a_copy)
    result = run("diff", recordings.a, a_copy)
    assert result.exit_code == 1
    assert f"only in A: A#{pause.number} POST /api/v2/me/calls/<id> PauseCallRecording" in result.stdout
    assert re.search(r"timing differs\n +delay \d+ ms in A, \d+ ms in B \(apart by 400 ms > 50 ms\) after "
                     r"POST /api/v2/me/calls/<id> StopCallRecording", result.stdout)
    cause = "cause: after POST /api/v2/me/calls/<id> PauseCallRecording in A, after nothing in B"
    assert cause in result.stdout
    assert run("diff", recordings.a, a_copy, "--threshold-ms", "500").stdout.count("timing differs") == 0


def test_diff_exits_2_on_bad_input(recordings: Recordings, tmp_path: Path) -> None:
    missing = run("diff", recordings.a, tmp_path / "none.yaml")
    assert missing.exit_code == 2
    assert missing.stderr == f"{tmp_path / 'none.yaml'}: no such file; record one with 'gwsvcr record' or " \
                             "check the path\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text(recordings.a.read_text().replace("status: 200", "status: two hundred", 1))
    result = run("diff", broken, recordings.a)
    assert result.exit_code == 2
    assert re.fullmatch(rf"{re.escape(str(broken))}:\d+: field 'status' must be an integer, got str\n",
                        result.stderr)


# ---------------------------------------------------------------------------------------------------- redact


def test_redact_keeps_the_cassette_valid_and_replayable(recordings: Recordings, tmp_path: Path) -> None:
    out = tmp_path / "shared.yaml"
    result = run("redact", recordings.a, "-o", out, "--pattern", PHONE.pattern)
    assert result.exit_code == 0, result.stderr
    assert re.match(r"gwsvcr: \d+ values redacted \(.*json phoneNumber: \d+.*pattern: \d+\); wrote ",
                    result.stderr)
    assert cas.validate(out) == []
    text = out.read_text()
    data = text.split("---", 2)[2]  # the header lists the rules, which name the pattern
    assert not PHONE.search(data) and "agent1" not in data.replace("Basic YWdlbnQx", "")
    # one value, one placeholder: the agent's number is the same placeholder in every notification
    numbers = re.findall(r"^        phoneNumber: (REDACTED-\w+)$", text, re.MULTILINE)
    assert len(numbers) == 4 and len(set(numbers)) == 1
    records, replayer = replay_and_drive(out)
    assert events_of(records) == ["Stopped", "Recording", "Paused", "Recording"]
    assert " 0 misses" in replayer.stdout


def test_redact_never_touches_the_original_unless_asked(a_copy: Path) -> None:
    before = a_copy.read_text()
    assert run("redact", a_copy).exit_code == 0
    assert a_copy.read_text() == before
    sibling = a_copy.with_name("copy.redacted.yaml")
    assert "REDACTED-" in sibling.read_text() and "15000" not in sibling.read_text()
    clash = run("redact", a_copy, "--in-place", "-o", sibling)
    assert clash.exit_code == 2 and "--in-place" in clash.stderr
    again = run("redact", a_copy, "--in-place", "--pattern", r"\d{3}")
    assert again.exit_code == 0 and a_copy.read_text() != before
    assert "REDACTED-REDACTED" not in a_copy.read_text(), "a pattern must not eat an existing placeholder"
    assert cas.validate(a_copy) == []


def test_redact_to_stdout_and_bad_pattern(recordings: Recordings) -> None:
    result = run("redact", recordings.a, "-o", "-", "--no-pii")
    assert result.exit_code == 0 and result.stdout.startswith("---\ngwsvcr: 1\n")
    assert 'phoneNumber: "15000"' in result.stdout
    bad = run("redact", recordings.a, "--pattern", "(")
    assert bad.exit_code == 2 and "is not a regex" in bad.stderr


# ------------------------------------------------------------------------------------------------------- har


def test_har_export_reads_back_in_mitmproxy_and_imports_to_the_same_timeline(recordings: Recordings,
                                                                            tmp_path: Path) -> None:
    from mitmproxy import io as mitmproxy_io
    from mitmproxy.http import HTTPFlow

    exported = tmp_path / "a.har"
    assert run("har", "export", recordings.a, "-o", exported).exit_code == 0
    loaded = cas.load(recordings.a)
    with exported.open("rb") as fh:
        flows = [f for f in mitmproxy_io.FlowReader(fh).stream() if isinstance(f, HTTPFlow)]
    by_start = sorted(loaded.exchanges, key=lambda ex: ex.start)
    replies = [f.response for f in flows if f.response is not None]
    assert len(replies) == len(flows) == len(by_start)
    read_back = [(f.request.method, f.request.path, reply.status_code)
                 for f, reply in zip(flows, replies, strict=True)]
    assert read_back == [(ex.request.method, ex.request.path, ex.response.status if ex.response else 0)
                         for ex in by_start]
    assert [json.loads(f.request.content or b"null") for f in flows] == \
           [json.loads(ex.request.content() or b"null") for ex in by_start]
    assert sum((r.get_text() or "").count('"CallRecordingStateChange"') for r in replies) == 4

    back = tmp_path / "back.yaml"
    result = run("har", "import", exported, "-o", back, "--no-pii")
    assert result.exit_code == 0, result.stderr
    differences, steps = diff.compare(loaded, cas.load(back), threshold=0.005)
    assert differences == [] and steps >= 12


@pytest.mark.e2e  # starts a process
def test_har_import_of_a_browser_session_is_redacted_and_replays(tmp_path: Path) -> None:
    out = tmp_path / "browser.yaml"
    result = run("har", "import", BROWSER_HAR, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "imported 8 of 11 entries" in result.stderr and "(3 left out: --all keeps" in result.stderr
    text = out.read_text()
    basic = base64.b64encode(b"agent1:s3cret-Passw0rd").decode()
    for secret in ("s3cret-Passw0rd", basic, "node01x7y8z9secretsession0", "8f14e45f-ceea", "1ab2cd3ef4"):
        assert secret not in text
    loaded = cas.load(out)
    rows = show.timeline(loaded)
    event = next(r for r in rows if r.kind == show.EVENT)
    post = next(r for r in rows if r.summary == "StopCallRecording")
    assert (event.summary, event.cause, event.after) == ("CallRecordingStateChange (Stopped)", post.exchange,
                                                         "StopCallRecording")
    assert event.delay is not None and 0.24 < event.delay < 0.26
    assert any(r.kind == show.ERROR and "net::ERR_ABORTED" in r.summary for r in rows)
    assert wire.basic_auth(loaded.exchanges[0].request.header("Authorization"))[0] == "agent1"  # type: ignore
    records, _ = replay_and_drive(out, "StopCallRecording")
    assert events_of(records) == ["Stopped"]


def test_har_keeps_callback_polling_wrapped_and_attributes_its_events(tmp_path: Path) -> None:
    agent = [("Cookie", "JSESSIONID=abc")]  # what ties the REST call and the long-poll to one session
    operation = Exchange(1, "s1", 0.0, Request(agent, "json", {"operationName": "StopCallRecording"}, "POST",
                                               "/api/v2/me/calls/X"),
                         Response(kind="json", body={"statusCode": 0}), ttfb=0.003, ttlb=0.004)
    connect = [{"channel": "/meta/connect", "clientId": "c1", "id": "5"}]
    event = {"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange",
                                                 "call": {"recordingState": "Stopped"}}}
    poll = Exchange(2, "s1", 0.001, Request(agent, method="GET", path="/cometd",
                                            query=[("jsonp", "cb7"), ("message", json.dumps(connect))]),
                    Response(headers=[("Content-Type", "text/javascript;charset=UTF-8")], kind="messages",
                             body=[ReplyItem(event, cause=1, delay=0.252),
                                   ReplyItem({"channel": "/meta/connect", "id": "5", "successful": True})]),
                    ttfb=0.255, ttlb=0.256, transport="callback-polling")
    recorded = Cassette("cb.yaml", Header(recorded_at="2025-05-06T09:12:03Z", upstream="http://gws:8080"),
                        [operation, poll], [Episode(1, "2025-05-06T09:12:03Z")])
    document = har.export(recorded)
    wrapped = document["log"]["entries"][1]["response"]["content"]["text"]
    assert wrapped.startswith('cb7([{"channel":"/v2/me/calls"') and wrapped.endswith("}])")
    har.write(document, tmp_path / "cb.har")
    entries = list(har.parse_entries(str(tmp_path / "cb.har"), har.read(str(tmp_path / "cb.har"))))
    imported = har.to_cassette("back.yaml", entries, Redactor())
    items = imported.exchanges[1].reply_items()
    assert imported.exchanges[1].transport == "callback-polling"
    assert (items[0].event, items[0].cause, items[0].after) == ("CallRecordingStateChange (Stopped)", 1,
                                                                "StopCallRecording")
    assert items[0].delay == pytest.approx(0.252, abs=1e-5)  # from the HAR timings: 0.001 + 0.255 - 0.004


@pytest.mark.parametrize(("content", "expected"), [
    ('{"log": {"entries": [\n  {"request": }\n]}}',
     r"{path}:2: not valid JSON: Expecting value \(column 15\)"),
    ('{"log": {}}', r"{path}: not a HAR file: no 'log.entries' list .*"),
    ('{"log": {"entries": [{"startedDateTime": "2025-05-06T09:12:03Z", "request": {"method": "GET"}}]}}',
     r"{path}: log.entries\[0\].request.url: missing or not a str"),
    ('{"log": {"entries": [{"startedDateTime": "yesterday"}]}}',
     r"{path}: log.entries\[0\].startedDateTime: not an ISO 8601 date"),
])
def test_har_import_rejects_broken_files_clearly(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "broken.har"
    path.write_text(content)
    result = run("har", "import", path, "-o", tmp_path / "out.yaml")
    assert result.exit_code == 1
    assert re.fullmatch(expected.replace("{path}", re.escape(str(path))) + "\n", result.stderr), result.stderr
    assert not (tmp_path / "out.yaml").exists()


# ---------------------------------------------------------------------------------------------------- report


def test_report_is_one_self_contained_page(recordings: Recordings, tmp_path: Path) -> None:
    page = tmp_path / "timeline.html"
    assert run("report", recordings.a, "-o", page).exit_code == 0
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=|@import|url\((?!#)|fetch\(|XMLHttpRequest""", html)
    assert "default-src 'none'" in html
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html,
                                re.DOTALL).group(1))  # type: ignore[union-attr]
    assert data["events"] == 4 and len(data["rows"]) == len(show.timeline(cas.load(recordings.a)))


def test_report_data_cannot_break_out_of_its_script(a_copy: Path) -> None:
    from gwsvcr.tools import report

    loaded = cas.load(a_copy)
    hostile = {"statusCode": 0, "x": "</script><script>alert(1)</script>"}
    loaded.exchanges[0].response.body = hostile  # type: ignore[union-attr]
    html = report.render(loaded)
    assert "alert(1)" in html and "</script><script>alert" not in html


# ------------------------------------------------------------------------------------------ errors, progress


@pytest.mark.parametrize(("args", "code"), [
    (["show", "missing.yaml"], 1), (["diff", "missing.yaml", "missing.yaml"], 2),
    (["redact", "missing.yaml"], 1), (["har", "export", "missing.yaml", "-o", "x.har"], 1),
    (["har", "import", "missing.har", "-o", "x.yaml"], 1), (["report", "missing.yaml"], 1),
])
def test_bad_input_is_one_clear_line_never_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      args: list[str], code: int) -> None:
    monkeypatch.chdir(tmp_path)
    done = run(*args)  # an exception would escape the runner: no traceback is ever printed for it
    assert done.exit_code == code
    assert re.fullmatch(r"missing\.(yaml|har): no such file[^\n]*\n", done.stderr), done.stderr
    assert done.stdout == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_quiet_off_a_terminal_for_short_work_and_visible_on_one() -> None:
    quiet = io.StringIO()
    with Progress("loading x.yaml", total=3, stream=quiet) as progress:
        progress.step(3)
    assert quiet.getvalue() == ""

    now = [0.0]
    slow = io.StringIO()
    with Progress("importing x.har", total=10, stream=slow, clock=lambda: now[0]) as progress:
        now[0] = 1.5
        progress.step(4)
    lines = slow.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("gwsvcr: importing x.har: ")
    assert lines[1] == "gwsvcr: importing x.har: 4/10 (40%) in 1.5 s"

    terminal = _Terminal()
    with Progress("loading big.yaml", stream=terminal, clock=lambda: now[0]):
        pass
    assert terminal.getvalue().startswith("\r\x1b[Kgwsvcr: loading big.yaml…")
