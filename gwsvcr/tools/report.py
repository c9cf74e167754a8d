"""``gwsvcr report``: one self-contained HTML file drawing a cassette as a sequence diagram.

Client lifelines (one per session) on the left, the server on the right, one row per timeline row (see
:mod:`gwsvcr.show`) top to bottom: requests, replies and pushed events as arrows, each event's cause drawn as
an arc from the reply that caused it, labelled with the delay. Clicking an arrow shows its exchange as JSON.

Everything is inline (CSS, script, data): the file opens offline, from an e-mail or a ticket, and loads
nothing. The data sits in a JSON script element that the page only reads with ``JSON.parse`` and writes with
``textContent``, so a cassette's content can never become markup or script.
"""

from __future__ import annotations

import html
import json
from typing import Any

from gwsvcr.cassette import Cassette, exchange_to_doc
from gwsvcr.session import split_warnings, summarize
from gwsvcr.tools.show import EVENT, timeline


def report_data(cassette: Cassette) -> dict[str, Any]:
    rows = timeline(cassette)
    summaries = summarize(cassette)
    return {
        "title": cassette.path,
        "recorded_at": cassette.header.recorded_at,
        "upstream": cassette.header.upstream,
        "sessions": cassette.sessions(),
        "identified_by": [s.as_json() for s in summaries],
        "split": split_warnings(summaries),
        "episodes": len(cassette.episodes),
        "events": sum(1 for r in rows if r.kind == EVENT),
        "rows": [row.as_json() for row in rows],
        "exchanges": {str(ex.number): exchange_to_doc(ex) for ex in cassette.exchanges},
    }


def _script_json(data: Any) -> str:
    # <, > and & escaped so that no string in the cassette can close the script element
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(cassette: Cassette) -> str:
    return (_PAGE.replace("{{TITLE}}", html.escape(f"gwsvcr timeline: {cassette.path}"))
            .replace("{{DATA}}", _script_json(report_data(cassette))))


_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{{TITLE}}</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fff; }
  h1 { font-size: 17px; margin: 0 0 4px; }
  #meta { color: #555; margin-bottom: 8px; }
  .legend span { margin-right: 16px; }
  .legend i { display: inline-block; width: 22px; height: 3px; vertical-align: middle; margin-right: 4px; }
  svg { display: block; }
  #sessions { margin: 4px 0 8px; padding-left: 18px; color: #333; font: 12px/1.4 monospace; }
  #sessions .split { color: #a93226; font-weight: 600; }
  .lifeline { stroke: #bbb; stroke-dasharray: 4 4; }
  .actor rect { fill: #f3f5f8; stroke: #667; }
  .actor text { font-weight: 600; text-anchor: middle; }
  .time { fill: #777; font: 11px monospace; text-anchor: end; }
  .msg { cursor: pointer; }
  .msg line { stroke-width: 1.5; }
  .msg text { font-size: 12px; }
  .msg .hit { stroke: transparent; stroke-width: 12; }
  .request line.arrow { stroke: #2c3e50; }
  .reply line.arrow { stroke: #7f8c8d; stroke-dasharray: 5 3; }
  .event line.arrow { stroke: #c0392b; stroke-width: 3; }
  .event text { fill: #a93226; font-weight: 600; }
  .error line.arrow { stroke: #e67e22; stroke-dasharray: 2 2; }
  .msg:hover text, .msg.selected text { text-decoration: underline; }
  .msg.selected line.arrow { stroke-width: 4; }
  .cause { fill: none; stroke: #8e44ad; stroke-width: 1.5; }
  .delay { fill: #8e44ad; font-size: 11px; font-weight: 600; }
  .episode line { stroke: #444; }
  .episode text { font-weight: 600; }
  #details { position: fixed; right: 12px; bottom: 12px; width: 46%; max-height: 60%; overflow: auto;
             background: #fdfdfd; border: 1px solid #999; box-shadow: 0 2px 10px rgba(0,0,0,.2);
             padding: 8px 10px; display: none; }
  #details.open { display: block; }
  #details pre { font: 11px/1.35 monospace; white-space: pre-wrap; word-break: break-all; margin: 6px 0 0; }
  #details button { float: right; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div id="meta"></div>
<ul id="sessions"></ul>
<div class="legend">
  <span><i style="background:#2c3e50"></i>request</span><span><i style="background:#7f8c8d"></i>reply</span>
  <span><i style="background:#c0392b"></i>CometD event</span>
  <span><i style="background:#8e44ad"></i>cause and delay</span>
  <span>click an arrow for its exchange</span>
</div>
<div id="diagram"></div>
<div id="details">
  <button id="close" type="button">close</button><b id="details-title"></b><pre id="details-json"></pre>
</div>
<script id="data" type="application/json">{{DATA}}</script>
<script>
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const ROW = 24, TOP = 56, TIME_X = 64, LABEL_MAX = 78;
  const sessions = data.sessions.length ? data.sessions : ["client"];
  const clientX = new Map(sessions.map((s, i) => [s, 110 + i * 44]));
  const serverX = Math.max(760, 110 + sessions.length * 44 + 560);
  const width = serverX + 240;

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function cut(text) { return text.length > LABEL_MAX ? text.slice(0, LABEL_MAX - 1) + "\u2026" : text; }
  function ms(value) { return Math.round(value) + " ms"; }

  document.getElementById("title").textContent = "gwsvcr timeline: " + data.title;
  document.getElementById("meta").textContent = [
    data.recorded_at && "recorded " + data.recorded_at, data.upstream && "from " + data.upstream,
    Object.keys(data.exchanges).length + " exchanges", sessions.length + " session(s)",
    data.events + " events", data.episodes > 1 && data.episodes + " episodes"
  ].filter(Boolean).join(" \u00b7 ");

  // what identified each session's client; a value two sessions share: one client the recording split
  const sessionList = document.getElementById("sessions");
  for (const s of data.identified_by) {
    const item = document.createElement("li");
    item.textContent = s.session + " (" + s.exchanges + " exchanges): " +
      (s.identifiers.join(", ") || "nothing that identifies a client");
    sessionList.appendChild(item);
  }
  for (const warning of data.split) {
    const item = document.createElement("li");
    item.className = "split";
    item.textContent = "WARNING: " + warning;
    sessionList.appendChild(item);
  }

  // y of each row; an episode divider takes a row of its own
  const ys = [];
  const dividers = [];
  let y = TOP + 20, episode = null;
  for (const row of data.rows) {
    if (episode !== null && row.episode !== episode) { dividers.push([y, row.episode]); y += ROW; }
    episode = row.episode;
    y += ROW;
    ys.push(y);
  }
  const height = y + 40;
  const svg = el("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height,
                         id: "sequence", role: "img"}, document.getElementById("diagram"));
  el("title", {}, svg, "sequence diagram of " + data.title);
  const defs = el("defs", {}, svg);
  const heads = [["head-request", "#2c3e50"], ["head-reply", "#7f8c8d"], ["head-event", "#c0392b"],
                 ["head-error", "#e67e22"], ["head-cause", "#8e44ad"]];
  for (const [id, color] of heads) {
    const size = {markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse"};
    const marker = el("marker", {id: id, viewBox: "0 0 10 10", refX: 9, refY: 5, ...size,
                                 orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", fill: color}, marker);
  }

  const actors = el("g", {class: "actors"}, svg);
  const actorNames = sessions.map(s => [clientX.get(s), "client " + s]).concat([[serverX, "server"]]);
  for (const [x, name] of actorNames) {
    el("line", {class: "lifeline", x1: x, y1: TOP, x2: x, y2: height - 10}, actors);
    const g = el("g", {class: "actor"}, actors);
    const w = Math.max(60, name.length * 7 + 16);
    el("rect", {x: x - w / 2, y: TOP - 30, width: w, height: 26, rx: 4}, g);
    el("text", {x: x, y: TOP - 12}, g, name);
  }
  for (const [dy, number] of dividers) {
    const g = el("g", {class: "episode"}, svg);
    el("line", {x1: 10, y1: dy + 6, x2: width - 10, y2: dy + 6}, g);
    el("text", {x: 14, y: dy + 2}, g, "episode " + number);
  }

  const replyRowOf = new Map();  // exchange -> index of its (first) reply row: where a cause starts
  const requestRowOf = new Map();
  const messages = el("g", {class: "messages"}, svg);
  const causes = el("g", {class: "causes"}, svg);
  data.rows.forEach((row, i) => {
    const y = ys[i];
    el("text", {class: "time", x: TIME_X, y: y + 4}, messages, row.time.toFixed(3) + " s");
    const client = clientX.get(row.session) || clientX.values().next().value;
    const toServer = row.direction === "->";
    const [x1, x2] = toServer ? [client, serverX] : [serverX, client];
    const g = el("g", {class: "msg " + row.kind, "data-row": i, "data-exchange": row.exchange}, messages);
    el("line", {class: "hit", x1: x1, y1: y, x2: x2, y2: y}, g);
    el("line", {class: "arrow", x1: x1, y1: y, x2: x2 + (toServer ? -2 : 2), y2: y,
                "marker-end": "url(#head-" + row.kind + ")"}, g);
    const label = "#" + row.exchange + " " + row.target + (row.summary ? "  " + row.summary : "");
    el("text", {x: client + 14, y: y - 5}, g, cut(label));
    el("title", {}, g, label);
    g.addEventListener("click", () => select(g, row));
    if (row.kind === "request" && !requestRowOf.has(row.exchange)) requestRowOf.set(row.exchange, i);
    if ((row.kind === "reply" || row.kind === "error") && !replyRowOf.has(row.exchange)) {
      replyRowOf.set(row.exchange, i);
    }
    if (row.kind === "event" && row.cause != null) drawCause(row, i);
  });

  function drawCause(row, i) {
    const from = replyRowOf.has(row.cause) ? replyRowOf.get(row.cause) : requestRowOf.get(row.cause);
    if (from === undefined) return;
    const y1 = ys[from], y2 = ys[i];
    const bulge = 26 + Math.min(120, (y2 - y1) / 4);
    const g = el("g", {class: "cause-link", "data-cause": row.cause, "data-row": i}, causes);
    const curve = "M" + (serverX + 4) + "," + y1 + " C" + (serverX + bulge) + "," + y1 + " " +
                  (serverX + bulge) + "," + y2 + " " + (serverX + 6) + "," + y2;
    el("path", {class: "cause", d: curve, "marker-end": "url(#head-cause)"}, g);
    const text = (row.delay_ms != null ? ms(row.delay_ms) : "") + " after #" + row.cause;
    el("text", {class: "delay", x: serverX + bulge * 0.75 + 4, y: (y1 + y2) / 2 + 4}, g, text.trim());
  }

  const details = document.getElementById("details");
  let selected = null;
  function select(g, row) {
    if (selected) selected.classList.remove("selected");
    selected = g;
    g.classList.add("selected");
    document.getElementById("details-title").textContent =
      "#" + row.exchange + " " + row.target + " (" + row.kind + ", session " + row.session + ")";
    const shown = {row: row, exchange: data.exchanges[String(row.exchange)]};
    document.getElementById("details-json").textContent = JSON.stringify(shown, null, 2);
    details.classList.add("open");
  }
  document.getElementById("close").addEventListener("click", () => {
    details.classList.remove("open");
    if (selected) selected.classList.remove("selected");
    selected = null;
  });
  // file:///.../timeline.html#12 opens exchange 12: a link to the moment that matters, for a ticket
  const wanted = /^#(\d+)$/.exec(location.hash);
  if (wanted) {
    const g = messages.querySelector('g.msg[data-exchange="' + wanted[1] + '"]');
    if (g) { select(g, data.rows[Number(g.getAttribute("data-row"))]); g.scrollIntoView({block: "center"}); }
  }
  document.body.setAttribute("data-rendered", String(data.rows.length));
})();
</script>
</body>
</html>
"""
