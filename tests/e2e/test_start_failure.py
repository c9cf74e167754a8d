"""A serving command that cannot start (its port taken) says which gwsvcr option to change, leaves nothing behind,
and the same command on a free port then works: record, replay and sim as a user types them (in process)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gwsvcr import cassette as cas
from gwsvcr.cli.main import main
from tests.procs import ROOT, gwsvcr

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_names_the_port_option(done: Result, port: int) -> None:
    assert done.exit_code == 1, done.output
    assert done.output.strip().splitlines() == [
        f"gwsvcr: cannot listen on 127.0.0.1:{port}: the port is taken (by another program, or a gwsvcr still "
        "running): choose another with --port, or --port 0 for a free one"], done.output
    assert "--mode" not in done.output and "127.0.0.1:9" not in done.output and "Traceback" not in done.output


def test_record_on_a_taken_port_leaves_no_cassette_and_a_retry_records(taken: int, tmp_path: Path) -> None:
    pin = tmp_path / "pin.yaml"
    done = run("record", "--upstream", "http://127.0.0.1:1", "--cassette", str(pin), "--port", str(taken))
    assert_names_the_port_option(done, taken)
    assert not pin.exists()
    retry = gwsvcr("record", "--upstream", "http://127.0.0.1:1", "--cassette", str(pin), "--port", "0")
    assert retry.stop() == 0, retry.stderr
    assert cas.load(pin, use_cache=False).exchanges == []


@pytest.mark.parametrize("command", [("replay", str(SAMPLE)), ("sim",)])
def test_replay_and_sim_on_a_taken_port_name_the_port_option(taken: int, command: tuple[str, ...]) -> None:
    assert_names_the_port_option(run(*command, "--port", str(taken)), taken)


def test_record_mode_once_names_the_option_that_changes_it(tmp_path: Path) -> None:
    pin = tmp_path / "pin.yaml"
    pin.write_text(SAMPLE.read_text())
    done = run("record", "--upstream", "http://127.0.0.1:1", "--cassette", str(pin), "--port", "0")
    assert done.exit_code == 2
    assert "give --record-mode new_episodes to append to it or --record-mode all to rewrite it" in done.output
    assert pin.read_text() == SAMPLE.read_text()
