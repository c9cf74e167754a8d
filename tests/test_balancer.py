"""gwsvcr.replay.balancer and `gwsvcr replay --workers`' parent, without running a replay: HAProxy's
configuration (checked by HAProxy itself, and the one docs/SCALING.md shows), its timeouts, the options each
worker is given, and what happens without HAProxy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwsvcr import cassette as cas
from gwsvcr.bayeux import CONNECT
from gwsvcr.cli import workers
from gwsvcr.cli.main import main, replay
from gwsvcr.replay import balancer, longest_wait
from gwsvcr.timeline import Timing
from tests.procs import ROOT, need_haproxy

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"  # advice.timeout 30 s
DOC_SERVERS = [("replay-a", "10.0.0.11:8101"), ("replay-b", "10.0.0.12:8101")]


def test_docs_scaling_shows_the_configuration_workers_writes() -> None:
    found = re.search(r"```haproxy\n(.*?)```", (ROOT / "docs" / "SCALING.md").read_text(), re.S)
    assert found, "docs/SCALING.md has no haproxy block"
    assert found.group(1) == balancer.config(":8100", DOC_SERVERS, 30)


@pytest.mark.e2e  # starts a process
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(balancer.config("127.0.0.1:8100", DOC_SERVERS, 30))
    checked = subprocess.run([need_haproxy(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr


def test_timeouts_outlast_the_longest_held_long_poll() -> None:
    loaded = cas.load(SAMPLE)
    assert longest_wait(loaded, Timing.RECORDED, 1.0) == 30.0
    assert longest_wait(loaded, Timing.RECORDED, 0.5) == 60.0  # held twice as long
    assert longest_wait(loaded, Timing.INSTANT, 1.0) == 30.0  # instant replay holds a connect the full timeout
    assert balancer.patience(60.0) == 60 + balancer.MAX_NETWORK_DELAY + balancer.MARGIN
    assert f"timeout server {balancer.patience(60.0)}s" in balancer.config(":1", DOC_SERVERS, 60.0)


def test_a_worker_is_given_the_options_given_and_no_defaults() -> None:
    ctx = replay.make_context("replay", [str(SAMPLE), "--workers", "3", "--port", "8090", "--speed", "2",
                                         "--lenient", "--json-ignore", "a.b", "--json-ignore", "c",
                                         "--session-cookie", "SID"])
    assert workers.forwarded(ctx, {"workers", "host", "port", "peer"}) == [
        "--speed", "2.0", "--lenient", "--json-ignore", "a.b", "--json-ignore", "c", "--session-cookie", "SID"]


def test_without_haproxy_workers_exit_2_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(balancer, "find", lambda: None)
    result = CliRunner().invoke(main, ["replay", str(SAMPLE), "--workers", "2"])
    assert result.exit_code == 2
    assert "apt-get install haproxy" in result.output


@pytest.mark.parametrize(("extra", "says"), [(["--lenient", "--upstream", "http://127.0.0.1:9"], "--upstream"),
                                             (["--peer", "http://127.0.0.1:9"], "--peer")])
def test_options_of_one_process_are_refused_with_workers(extra: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["replay", str(SAMPLE), "--workers", "2", *extra])
    assert result.exit_code == 2 and says in result.output


def test_the_longest_wait_follows_the_recorded_connect_advice() -> None:
    loaded = cas.load(SAMPLE)
    connects = [i.message for ex in loaded.exchanges for i in ex.reply_items()
                if i.message.get("channel") == CONNECT and i.message.get("successful")]
    assert connects, "the sample has no successful connect"
    connects[-1]["advice"] = {"timeout": 45_000, "reconnect": "retry"}
    assert longest_wait(loaded, Timing.INSTANT, 1.0) == 45.0
    assert longest_wait(loaded, Timing.RECORDED, 0.5) == 90.0
