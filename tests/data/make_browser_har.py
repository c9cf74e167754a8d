"""Rebuild ``browser_cometd.har``: what Chrome's "Save all as HAR" gives for a Workspace-like page whose
CometD JS client subscribes to /v2/me/calls and stops a call's recording.

The Bayeux and REST bodies come from a real recording of tests/peers/cometd_client.js (the npm ``cometd``
library a browser page uses) through ``gwsvcr record`` against ``gwsvcr sim``, exported with ``gwsvcr har
export``; this script dresses it the way Chrome writes a HAR: HTTP/2 pseudo-headers and lowercase names,
``cookies`` arrays, ``_initiator``/``_resourceType``, ``blocked`` and ``_blocked_queueing`` timings, the page,
a script and an image around the API calls, a long-poll still pending (status 0) when the HAR was saved, one
body base64-encoded, and live secrets (Basic password, JSESSIONID, CSRF token) that import must redact.

    python tests/data/make_browser_har.py exported.har > tests/data/browser_cometd.har
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

ORIGIN = "https://gws.example.com"
PAGE = "https://wwe.example.com/ui/ad/v1/index.html"
PASSWORD_BASIC = "Basic " + base64.b64encode(b"agent1:s3cret-Passw0rd").decode()
JSESSIONID = "node01x7y8z9secretsession0.node0"
CSRF = "8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f"
START = datetime(2025, 5, 6, 9, 12, 3, 123000, tzinfo=UTC)


def headers(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def chrome_request(entry: dict[str, Any]) -> dict[str, Any]:
    request = entry["request"]
    path = request["url"].split("/", 3)[3]
    names = {h["name"].lower(): h["value"] for h in request["headers"]}
    pairs = [(":authority", "gws.example.com"), (":method", request["method"]), (":path", "/" + path),
             (":scheme", "https"), ("accept", "application/json"), ("authorization", PASSWORD_BASIC),
             ("origin", "https://wwe.example.com"), ("user-agent", "Mozilla/5.0 (X11; Linux) Chrome/124")]
    if "cookie" in names:
        pairs.append(("cookie", f"JSESSIONID={JSESSIONID}; BAYEUX_BROWSER=1ab2cd3ef4"))
    if "x-csrf-token" in names:
        pairs.append(("x-csrf-token", CSRF))
    if "content-type" in names:
        pairs.append(("content-type", names["content-type"]))
    out = {**request, "url": f"{ORIGIN}/{path}", "httpVersion": "http/2.0", "headers": headers(pairs),
           "cookies": [{"name": "JSESSIONID", "value": JSESSIONID}] if "cookie" in names else []}
    out.pop("_encoding", None)
    return out


def chrome_response(entry: dict[str, Any]) -> dict[str, Any]:
    response = entry["response"]
    pairs = [("content-encoding", "gzip"), ("date", "Tue, 06 May 2025 09:12:03 GMT")]
    for h in response["headers"]:
        name = h["name"].lower()
        if name == "set-cookie":
            pairs.append((name, f"JSESSIONID={JSESSIONID}; Path=/; Secure; HttpOnly"))
        elif name == "x-csrf-token":
            pairs.append((name, CSRF))
        else:
            pairs.append((name, h["value"]))
    return {**response, "httpVersion": "http/2.0", "headers": headers(pairs), "cookies": []}


def static(started: datetime, url: str, mime: str, text: str, *, encoding: str | None = None,
           kind: str = "script") -> dict[str, Any]:
    content = {"size": len(text), "mimeType": mime, "text": text}
    if encoding:
        content["encoding"] = encoding
    pseudo = [(":authority", url.split("/")[2]), (":method", "GET"), (":path", "/" + url.split("/", 3)[3]),
              (":scheme", "https")]
    return {"_initiator": {"type": "parser", "url": PAGE}, "_priority": "High", "_resourceType": kind,
            "cache": {}, "connection": "443", "pageref": "page_1", "serverIPAddress": "192.0.2.20",
            "startedDateTime": iso(started), "time": 12.5,
            "request": {"method": "GET", "url": url, "httpVersion": "http/2.0", "cookies": [],
                        "queryString": [], "headers": headers(pseudo), "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "", "httpVersion": "http/2.0", "cookies": [],
                         "headers": headers([("content-type", mime)]), "content": content, "redirectURL": "",
                         "headersSize": -1, "bodySize": -1, "_transferSize": 400},
            "timings": {"blocked": 0.6, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": 11.2,
                        "receive": 0.6, "_blocked_queueing": 0.4}}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_resources() -> list[dict[str, Any]]:
    """What a browser loads before the API: the page, a script, an image (import leaves them out)."""
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
    return [static(START - timedelta(milliseconds=300), PAGE, "text/html", "<!doctype html><title>WWE",
                   kind="document"),
            static(START - timedelta(milliseconds=200), "https://wwe.example.com/ui/ad/v1/cometd.js",
                   "application/javascript", "/* cometd */ window.org = {};"),
            static(START - timedelta(milliseconds=150), "https://wwe.example.com/ui/ad/v1/logo.png",
                   "image/png", image, encoding="base64", kind="image")]


def api_entry(entry: dict[str, Any], first: datetime) -> dict[str, Any]:
    started = START + (datetime.fromisoformat(entry["startedDateTime"]) - first)
    recorded = entry["timings"]
    timings = {"blocked": 0.0, "dns": -1, "ssl": -1, "connect": -1, "send": 0.0, "wait": recorded["wait"],
               "receive": recorded["receive"], "_blocked_queueing": 0.0}
    chrome = {"_initiator": {"type": "script", "stack": {"callFrames": []}}, "_priority": "High",
              "_resourceType": "xhr", "_connectionId": "4711", "cache": {}, "connection": "443",
              "pageref": "page_1", "serverIPAddress": "192.0.2.10", "startedDateTime": iso(started),
              "time": entry["time"], "request": chrome_request(entry), "response": chrome_response(entry),
              "timings": timings}
    if entry["request"]["url"].endswith("/api/v2/me"):  # Firefox and Chrome store some bodies base64
        content = chrome["response"]["content"]
        content.update(text=base64.b64encode(content["text"].encode()).decode(), encoding="base64")
    return chrome


def pending_connect(after: dict[str, Any]) -> dict[str, Any]:
    """The long-poll the client opened after ``after``: still open when the HAR was saved."""
    pending: dict[str, Any] = json.loads(json.dumps(after))
    started = datetime.fromisoformat(after["startedDateTime"]) + timedelta(milliseconds=after["time"] + 2)
    pending["startedDateTime"] = iso(started)
    post = pending["request"]["postData"]
    post["text"] = post["text"].replace('"id":"', '"id":"9')
    pending["response"] = {"status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
                           "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
                           "headersSize": -1, "bodySize": -1, "_error": "net::ERR_ABORTED",
                           "_transferSize": 0}
    pending["time"] = 3.1
    pending["timings"] = {"blocked": 0.2, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": -1,
                          "receive": -1, "_blocked_queueing": 0.1}
    return pending


def main(exported_path: str) -> None:
    with open(exported_path, encoding="utf-8") as fh:
        exported = json.load(fh)["log"]["entries"]
    first = datetime.fromisoformat(exported[0]["startedDateTime"])
    entries = page_resources() + [api_entry(entry, first) for entry in exported]
    carrier = next(e for e in entries if "RecordingStateChange" in e["response"]["content"].get("text", ""))
    entries.insert(entries.index(carrier) + 1, pending_connect(carrier))
    page = {"startedDateTime": iso(START - timedelta(milliseconds=300)), "id": "page_1", "title": PAGE,
            "pageTimings": {"onContentLoad": 180.2, "onLoad": 260.7}}
    har = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                   "pages": [page], "entries": entries}}
    json.dump(har, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
