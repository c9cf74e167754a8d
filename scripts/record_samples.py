"""Re-record the sample cassettes in cassettes/ with gwsvcr itself, from third-party CometD clients
(the official CometD JS client under Node, aiocometd-ng) against `gwsvcr sim`.

    .venv/bin/python scripts/record_samples.py      (after `make test` installed the Node peers)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import PEERS, gwsvcr  # noqa: E402

SAMPLES = {
    # the seed's flow: an established call being recorded, StopCallRecording, then Stopped / GSIP_RECORD OFF
    "stop_call_recording.yaml": ("Recording", ["node", str(PEERS / "cometd_client.js")], "StopCallRecording"),
    "recording_lifecycle.yaml": ("Stopped", [sys.executable, str(PEERS / "aiocometd_client.py")],
                                 "StartCallRecording,PauseCallRecording,ResumeCallRecording,StopCallRecording"),
}


def main() -> None:
    for name, (state, client, ops) in SAMPLES.items():
        path = ROOT / "cassettes" / name
        sim = gwsvcr("sim", "--port", "0", "--recording-state", state)
        rec = gwsvcr("record", "--upstream", sim.url, "--cassette", str(path), "--record-mode", "all",
                     "--port", "0")
        subprocess.run([*client, "--url", rec.url, "--ops", ops, "--user", "agent1", "--password", "secret"],
                       check=True, stdout=subprocess.DEVNULL)
        rec.stop()
        sim.stop()
        print(f"{path}: {rec.stdout.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
