"""The Locust User class: one simulated agent runs a cassette's recorded session against ``--host``, again and
again until the run ends. The only module of gwsvcr that imports locust (``pip install 'gwsvcr[load]'``).

Options (``locust --help`` lists them under "Custom arguments"; each also from its environment variable): see
:func:`add_arguments` and the README's "Load" section.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

from gwsvcr.client.bayeux import TRANSPORTS
from gwsvcr.errors import GwsvcrError
from gwsvcr.load.loop import AgentLoop, Running
from gwsvcr.load.settings import (
    DEFAULT_IGNORE,
    LOOP,
    LOOP_LAG,
    PASSWORD_ENV,
    SESSION,
    CredentialSource,
    LoadSettings,
    LoadSettingsError,
    agent_number,
    entry,
)
from gwsvcr.timeline import Timing
from gwsvcr.verify import Credentials, Options, Plan, SessionDriver, Target

__all__ = ["LoadFailure", "RecordedAgent", "add_arguments", "settings_from"]

LOGGER = logging.getLogger("gwsvcr.load")
_POLL = 0.1  # seconds between a greenlet's looks at its session's checks (figures are taken on the loop, not here)
_AFTER_ERROR = 1.0  # seconds a user waits after a session that could not go on before the next


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    group = parser  # Locust's own add_argument (is_secret, env_var); they show under "Custom arguments"
    group.add_argument("--gwsvcr-cassette", env_var="GWSVCR_CASSETTE", default="",
                       help="The cassette whose recorded session each agent runs (the same path on every worker).")
    group.add_argument("--gwsvcr-session", env_var="GWSVCR_SESSION", default="",
                       help="The recorded session (s1, s2, s1@2); needed when the cassette holds several.")
    group.add_argument("--gwsvcr-user", env_var="GWSVCR_USER", default="agent{i}",
                       help="User name pattern; {i} is the agent's number, from 1, unique across workers.")
    group.add_argument("--gwsvcr-password", env_var=PASSWORD_ENV, default="", is_secret=True,
                       help=f"The agents' password (prefer the {PASSWORD_ENV} environment variable).")
    group.add_argument("--gwsvcr-users-csv", env_var="GWSVCR_USERS_CSV", default="",
                       help="A CSV of user,password rows instead of the pattern: agent i logs in with row i.")
    group.add_argument("--gwsvcr-timing", env_var="GWSVCR_TIMING", default=Timing.RECORDED.value,
                       choices=[t.value for t in Timing],
                       help="recorded: each request at its recorded offset; instant: as soon as it may go.")
    group.add_argument("--gwsvcr-interval", env_var="GWSVCR_INTERVAL", type=float, default=0.0,
                       help="Seconds between an agent's REST operations instead of the recorded pacing (0: as "
                            "--gwsvcr-timing says).")
    group.add_argument("--gwsvcr-timeout", env_var="GWSVCR_TIMEOUT", type=float, default=10.0,
                       help="Seconds to wait for each reply and each expected notification.")
    group.add_argument("--gwsvcr-transport", env_var="GWSVCR_TRANSPORT", default="",
                       choices=["", *TRANSPORTS], help="CometD transport; default: as recorded.")
    group.add_argument("--gwsvcr-ignore", env_var="GWSVCR_IGNORE", default=",".join(DEFAULT_IGNORE),
                       help="Comma-separated fields not compared (gwsvcr diff --ignore); default: the user name.")
    group.add_argument("--gwsvcr-bind", env_var="GWSVCR_BIND", default="",
                       help="Comma-separated JSON paths whose values the server assigns anew (calls.id).")


def settings_from(options: Any) -> LoadSettings:
    if not options.gwsvcr_cassette:
        raise LoadSettingsError("no cassette: give --gwsvcr-cassette or set GWSVCR_CASSETTE")
    interval = float(options.gwsvcr_interval or 0)
    return LoadSettings(
        cassette=options.gwsvcr_cassette, session=options.gwsvcr_session or None, user=options.gwsvcr_user,
        password=options.gwsvcr_password or None, users_csv=options.gwsvcr_users_csv or None,
        timing=Timing.parse(options.gwsvcr_timing), interval=interval if interval > 0 else None,
        timeout=float(options.gwsvcr_timeout), transport=options.gwsvcr_transport or None,
        binds=_listed(options.gwsvcr_bind), ignore=_listed(options.gwsvcr_ignore))


def _listed(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


class _Setup:
    """What every agent of this process shares, read once from the options."""

    def __init__(self, options: Any, host: str | None) -> None:
        self.settings = settings_from(options)
        self.plan: Plan = self.settings.plan()
        self.options: Options = self.settings.options()
        self.credentials: CredentialSource = self.settings.credentials()
        if not host:
            raise LoadSettingsError("no target: give --host URL (the GWS to load)")
        self.target = Target.parse(host)


class RecordedAgent(User):
    """One agent: its own login, CometD session and long-poll, the recorded operations at their pacing."""

    wait_time = constant(0)
    _setup: _Setup | None = None
    _started = itertools.count()  # users started by this process

    def on_start(self) -> None:
        try:
            if RecordedAgent._setup is None:
                RecordedAgent._setup = _Setup(self.environment.parsed_options, self.environment.host)
        except (LoadSettingsError, GwsvcrError, ValueError) as e:
            LOGGER.error("gwsvcr load: %s", e)
            self._fire(SESSION, "setup", 0.0, str(e))
            raise StopUser() from None
        runner = self.environment.runner
        worker = isinstance(runner, WorkerRunner)
        workers = int(getattr(self.environment.parsed_options, "expect_workers", 1) or 1) if worker else 1
        self.number = agent_number(next(RecordedAgent._started), runner.worker_index if worker else 0, workers)
        self.login: Credentials = self._shared.credentials.for_agent(self.number)

    @property
    def _shared(self) -> _Setup:
        assert RecordedAgent._setup is not None
        return RecordedAgent._setup

    @task
    def recorded_session(self) -> None:
        setup = self._shared

        def session(running: Running) -> Any:
            return SessionDriver(setup.plan, setup.target, self.login, setup.options, running).run()

        running = AgentLoop.get().start(session)
        try:
            while not running.done:
                self._report(running)
                gevent.sleep(_POLL)
            self._report(running)
        finally:
            running.cancel()
        if running.error is not None:
            self._fire(SESSION, "session", 0.0,
                       f"{type(running.error).__name__}: {running.error}")
            gevent.sleep(_AFTER_ERROR)

    def _report(self, running: Running) -> None:
        lags = AgentLoop.get().lags
        while lags:  # whichever agent looks first reports the loop's lag
            self._fire(LOOP, LOOP_LAG, lags.popleft() * 1000, None)
        while running.checks:
            check, elapsed = running.checks.popleft()
            e = entry(check, elapsed, self._shared.options.timeout)
            self._fire(e.request_type, e.name, e.response_time, e.failure)

    def _fire(self, request_type: str, name: str, response_time: float, failure: str | None) -> None:
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=response_time, response_length=0,
            exception=None if failure is None else LoadFailure(failure), context={"user": self.login.user
                                                                                  if hasattr(self, "login") else ""})


class LoadFailure(GwsvcrError):
    """What Locust counts as a failure of an entry: its message is the entry's error."""
