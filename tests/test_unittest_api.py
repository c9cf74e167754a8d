"""The Python API from unittest (also run by pytest): a cassette mounted per test on the process's replay service,
its misses and unused exchanges read after the test."""

from __future__ import annotations

import json
import unittest
import urllib.error
import urllib.request

import gwsvcr
from tests.procs import ROOT

CASSETTE = ROOT / "cassettes" / "stop_call_recording.yaml"
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
HEADERS = {"Authorization": "Basic YWdlbnQxOnNlY3JldA==", "Content-Type": "application/json"}  # agent1:secret


def post(url: str, body: object) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), HEADERS)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


class StopCallRecordingTest(unittest.TestCase):
    def setUp(self) -> None:
        self.gws = gwsvcr.replaying(CASSETTE, timing="instant")  # mounted now; unmounted after the test
        self.addCleanup(self.gws.close)

    def test_stop_call_recording(self) -> None:
        self.assertEqual(post(self.gws.url + CALL, {"operationName": "StopCallRecording"}), {"statusCode": 0})
        self.assertEqual(self.gws.misses, [])
        self.assertNotIn(5, self.gws.unused)

    def test_a_request_not_recorded_is_a_miss(self) -> None:
        with self.assertRaises(urllib.error.HTTPError) as caught:
            post(self.gws.url + CALL, {"operationName": "HoldCall"})
        self.assertEqual(caught.exception.code, 500)
        [miss] = self.gws.misses
        self.assertIn("'HoldCall' here, 'StopCallRecording' recorded", json.dumps(miss))
        with self.assertRaises(gwsvcr.ReplayMiss):
            self.gws.check()


class WithBlockTest(unittest.TestCase):
    def test_with_block_raises_on_miss_by_default(self) -> None:
        with self.assertRaises(gwsvcr.ReplayMiss) as caught, gwsvcr.replaying(CASSETTE, timing="instant") as gws, \
                self.assertRaises(urllib.error.HTTPError):
            post(gws.url + CALL, {"operationName": "HoldCall"})
        self.assertEqual(len(caught.exception.misses), 1)
        self.assertIn("'HoldCall' here, 'StopCallRecording' recorded", str(caught.exception))

    def test_raise_on_miss_false_only_lists_them(self) -> None:
        with gwsvcr.replaying(CASSETTE, timing="instant", raise_on_miss=False) as gws, \
                self.assertRaises(urllib.error.HTTPError):
            post(gws.url + CALL, {"operationName": "HoldCall"})
        self.assertEqual([m["request"] for m in gws.misses], [f"POST {CALL}"])


if __name__ == "__main__":
    unittest.main()
