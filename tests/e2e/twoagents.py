"""Two agents of one of Genesys' SDKs driven at once (tests/peers/NAME_client.js against NAME_server.js), the
second started once the first reached a given point: how the SDK end-to-end tests record a cassette of two
sessions and replay it in any order, at any pace, with other tokens than recorded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tests.clients import Running, Session
from tests.conftest import record
from tests.procs import PEERS, need_genesys_sdks, start
from tests.reliability.secretscan import remember

AGENTS = ("agent1", "agent2")


@dataclass
class Recording:
    path: Path
    sessions: dict[str, Session]


def _secret(prefix: str) -> str:
    value = f"{prefix}-{secrets.token_hex(12)}"
    remember(value)
    return value


@dataclass
class Sdk:
    """The SDK ``name``: its agents each with a Bearer token of their own and one API key, which its server
    knows; ``ready``: the record of the first agent after which the second starts; ``args``: more client
    arguments."""

    name: str
    ready: str
    args: tuple[str, ...] = ()
    api_key: str = field(default_factory=lambda: _secret("key"))
    tokens: dict[str, str] = field(default_factory=lambda: {name: _secret(f"tok{name}") for name in AGENTS})

    def agent(self, url: str, name: str, token: str, pause_ms: int = 0) -> Running:
        cmd = [need_genesys_sdks(), str(PEERS / f"{self.name}_client.js"), "--url", url, "--token", token,
               "--api-key", self.api_key, "--agent", name, "--pause-ms", str(pause_ms), *self.args]
        return Running(f"{self.name} SDK {name}", url, cmd=cmd)

    def run(self, url: str, first: str, pause_ms: int = 0, tokens: dict[str, str] | None = None) -> \
            dict[str, Session]:
        """``first`` starts, the other once the first emitted its ``ready`` record; both run to the end."""
        tokens = tokens or self.tokens
        second = AGENTS[1] if first == AGENTS[0] else AGENTS[0]
        running = {first: self.agent(url, first, tokens[first], pause_ms)}
        running[first].wait_for(self.ready)
        running[second] = self.agent(url, second, tokens[second], pause_ms)
        return {name: run.finish() for name, run in running.items()}

    def record(self, path: Path) -> Recording:
        """Record ``path`` from the SDK's server, agent1 first."""
        agents = [f for name, token in self.tokens.items() for f in ("--agent", f"{token}={name}")]
        server = start([need_genesys_sdks(), str(PEERS / f"{self.name}_server.js"), "--port", "0", "--api-key",
                        self.api_key, *agents])
        try:
            rec = record(server.url, path)
            sessions = self.run(rec.url, AGENTS[0])
            assert rec.stop() == 0, rec.stderr
        finally:
            server.stop()
        return Recording(path, sessions)

    def replayed(self, url: str, first: str, pause_ms: int) -> dict[str, Session]:
        """Both agents against a replay at ``url``, with tokens the cassette never saw."""
        return self.run(url, first, pause_ms, {name: f"live-{name}-" + secrets.token_hex(8) for name in AGENTS})
