"""The CometD JS client in a real browser: headless Chromium driven over ``--remote-debugging-pipe`` (the
DevTools protocol as NUL-terminated JSON on file descriptors 3 and 4), and the static file server that gives
the replayer's ``--upstream`` the page and the npm ``cometd`` ES modules.

Why not ``--dump-dom --virtual-time-budget``: with a virtual time budget Chromium runs its own clock
(``performance.now()`` included) and fast-forwards it whenever no request is pending, so the page would measure
virtual delays, and ``--dump-dom`` alone dumps at the load event, before the session ran. Over the pipe we wait
for the page's own promise (``window.sessionDone``) and then read ``#result`` from the DOM: deterministic, on the
real clock, and no fixed sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.procs import PEERS

PAGE_PREFIX = "/conformance/"
MOUNTS = ((PAGE_PREFIX + "cometd/", PEERS / "node_modules" / "cometd"), (PAGE_PREFIX, PEERS / "browser"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
         "--disable-backgrounding-occluded-windows", "--remote-debugging-pipe")


# exec the browser with the pipe ends given as arguments on fds 3 and 4 (any fd number; sh only takes 0-9)
_TRAMPOLINE = ("import os, sys\n"
               "r, w = int(sys.argv[1]), int(sys.argv[2])\n"
               "w = os.dup(w) if w == 3 else w\n"
               "os.dup2(r, 3)\n"
               "os.dup2(w, 4)\n"
               "os.execv(sys.argv[3], sys.argv[3:])\n")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Handler(SimpleHTTPRequestHandler):
    """Serves MOUNTS only (the page, and the CometD library it imports); everything else is 404."""

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, root in MOUNTS:
            if path.startswith(prefix):
                name = path[len(prefix):]
                if name and "/" not in name and not name.startswith("."):
                    return str(root / name)
        return "/nonexistent/"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticFiles:
    """A tiny threaded static server on a free loopback port."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(PEERS)))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium; each page runs in its own browser context (own cookies and storage)."""

    def __init__(self, binary: str, profile: Path, env: dict[str, str] | None = None) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: a trampoline moves our pipe ends there.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_browser_r), str(from_browser_w), binary, *FLAGS,
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True, env=env)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._lock = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._closed = False
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.version = self.call("Browser.getVersion", timeout=30)["product"]

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._lock:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self._events.append(message)
                    self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace"))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 15) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            number = self._next_id
        command: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while number not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise DevToolsError(f"no reply to {method} within {timeout} s (browser "
                                        f"{'gone' if self._closed else 'alive'}): {''.join(self.stderr)[-1500:]}")
                self._lock.wait(left)
            reply = self._replies.pop(number)
        if "error" in reply:
            raise DevToolsError(f"{method}: {reply['error']}")
        return reply["result"]

    def new_context(self, proxy: str | None = None) -> str:
        params = {"proxyServer": proxy, "proxyBypassList": "<-loopback>"} if proxy else {}
        return str(self.call("Target.createBrowserContext", params)["browserContextId"])

    def wait_event(self, method: str, session: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self._events:
                    if event["method"] == method and event.get("sessionId") == session:
                        self._events.remove(event)
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise DevToolsError(f"no {method} within {timeout} s")
                self._lock.wait(left)

    def run_page(self, url: str, timeout: float = 60, proxy: str | None = None) -> str:
        """Open ``url`` in a fresh browser context, wait for ``window.sessionDone``, return ``#result``'s text.
        With ``proxy`` the context sends everything, loopback included, through that HTTP(S) proxy."""
        context = self.new_context(proxy)
        target = self.call("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
        try:
            session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.call("Page.enable", session=session)
            self.call("Page.navigate", {"url": url}, session)
            self.wait_event("Page.loadEventFired", session, timeout)
            done = self.call("Runtime.evaluate", {
                "expression": "window.sessionDone.then(() => document.getElementById('result').textContent)",
                "awaitPromise": True, "returnByValue": True}, session, timeout)
            if "exceptionDetails" in done:
                raise DevToolsError(f"the page failed: {json.dumps(done['exceptionDetails'])[:1500]}")
            return str(done["result"]["value"])
        finally:
            self.call("Target.closeTarget", {"targetId": target})
            self.call("Target.disposeBrowserContext", {"browserContextId": context})

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except DevToolsError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own process group: the browser and its helpers
            self.proc.wait()
        os.close(self._to_browser)
