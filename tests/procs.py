"""Start and stop the real programs the tests talk to: gwsvcr commands and the Node peers."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gwsvcr.guard import TOKEN_HEADER
from gwsvcr.replay import STATUS_PATH
from gwsvcr.served import Proc, start
from tests import forkserver

__all__ = ["GWSVCR", "IN_CI", "PEERS", "ROOT", "Proc", "gwsvcr", "need", "need_genesys_sdks", "need_haproxy",
           "need_node", "need_workspace_sdk", "start", "status"]

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
GWSVCR = str(Path(sys.executable).with_name("gwsvcr"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(ok: bool, what: str) -> None:
    """Skip loudly when a peer is missing; under CI fail instead, so nothing is silently skipped there."""
    if ok:
        return
    message = f"PEER MISSING: {what} (run 'make test', which installs the peers)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need_node() -> str:
    node = shutil.which("node")
    need(node is not None and (PEERS / "node_modules" / "cometd").is_dir()
         and (PEERS / "node_modules" / "faye").is_dir(), "Node.js with npm cometd, cometd-nodejs-client, faye")
    return str(node)


def need_workspace_sdk() -> str:
    """Node with Genesys' Workspace SDK and the CometD project's Node server (tests/peers/workspace_*.js)."""
    node = shutil.which("node")
    modules = PEERS / "node_modules"
    need(node is not None and (modules / "genesys-workspace-client-js").is_dir()
         and (modules / "cometd-nodejs-server").is_dir(), "Node.js with npm genesys-workspace-client-js, "
                                                          "cometd-nodejs-server")
    return str(node)


def need_genesys_sdks() -> str:
    """Node with Genesys' Statistics and Provisioning SDKs (tests/peers/statistics_*.js, provisioning_*.js)."""
    node = need_workspace_sdk()
    modules = PEERS / "node_modules"
    need(all((modules / sdk).is_dir() for sdk in ("genesys-statistics-client-js", "genesys-provisioning-client-js")),
         "npm genesys-statistics-client-js, genesys-provisioning-client-js")
    return node


def need_haproxy() -> str:
    """HAProxy, for ``gwsvcr replay --workers`` and the multi-host layout of docs/SCALING.md."""
    from gwsvcr.replay import balancer

    found = balancer.find()
    need(found is not None, f"HAProxy ({balancer.INSTALL}; .ci/run installs it)")
    return str(found)


def gwsvcr(*args: str, **kw) -> Proc:  # type: ignore[no-untyped-def]
    """``gwsvcr ARGS`` started and listening; a serving command is forked from a prepared interpreter
    (tests/forkserver.py)."""
    cmd = [GWSVCR, *args]
    return start(cmd, popen=forkserver.spawner(cmd, kw.get("env")), **kw)


def status(url: str, token: str) -> dict[str, Any]:
    """``/__gwsvcr__/status`` of the replay at ``url`` (through a balancer: of all its workers), asked with the token
    its process was given (:attr:`Proc.token`)."""
    request = urllib.request.Request(url + STATUS_PATH, headers={TOKEN_HEADER: token})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]
