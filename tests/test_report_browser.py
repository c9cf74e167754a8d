"""``gwsvcr report`` rendered by headless Chromium: the diagram is drawn (DOM after the script ran) and
visible (the screenshot is not blank and shows the event arrows' colour)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr.tools import report, show
from tests.procs import IN_CI, ROOT

pytestmark = pytest.mark.browser

CASSETTE = ROOT / "tests" / "data" / "two_agents.yaml"  # a real recording: two agents at once, 5 events
EVENT_RED = (0xC0, 0x39, 0x2B)  # .event line.arrow in the report's CSS
WINDOW = (1200, 900)


def chromium(page: Path, profile: Path, screenshot: Path, fragment: str = "",
             window: tuple[int, int] = WINDOW) -> str:
    """The DOM after the page's script ran; a screenshot on the side."""
    browser = shutil.which("chromium")
    if browser is None:
        message = "CHROMIUM MISSING: apt-get install -y chromium (.ci/run installs it before make test)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    done = subprocess.run(
        [str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--user-data-dir={profile}", f"--screenshot={screenshot}",
         f"--window-size={window[0]},{window[1]}", "--dump-dom", page.as_uri() + fragment],
        check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows of width * channels bytes, filters undone

    def count(self, wanted: tuple[int, int, int] | None = None, tolerance: int = 12, left: int = 0) -> int:
        """Pixels of colour ``wanted`` (within tolerance), or with ``None`` every pixel that is not white; only
        those at ``x >= left``."""
        step, data, n = self.channels, self.pixels, 0
        for i in range(0, len(data), step):
            if (i // step) % self.width < left:
                continue
            r, g, b = data[i], data[i + 1], data[i + 2]
            if wanted is None:
                n += (r, g, b) != (255, 255, 255)
            else:
                n += abs(r - wanted[0]) <= tolerance and abs(g - wanted[1]) <= tolerance \
                    and abs(b - wanted[2]) <= tolerance
        return n


def read_png(path: Path) -> Image:
    """Just enough PNG for a browser's screenshot: 8-bit RGB or RGBA, not interlaced."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    previous = bytearray(stride)
    out = bytearray()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, line, previous, channels)
        out += line
        previous = line
    return Image(width, height, channels, bytes(out))


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 1:
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(len(line)):
            line[i] = (line[i] + up[i]) & 0xFF
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = up[i], (up[i - bpp] if i >= bpp else 0)
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "timeline.html"
    path.write_text(report.render(cas.load(CASSETTE)), encoding="utf-8")
    return path


def test_the_diagram_renders_every_event_cause_and_delay(page: Path, tmp_path: Path) -> None:
    rows = show.timeline(cas.load(CASSETTE))
    events = [r for r in rows if r.kind == show.EVENT]
    dom = chromium(page, tmp_path / "profile", tmp_path / "shot.png")
    assert f'data-rendered="{len(rows)}"' in dom, "the script did not run to the end"
    assert dom.count('class="msg event"') == len(events) == 5
    assert dom.count('class="cause"') == sum(r.cause is not None for r in events)
    delays = re.findall(r'<text class="delay"[^>]*>(\d+) ms after #(\d+)</text>', dom)
    assert sorted((int(n), round(d)) for d, n in ((float(d), n) for d, n in delays)) == \
           sorted((r.cause, round(r.delay * 1000)) for r in events)  # type: ignore[operator]
    assert ">client s1</text>" in dom and ">client s2</text>" in dom and ">server</text>" in dom

    shot = read_png(tmp_path / "shot.png")
    assert (shot.width, shot.height) == WINDOW
    assert shot.count() > 20_000, "the screenshot is (nearly) blank"
    assert shot.count(EVENT_RED) > 500, "no event arrows visible"


def test_a_fragment_opens_that_exchange(page: Path, tmp_path: Path) -> None:
    number = next(r.exchange for r in show.timeline(cas.load(CASSETTE)) if r.kind == show.EVENT)
    dom = chromium(page, tmp_path / "profile", tmp_path / "shot.png", fragment=f"#{number}")
    assert '<div id="details" class="open">' in dom
    details = re.search(r'<pre id="details-json">(.*?)</pre>', dom, re.DOTALL)
    assert details is not None
    shown = details.group(1)
    assert f'"exchange": {number},' in shown and "CallRecordingStateChange" in shown


def test_verify_draws_the_recording_and_the_live_session_side_by_side(tmp_path: Path) -> None:
    recorded, live = cas.load(CASSETTE), cas.load(CASSETTE)
    live.path = "live.yaml"
    page = tmp_path / "side.html"
    checks = [("ok    #3   /meta/handshake: ok", True), ("DIFF  #9   <- /v2/me/calls ...", False)]
    page.write_text(report.render(recorded, live, checks), encoding="utf-8")
    dom = chromium(page, tmp_path / "profile", tmp_path / "shot.png")
    rows = len(show.timeline(recorded))
    assert f'data-rendered="{2 * rows}"' in dom
    assert 'id="sequence"' in dom and 'id="live-sequence"' in dom and 'id="panes" class="paired"' in dom
    assert dom.count('class="msg event"') == 10 and 'url(#live-head-event)' in dom
    assert '<li class="bad">DIFF  #9' in dom and "<h2>live: live.yaml" in dom
    assert read_png(tmp_path / "shot.png").count(EVENT_RED) > 500


def test_side_by_side_fits_1400_pixels_and_numbers_live_as_recorded_after_a_miss(tmp_path: Path) -> None:
    recorded, live = cas.load(CASSETTE), cas.load(CASSETTE)
    live.path = "live.yaml"
    first = next(ex for ex in live.exchanges if any(i.is_event for i in ex.reply_items()))
    assert first.response is not None
    first.response.body = [i for i in first.reply_items() if not i.is_event]  # the first notification: MISS
    for ex in live.exchanges:  # the live cassette numbers its exchanges anew: shifted by one from here on
        ex.number += ex.number > first.number
        for item in ex.reply_items():
            if item.cause is not None and item.cause > first.number:
                item.cause += 1
    later = [(ex.number, i) for ex in recorded.exchanges for i in ex.reply_items() if i.is_event][1:]
    page = tmp_path / "side.html"
    page.write_text(report.render(recorded, live, [("MISS  #6   <- /v2/me/calls ...", False)]), encoding="utf-8")
    dom = chromium(page, tmp_path / "profile", tmp_path / "shot.png", window=(1400, 900))
    assert 'data-fits="true"' in dom, "a pane is cut off on the right"
    live_pane = dom[dom.index('id="live"'):]
    for number, item in later:  # each later event carries the recorded number of its exchange and cause
        assert f">#{number} /v2/me/calls" in live_pane and f"ms after #{item.cause}</text>" in live_pane
    shot = read_png(tmp_path / "shot.png")
    assert shot.count(EVENT_RED, left=1400 // 2 + 8) > 300, "the live pane's events are not in view"
