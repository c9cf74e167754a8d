"""A progress line on stderr for long work (loading a big cassette, importing a HAR).

On a terminal it shows at once and rewrites itself in place; elsewhere (a CI log, a pipe) it says nothing
unless the work has already taken over a second, then prints a line now and then, so short runs stay quiet.
Never on stdout: that belongs to the command's output (``--json`` lines, a cassette on stdout).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TextIO

__all__ = ["Progress"]

QUIET_SECONDS = 1.0  # off a terminal, work shorter than this prints nothing
LOG_EVERY = 5.0  # off a terminal, at most one line per this many seconds, and only when it says more
REDRAW_EVERY = 0.1


class Progress:
    """``with Progress("importing x.har", total=n) as p: ... p.step()``.

    A ticker also reports work that has no steps (one long call), so a slow ``load()`` is never silent for
    more than a second off a terminal."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = clock()
        self.shown = False
        self._last_shown = -1e9
        self._last_text = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Self:
        self.started = self.clock()
        self._ticker.start()
        if self.tty:
            self._show(force=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            if not self.shown:
                return
            elapsed = self.clock() - self.started
            if self.tty and elapsed < QUIET_SECONDS and error is None:
                self.stream.write("\r\x1b[K")  # a blink of a line: leave the terminal as it was
                self.stream.flush()
                return
            end = "" if error is None else " (stopped)"
            self._write(f"{self._text()} in {elapsed:.1f} s{end}", final=True)

    def step(self, count: int = 1) -> None:
        self.done += count
        self._show()

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW_EVERY if self.tty else QUIET_SECONDS / 4):
            self._show()

    def _text(self) -> str:
        if self.total:
            return f"gwsvcr: {self.what}: {self.done}/{self.total} ({100 * self.done // self.total}%)"
        if self.done:
            return f"gwsvcr: {self.what}: {self.done}"
        return f"gwsvcr: {self.what}…"

    def _show(self, force: bool = False) -> None:
        now = self.clock()
        with self._lock:
            text = self._text()
            if self.tty and now - self.started >= QUIET_SECONDS:
                text += f" {now - self.started:.0f} s"  # a terminal sees that long work is still alive
            if not force:
                if text == self._last_text or (not self.tty and now - self.started < QUIET_SECONDS):
                    return
                if now - self._last_shown < (REDRAW_EVERY if self.tty else LOG_EVERY):
                    return
            self._last_shown = now
            self._last_text = text
            self._write(text, final=False)

    def _write(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True
