"""A model of Genesys Web Services (API v2) call recording, as the seed page describes it.

Pure data and rules: the simulator turns them into HTTP and CometD. Status codes follow GWS's documented return
values (0 ok, 1 missing parameter, 2 invalid for the current state, 6 not found).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CALLS_CHANNEL", "CAPABILITIES_BY_STATE", "COMETD_PATH", "INVALID_FOR_STATE", "MISSING_PARAMETER",
           "NOT_FOUND", "OK", "RECORDING_OPERATIONS", "RECORDING_STATES", "SEED_CALL", "SEED_CALL_ID",
           "SEED_PHONE_NUMBER", "Agent", "Outcome", "error", "make_call", "new_call_id", "summarize_notification",
           "summarize_request"]

CALLS_CHANNEL = "/v2/me/calls"
COMETD_PATH = "/api/v2/notifications"
SEED_CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"

OK, MISSING_PARAMETER, INVALID_FOR_STATE, NOT_FOUND = 0, 1, 2, 6

# operation -> (states it is valid from, new recordingState, GSIP_RECORD, recording capabilities afterwards)
RECORDING_OPERATIONS: dict[str, tuple[frozenset[str], str, str, tuple[str, ...]]] = {
    "StartCallRecording": (frozenset({"Stopped"}), "Recording", "ON",
                           ("PauseCallRecording", "StopCallRecording")),
    "PauseCallRecording": (frozenset({"Recording"}), "Paused", "PAUSED",
                           ("ResumeCallRecording", "StopCallRecording")),
    "ResumeCallRecording": (frozenset({"Paused"}), "Recording", "ON",
                            ("PauseCallRecording", "StopCallRecording")),
    "StopCallRecording": (frozenset({"Recording", "Paused"}), "Stopped", "OFF", ("StartCallRecording",)),
}
CAPABILITIES_BY_STATE = {state: caps for _, state, _, caps in RECORDING_OPERATIONS.values()}

_BASE_CAPABILITIES = ("UpdateUserData", "SendDtmf", "InitiateConference", "Hold", "SingleStepTransfer",
                      "InitiateTransfer", "AttachUserData", "DeleteUserDataPair", "SingleStepConference",
                      "DeleteUserData", "Hangup")

# The seed's call, as the StopCallRecording page shows it (state before the operation is applied).
SEED_CALL: dict[str, Any] = {
    "id": SEED_CALL_ID,
    "state": "Established",
    "callUuid": SEED_CALL_ID,
    "connId": "007102719818001f",
    "deviceUri": "http://127.0.0.1:8080/api/v2/devices/631608b3-ceb1-472b-ba05-2ae39555b0d1",
    "participants": [{"e164Number": "", "formattedPhoneNumber": "15001", "phoneNumber": "15001",
                      "digits": "15001"}],
    "dnis": "15001",
    "callType": "Internal",
    "capabilities": [],
    "userData": {
        "GSIP_RECORD": "ON",
        "IW_BundleUid": "717f9130-a1d9-4092-f8b9-7804ee2592ea",
        "IW_CaseUid": "d7e2c775-edaa-4d1e-b65c-bd48371b43ad",
        "GSIP_REC_FN": "01RCC3N118B1V0SL8O7GK2LAES00000V_15000_15000_15001_2015-10-16_14-26-23_hpe-voicevm-70-"
                       "dot-genesyslab-dot-com__%3Ccont_center_id%3E",
    },
    "duration": "353",
    "mute": "Off",
    "recordingState": "Recording",
    "supervisorListeningIn": False,
    "monitoredUserMuted": False,
    "monitoring": False,
    "uri": f"http://127.0.0.1:8080/api/v2/me/calls/{SEED_CALL_ID}",
    "path": f"/calls/{SEED_CALL_ID}",
}
SEED_PHONE_NUMBER = "15000"
_GSIP = {"Recording": "ON", "Paused": "PAUSED", "Stopped": "OFF"}
RECORDING_STATES = tuple(_GSIP)  # a call's recordingState


def new_call_id() -> str:
    """A call id in GWS's shape (32 characters, digits and capitals), different each time."""
    return "01" + secrets.token_hex(15).upper()


def make_call(call_id: str = SEED_CALL_ID, recording_state: str = "Recording") -> dict[str, Any]:
    call = copy.deepcopy(SEED_CALL)
    call.update(id=call_id, callUuid=call_id, uri=f"http://127.0.0.1:8080/api/v2/me/calls/{call_id}",
                path=f"/calls/{call_id}")
    _set_recording(call, recording_state)
    return call


def _set_recording(call: dict[str, Any], state: str) -> None:
    call["recordingState"] = state
    call["userData"]["GSIP_RECORD"] = _GSIP[state]
    call["capabilities"] = [*_BASE_CAPABILITIES, *CAPABILITIES_BY_STATE[state]]


@dataclass
class Outcome:
    """What an operation does: the HTTP status and body of the reply, and the notification to push (if any)."""

    status: int
    body: dict[str, Any]
    notification: dict[str, Any] | None = None


def error(http_status: int, code: int, message: str) -> Outcome:
    return Outcome(http_status, {"statusCode": code, "statusMessage": message})


@dataclass
class Agent:
    """One agent's view: their calls and phone number."""

    user: str
    phone_number: str = SEED_PHONE_NUMBER
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def call_operation(self, call_id: str, body: Any) -> Outcome:
        if not isinstance(body, dict) or not isinstance(body.get("operationName"), str):
            return error(400, MISSING_PARAMETER, "Parameter 'operationName' is missing")
        operation = body["operationName"]
        call = self.calls.get(call_id)
        if call is None:
            return error(404, NOT_FOUND, f"Call '{call_id}' not found")
        rule = RECORDING_OPERATIONS.get(operation)
        if rule is None:
            return error(400, INVALID_FOR_STATE, f"Operation '{operation}' is not supported")
        valid_from, new_state, _, _ = rule
        if call["recordingState"] not in valid_from:
            return error(400, INVALID_FOR_STATE,
                         f"{operation} is not valid while recordingState is {call['recordingState']}")
        _set_recording(call, new_state)
        notification = {"notificationType": "CallRecordingStateChange", "call": copy.deepcopy(call),
                        "phoneNumber": self.phone_number, "messageType": "CallStateChangeMessage"}
        return Outcome(200, {"statusCode": OK}, notification)

    def me(self) -> dict[str, Any]:
        return {"statusCode": OK, "user": {"userName": self.user, "employeeId": self.user,
                                           "phoneNumber": self.phone_number}}

    def list_calls(self) -> dict[str, Any]:
        return {"statusCode": OK, "calls": [copy.deepcopy(c) for c in self.calls.values()]}


def summarize_notification(data: Any) -> str | None:
    """One line for a GWS notification, e.g. ``CallRecordingStateChange (Stopped)``."""
    if not isinstance(data, dict):
        return None
    kind = data.get("notificationType") or data.get("messageType")
    if not isinstance(kind, str):
        return None
    call = data.get("call")
    state = call.get("recordingState") if isinstance(call, dict) else None
    return f"{kind} ({state})" if state else kind


def summarize_request(method: str, path: str, body: Any) -> str:
    """One line for a REST request, e.g. ``StopCallRecording`` or ``GET /api/v2/me``."""
    if isinstance(body, dict) and isinstance(body.get("operationName"), str):
        return str(body["operationName"])
    return f"{method} {path}"
