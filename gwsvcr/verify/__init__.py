"""``gwsvcr verify``: drive a recorded session's client side against a live server (a lab GWS, a new build,
``gwsvcr sim``) and report, per operation and per notification, where the server now behaves differently.

No mitmproxy here: verify is a client. Modules: ``plan`` (a recorded session as a script for its client side),
``driver`` (:class:`SessionDriver`, the one class that runs a plan against a target and reports through a
:class:`Listener`; a load test runs many), ``live`` (credentials, cookies, CSRF token, ``--bind`` values),
``checks`` (what it reports and how that reads), ``record`` (``--record``), ``http`` and ``websocket`` (the small
HTTP/1.1 and WebSocket clients over asyncio streams).
"""

from gwsvcr.verify.checks import Check, Result
from gwsvcr.verify.driver import Listener, Listeners, Options, SessionDriver, VerifyError
from gwsvcr.verify.http import Target
from gwsvcr.verify.live import Credentials
from gwsvcr.verify.plan import Plan, PlanError, build, choose_session

__all__ = ["Check", "Credentials", "Listener", "Listeners", "Options", "Plan", "PlanError", "Result",
           "SessionDriver", "Target", "VerifyError", "build", "choose_session"]
