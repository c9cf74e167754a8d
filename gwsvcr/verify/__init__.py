"""``gwsvcr verify``: drive a recorded session's client side against a live server (a lab GWS, a new build,
``gwsvcr sim``) and report, per operation and per notification, where the server now behaves differently.

No mitmproxy here: verify is a client. Modules: ``plan`` (a recorded session as a script for its client side),
``driver`` (:class:`SessionDriver`, the one class that runs a plan against a target and reports through a
:class:`Listener`; a load test runs many), ``live`` (credentials, cookies, CSRF token, ``--bind`` values),
``failures`` (how the server failed a request, recorded and live),
``checks`` (what it reports and how that reads), ``record`` (``--record``). It talks to the server through the one
client (:mod:`gwsvcr.client`: HTTP/1.1, WebSocket and the Bayeux session).
"""

from gwsvcr.client.target import Target
from gwsvcr.verify.checks import Check, Result
from gwsvcr.verify.driver import Listener, Listeners, Options, SessionDriver, VerifyError
from gwsvcr.verify.live import Credentials
from gwsvcr.verify.plan import Plan, PlanError, build, choose_session

__all__ = ["Check", "Credentials", "Listener", "Listeners", "Options", "Plan", "PlanError", "Result",
           "SessionDriver", "Target", "VerifyError", "build", "choose_session"]
