"""A GWS stand-in for the call-recording operations: REST answers from the :mod:`gwsvcr.gws` model, CometD from
the shared Bayeux core, the notification pushed ``event_delay`` after the operation's reply.

Authentication works as GWS does: ``Authorization: Basic`` on any request, or the JSESSIONID cookie the simulator
issued; a GET returns ``X-CSRF-HEADER``/``X-CSRF-TOKEN`` and a POST/PUT/DELETE made inside a cookie session must
send that token back (403 otherwise).

:mod:`gwsvcr.sim.knobs` makes it differ from a recording on purpose (a dropped or late notification, another
recordingState, a refused operation, new call ids, CometD sessions forgotten mid-session), for ``gwsvcr verify`` and
its tests.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import gws, wire
from gwsvcr.bayeux import Answer, BayeuxServer, Hooks, Message, ServerConfig, Session
from gwsvcr.cassette import Request, Response
from gwsvcr.sim.knobs import Knobs
from gwsvcr.timeline import Timeline

_CALL_PATH = "/api/v2/me/calls/"


@dataclass
class SimulatorConfig:
    event_delay: float = 0.25
    user: str | None = None  # None: any user name with any non-empty password
    password: str | None = None
    cometd_path: str = gws.COMETD_PATH
    recording_state: str = "Recording"  # of each agent's call at the start
    call_ids: tuple[str, ...] = (gws.SEED_CALL_ID,)
    knobs: Knobs = field(default_factory=Knobs)


@dataclass
class _Login:
    user: str
    csrf: str = field(default_factory=lambda: str(uuid.uuid4()))


class Simulator(Hooks[str]):  # a session's context: the user it belongs to
    def __init__(self, config: SimulatorConfig | None = None, bayeux: ServerConfig | None = None,
                 timeline: Timeline | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.agents: dict[str, gws.Agent] = {}
        self.logins: dict[str, _Login] = {}  # JSESSIONID -> who
        self.bayeux: BayeuxServer[str] = BayeuxServer(self, bayeux, timeline)
        self.published = 0

    def agent(self, user: str) -> gws.Agent:
        if user not in self.agents:
            ids = [gws.new_call_id() for _ in self.config.call_ids] if self.config.knobs.new_call_ids else \
                self.config.call_ids
            calls = {cid: gws.make_call(cid, self.config.recording_state) for cid in ids}
            self.agents[user] = gws.Agent(user, calls=calls)
        return self.agents[user]

    def _authenticate(self, request: Request) -> tuple[str, str | None, bool] | Response:
        """(user, session cookie, cookie is new) or the 401 to answer."""
        sid = wire.cookies(request).get("JSESSIONID")
        if sid in self.logins:
            return self.logins[sid].user, sid, False
        creds = wire.basic_auth(request.header("Authorization"))
        if creds is None or not creds[0] or not creds[1] or (
                self.config.user is not None and creds != (self.config.user, self.config.password)):
            return wire.json_reply(401, {"statusCode": 20, "statusMessage": "User is not authenticated"},
                                   [("WWW-Authenticate", 'Basic realm="gwsvcr sim"')])
        sid = secrets.token_hex(16)
        self.logins[sid] = _Login(creds[0])
        return creds[0], sid, True

    async def handle(self, request: Request) -> Response:
        auth = self._authenticate(request)
        if isinstance(auth, Response):
            return auth
        user, sid, new_cookie = auth
        extra: list[tuple[str, str]] = []
        if new_cookie:
            extra.append(("Set-Cookie", f"JSESSIONID={sid}; Path=/; HttpOnly"))
        bayeux = wire.bayeux_of(request)
        if request.path.startswith(self.config.cometd_path) or bayeux is not None:
            if bayeux is None:
                return wire.json_reply(400, [{"successful": False, "error": "400::not a Bayeux message"}],
                                       extra)
            handled = await self.bayeux.handle(bayeux.messages, context=user)
            return wire.bayeux_reply(handled.replies, bayeux.jsonp, extra)
        login = self.logins[sid] if sid else None
        if request.method == "GET":
            if login is not None:
                extra += [("X-CSRF-HEADER", "X-CSRF-TOKEN"), ("X-CSRF-TOKEN", login.csrf)]
            return self._get(user, request.path, extra)
        if login is not None and not new_cookie and request.header("X-CSRF-TOKEN") != login.csrf:
            return wire.json_reply(403, {"statusCode": 3, "statusMessage": "Missing or invalid Csrf token"}, extra)
        if request.method == "POST" and request.path.startswith(_CALL_PATH):
            call_id = request.path[len(_CALL_PATH):].strip("/")
            outcome = self._operate(user, call_id, request.body if request.kind == "json" else None)
            return wire.json_reply(outcome.status, outcome.body, extra)
        return wire.json_reply(404, {"statusCode": gws.NOT_FOUND,
                                     "statusMessage": f"No resource {request.method} {request.path}"}, extra)

    async def bayeux_replies(self, upgrade: Request, messages: list[Message]) -> list[Message]:
        """Bayeux over a WebSocket: the upgrade request authenticated the socket."""
        auth = self._authenticate(upgrade)
        if isinstance(auth, Response):
            return [{"channel": m.get("channel"), "id": m.get("id"), "successful": False,
                     "error": "401::not authenticated", "advice": {"reconnect": "none"}} for m in messages]
        return (await self.bayeux.handle(messages, context=auth[0])).replies

    def _get(self, user: str, path: str, extra: list[tuple[str, str]]) -> Response:
        agent = self.agent(user)
        if path.rstrip("/") == "/api/v2/me":
            return wire.json_reply(200, agent.me(), extra)
        if path.rstrip("/") == "/api/v2/me/calls":
            return wire.json_reply(200, agent.list_calls(), extra)
        if path.startswith(_CALL_PATH):
            call = agent.calls.get(path[len(_CALL_PATH):].strip("/"))
            if call is not None:
                return wire.json_reply(200, {"statusCode": gws.OK, "call": call}, extra)
        return wire.json_reply(404, {"statusCode": gws.NOT_FOUND, "statusMessage": f"No resource GET {path}"},
                               extra)

    def _operate(self, user: str, call_id: str, body: Any) -> gws.Outcome:
        """An operation on a call, as the model says unless a knob says otherwise."""
        knobs = self.config.knobs
        operation = str(body.get("operationName")) if isinstance(body, dict) else ""
        refusal = knobs.refuse.get(operation)
        if refusal is not None:
            return gws.error(refusal.http_status, refusal.status_code, f"{operation} refused (gwsvcr sim --refuse)")
        outcome = self.agent(user).call_operation(call_id, body)
        if outcome.notification is None or operation in knobs.drop_notification:
            return outcome
        if operation in knobs.wrong_state:
            outcome.notification["call"]["recordingState"] = knobs.wrong_state[operation]
        self._publish_later(user, outcome.notification, self.config.event_delay + knobs.extra_delay.get(operation, 0),
                            forget=operation in knobs.forget_after)
        return outcome

    def _publish_later(self, user: str, notification: dict[str, Any], delay: float, forget: bool = False) -> None:
        def publish() -> None:
            self.published += self.bayeux.publish(gws.CALLS_CHANNEL, notification,
                                                  only=lambda s: s.context == user)
            if forget:  # the held connect still brings the notification; the next one meets an unknown client
                for client_id in [c for c, s in self.bayeux.sessions.items() if s.context == user]:
                    del self.bayeux.sessions[client_id]
        clock = self.bayeux.clock
        clock.call_at(clock.now() + delay, publish)

    # Bayeux hooks: a client may only publish to its own service channels; GWS pushes, clients do not.
    def on_publish(self, server: BayeuxServer[str], session: Session[str], message: Message) -> Answer | None:
        return Answer({"successful": False, "error": f"403::publishing to {message.get('channel')} is not allowed"})
