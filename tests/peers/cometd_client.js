#!/usr/bin/env node
// Scripted GWS call-recording session driven by the OFFICIAL CometD JavaScript client
// (npm "cometd", run under Node through npm "cometd-nodejs-client").
//
//   node cometd_client.js --url http://127.0.0.1:PORT [--cometd-path /api/v2/notifications]
//       [--call-id ID] [--ops StartCallRecording,PauseCallRecording,...] [--user agent1]
//       [--password secret] [--pause-ms 0] [--extra-pause StopCallRecording=1500 ...]
//       [--transport long-polling|callback-polling|websocket] [--event-timeout-ms 10000]
//       [--timeout-ms 60000] [--debug]
//       [--trace] [--ack] [--timesync] [--subscribe-also CHANNEL ...] [--batch]
//       [--forget-session-after OP] [--reload-state FILE [--reload-after OP]]
//       [--no-append-message-type] [--retry-ms MS] [--hold-before OP]
//
// stdout: one JSON object per line (handshake, reply, event, stray_event, done | error);
// t = performance.now(), i.e. ms since process start on a monotonic clock.
// Exit 0 on success, 1 on any failure.
//
// Options for the protocol conformance tests (tests/conformance), all off by default:
// --trace            also emit every Bayeux message the client sends ("out", after the other
//                    extensions) and receives ("in", before them), every CometD HTTP request
//                    ("http": method, path, channels of the messages it carries, so batching shows),
//                    "rehandshake"/"resubscribe" records and, at the end, "advice" (getAdvice()).
// --ack, --timesync  register CometD's AckExtension / TimeSyncExtension; --timesync emits a final
//                    "timesync" record (lag, offset).
// --subscribe-also   subscribe to more channels after /v2/me/calls; each gives a "subscribe" record,
//                    a failed one is reported, not fatal. --batch sends all subscribes in one batch.
// --forget-session-after OP
//                    after OP's notification, the next /meta/connect goes out with a clientId the
//                    server never issued (once): what a client sees when the server lost its session
//                    (402 then re-handshake). Re-handshakes always resubscribe, as CometD asks
//                    applications to (subscriptions are cleared on every handshake).
// --reload-state FILE
//                    register the ReloadExtension with a window.sessionStorage kept in FILE; if FILE
//                    holds a saved state, skip the login (its cookie and CSRF token are reused) and
//                    let the extension resume the session: no handshake goes on the wire.
// --reload-after OP  after OP's notification, call cometd.reload(), save the state to FILE, emit
//                    "reloaded" and exit 0 without disconnecting (the page is "reloading").
// --no-append-message-type
//                    configure appendMessageTypeToURL: false (no /handshake, /connect URL suffix).
// --retry-ms MS      an operation answered HTTP 5xx, or whose connection broke, is reported ("reply" with
//                    its status, or "broken") and sent again MS later, up to 3 times.
// --hold-before OP   before OP (after its pause), emit "holding" and wait for a line on stdin (or its end):
//                    a test acts while the session is between operations, then lets it go on.
// CometD's own logging goes to stderr (--debug for the client's debug log).
//
// What cometd-nodejs-client 2.0 does with headers and cookies (read from its src/XMLHttpRequest.js):
// - adapt() installs window.XMLHttpRequest (a small node:http shim) and window.WebSocket (= ws).
// - CometD's `requestHeaders` reach the shim through setRequestHeader() on every long-polling POST.
//   The shim forwards every header as is, EXCEPT "Cookie": that one is split on ";" into a jar local
//   to the request and merged with a process-global jar (filled from every Set-Cookie the CometD
//   responses carry, keyed by host name only; path/domain/expiry ignored) into one Cookie header.
//   That global jar is private to the shim (or replaced via adapt({cookies: {storeCookie,
//   retrieveCookies}})), so a JSESSIONID obtained by our own REST call is NOT known to CometD:
//   we pass it explicitly as requestHeaders.Cookie.
// - WebSocket: CometD calls `new window.WebSocket(url[, protocol])` (the browser API), so
//   requestHeaders are NOT sent on the upgrade and the ws shim has no cookie jar. We install a ws
//   subclass that adds our Authorization and Cookie headers to the upgrade request.
// - callback-polling: CometD's CallbackPollingTransport.jsonpSend() injects a <script> element into
//   window.document, which does not exist under Node, so that transport cannot work as shipped
//   (the adapter only shims XHR and WebSocket). jsonpSend() is the hook the transport offers for
//   other environments; we override just that one method with a GET through the same XHR shim
//   (same URL and callback naming, same headers) and unwrap the JSONP reply.
// - adapt() also sets window.console = console and console.debug = console.log, so CometD would
//   log to stdout; we point window.console at stderr to keep stdout pure JSON lines.
// Both packages are ES modules ("type": "module"), hence the dynamic import() below.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const {eachArg, emit, now, runClient, sleep, withTimeout} = require('./peerlib');

const CALLS_CHANNEL = '/v2/me/calls';

function parseArgs(argv) {
    const opts = {
        url: null,
        cometdPath: '/api/v2/notifications',
        callId: '01RCC3N118B1V0SL8O7GK2LAES00000V',
        ops: ['StartCallRecording', 'PauseCallRecording', 'ResumeCallRecording', 'StopCallRecording'],
        user: 'agent1',
        password: 'secret',
        pauseMs: 0,
        extraPause: {},
        transport: 'long-polling',
        eventTimeoutMs: 10000,
        timeoutMs: 60000,
        debug: false,
        trace: false,
        ack: false,
        timesync: false,
        subscribeAlso: [],
        batch: false,
        forgetSessionAfter: null,
        reloadState: null,
        reloadAfter: null,
        appendMessageType: true,
        retryMs: null,
        holdBefore: null,
    };
    eachArg(argv, (arg, value) => {
        const number = () => {
            const n = Number(value());
            if (!Number.isFinite(n) || n < 0) throw new Error(`bad number for ${arg}`);
            return n;
        };
        switch (arg) {
            case '--url': opts.url = value().replace(/\/+$/, ''); break;
            case '--cometd-path': opts.cometdPath = value(); break;
            case '--call-id': opts.callId = value(); break;
            case '--ops': opts.ops = value().split(',').map((s) => s.trim()).filter(Boolean); break;
            case '--user': opts.user = value(); break;
            case '--password': opts.password = value(); break;
            case '--pause-ms': opts.pauseMs = number(); break;
            case '--extra-pause': {
                const m = /^([^=]+)=(\d+(?:\.\d+)?)$/.exec(value());
                if (!m) throw new Error('--extra-pause wants OP=MS');
                opts.extraPause[m[1]] = Number(m[2]);
                break;
            }
            case '--transport': opts.transport = value(); break;
            case '--event-timeout-ms': opts.eventTimeoutMs = number(); break;
            case '--timeout-ms': opts.timeoutMs = number(); break;
            case '--debug': opts.debug = true; break;
            case '--trace': opts.trace = true; break;
            case '--ack': opts.ack = true; break;
            case '--timesync': opts.timesync = true; break;
            case '--subscribe-also': opts.subscribeAlso.push(value()); break;
            case '--batch': opts.batch = true; break;
            case '--forget-session-after': opts.forgetSessionAfter = value(); break;
            case '--reload-state': opts.reloadState = value(); break;
            case '--reload-after': opts.reloadAfter = value(); break;
            case '--no-append-message-type': opts.appendMessageType = false; break;
            case '--retry-ms': opts.retryMs = number(); break;
            case '--hold-before': opts.holdBefore = value(); break;
            default: return false;
        }
        return true;
    });
    if (!opts.url) throw new Error('--url is required');
    if (!['long-polling', 'callback-polling', 'websocket'].includes(opts.transport)) {
        throw new Error(`unsupported transport ${opts.transport}`);
    }
    if (opts.reloadAfter && !opts.reloadState) throw new Error('--reload-after needs --reload-state FILE');
    return opts;
}

// Plain node:http request; resolves once the whole body is in, with t taken at that moment.
function request(method, url, headers, body) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, {method, headers, agent: false}, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({
                status: res.statusCode,
                headers: res.headers,
                text: Buffer.concat(chunks).toString('utf8'),
                t: now(),
            }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
    });
}

function parseJson(text) {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

// The channels of the Bayeux messages in a request body, or in a callback-polling URL's message=.
function channelsOf(url, body) {
    const text = body || new URL(url).searchParams.get('message') || '';
    try {
        const messages = JSON.parse(text);
        return (Array.isArray(messages) ? messages : [messages]).map((m) => m && m.channel);
    } catch {
        return [];
    }
}

// --reload-state FILE: {sessionStorage: {...}, cookie, csrfHeader, csrfToken}, or null.
function readState(path) {
    try {
        return JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch {
        return null;
    }
}

// The part of window.sessionStorage the ReloadExtension uses, seeded from a saved state.
function memorySessionStorage(saved) {
    const items = {...((saved && saved.sessionStorage) || {})};
    return {
        getItem: (key) => (Object.hasOwn(items, key) ? items[key] : null),
        setItem: (key, value) => { items[key] = String(value); },
        removeItem: (key) => { delete items[key]; },
        snapshot: () => ({...items}),
    };
}

async function loadCometD(opts, headers, state) {
    const {adapt} = await import('cometd-nodejs-client');
    adapt();
    const window = globalThis.window;
    window.console = new console.Console({stdout: process.stderr, stderr: process.stderr});
    if (opts.reloadState) window.sessionStorage = memorySessionStorage(state.saved);
    if (opts.trace) {
        // Every CometD HTTP request (long-polling POST, our callback-polling GET) as it goes out.
        const TracedXHR = window.XMLHttpRequest;
        window.XMLHttpRequest = class extends TracedXHR {
            #method;
            #url;

            open(method, uri) {
                this.#method = method;
                this.#url = String(uri);
                return super.open(method, uri);
            }

            send(data) {
                emit({type: 'http', method: this.#method, path: new URL(this.#url).pathname,
                    channels: channelsOf(this.#url, data), t: now()});
                return super.send(data);
            }
        };
    }

    const ShimWebSocket = window.WebSocket;
    window.WebSocket = class extends ShimWebSocket {
        constructor(url, protocols) {
            super(url, protocols, {headers});
        }
    };

    const cometdLib = await import('cometd');

    class NodeCallbackPollingTransport extends cometdLib.CallbackPollingTransport {
        #counter = 0;

        jsonpSend(packet) {
            const callback = `_cometd_jsonp_${this.#counter++}`;
            const url = `${packet.url}${packet.url.includes('?') ? '&' : '?'}jsonp=${callback}` +
                `&message=${encodeURIComponent(packet.body)}`;
            const xhr = new window.XMLHttpRequest();
            xhr.open('GET', url, packet.sync !== true);
            for (const [name, value] of Object.entries(packet.headers || {})) xhr.setRequestHeader(name, value);
            xhr.onload = () => {
                // Faye answers `/**/callback([...]);`: hand CometD the JSON array inside.
                const m = /^[^(]*\(([\s\S]*)\);?\s*$/.exec(xhr.responseText);
                if (xhr.status === 200 && m) packet.onSuccess(m[1]);
                else packet.onError(`jsonp HTTP ${xhr.status} ${xhr.statusText}`);
            };
            xhr.onerror = () => packet.onError(xhr.statusText);
            xhr.send();
        }
    }

    const transports = {
        'long-polling': () => new cometdLib.LongPollingTransport(),
        'callback-polling': () => new NodeCallbackPollingTransport(),
        'websocket': () => new cometdLib.WebSocketTransport(),
    };

    const cometd = new cometdLib.CometD();
    // Only the requested transport: no silent fallback to long-polling.
    cometd.unregisterTransports();
    cometd.registerTransport(opts.transport, transports[opts.transport]());
    cometd.configure({
        url: opts.url + opts.cometdPath,
        requestHeaders: headers,
        logLevel: opts.debug ? 'debug' : 'info',
        appendMessageTypeToURL: opts.appendMessageType,
    });
    // Registered first: sees outgoing messages last (as sent) and incoming ones first (as received).
    if (opts.trace) {
        cometd.registerExtension('gwsvcr-trace', {
            outgoing: (message) => { emit({type: 'out', message, t: now()}); return message; },
            incoming: (message) => { emit({type: 'in', message, t: now()}); return message; },
        });
    }
    if (opts.forgetSessionAfter) {
        cometd.registerExtension('gwsvcr-forget', {
            outgoing: (message) => {
                if (state.forget && message.channel === '/meta/connect') {
                    state.forget = false;
                    const issued = message.clientId;
                    message.clientId = `forgotten${issued}`;
                    emit({type: 'forged_client_id', issued, sent: message.clientId, t: now()});
                }
                return message;
            },
        });
    }
    if (opts.reloadState) cometd.registerExtension('reload', new cometdLib.ReloadExtension());
    if (opts.ack) cometd.registerExtension('ack', new cometdLib.AckExtension());
    const timesync = opts.timesync ? new cometdLib.TimeSyncExtension() : null;
    if (timesync) cometd.registerExtension('timesync', timesync);
    return {cometd, timesync};
}

async function main(opts) {
    const authorization = 'Basic ' + Buffer.from(`${opts.user}:${opts.password}`).toString('base64');

    // 1. Log in: GET /api/v2/me gives the JSESSIONID cookie and the CSRF token (a reloaded page
    //    resuming its CometD session keeps the ones it had).
    const state = {saved: opts.reloadState ? readState(opts.reloadState) : null, forget: false};
    let cookie, csrfHeader, csrfToken;
    if (state.saved && state.saved.sessionStorage) {
        ({cookie, csrfHeader, csrfToken} = state.saved);
        emit({type: 'resumed', t: now()});
    } else {
        const me = await request('GET', `${opts.url}/api/v2/me`, {Authorization: authorization});
        if (me.status !== 200) throw new Error(`GET /api/v2/me answered ${me.status}: ${me.text}`);
        cookie = (me.headers['set-cookie'] || []).map((c) => c.split(';')[0].trim()).join('; ');
        csrfHeader = me.headers['x-csrf-header'] || 'X-CSRF-TOKEN';
        csrfToken = me.headers['x-csrf-token'];
    }
    const sessionHeaders = {Authorization: authorization};
    if (cookie) sessionHeaders.Cookie = cookie;

    // 2. CometD handshake, then subscribe.
    const {cometd, timesync} = await loadCometD(opts, sessionHeaders, state);
    const channels = [CALLS_CHANNEL, ...opts.subscribeAlso];
    const onOther = (message) => emit({type: 'other_event', channel: message.channel, data: message.data, t: now()});
    let handshakes = 0;
    let resubscribed;  // resolves with the reply to the first resubscription of CALLS_CHANNEL
    const callsResubscribed = new Promise((resolve) => { resubscribed = resolve; });
    // CometD clears subscriptions on every handshake: after a re-handshake (402, advice
    // reconnect:"handshake") the application subscribes again, as CometD's documentation asks.
    cometd.addListener('/meta/handshake', (message) => {
        if (!message.successful || ++handshakes === 1) return;
        emit({type: 'rehandshake', clientId: message.clientId, t: now()});
        cometd.batch(() => {
            for (const channel of channels) {
                cometd.subscribe(channel, channel === CALLS_CHANNEL ? onEvent : onOther, (reply) => {
                    emit({type: 'resubscribe', subscription: channel, successful: reply.successful, t: now()});
                    if (channel === CALLS_CHANNEL) resubscribed(reply);
                });
            }
        });
    });
    const handshake = await withTimeout(new Promise((resolve) => cometd.handshake(resolve)),
        opts.timeoutMs, 'the handshake reply');
    if (!handshake.successful) {
        const f = handshake.failure || {};
        throw new Error(`handshake failed: ${handshake.error || `HTTP ${f.httpCode} ${f.reason || f.exception || ''}`}`);
    }
    const reloaded = Boolean(handshake.ext && handshake.ext.reload);
    emit({type: 'handshake', clientId: handshake.clientId, t: now(), ...(reloaded ? {reload: true} : {})});

    const events = [];          // received, not yet reported
    let wakeUp = null;          // resolves a pending nextEvent()
    let lastOp = null;
    const replyT = {};
    const onEvent = (message) => {
        events.push({message, t: now(), op: lastOp});
        if (wakeUp) wakeUp();
    };
    const nextEvent = async () => {
        while (events.length === 0) {
            await withTimeout(new Promise((resolve) => { wakeUp = resolve; }),
                opts.eventTimeoutMs, `a ${CALLS_CHANNEL} notification after ${lastOp}`);
        }
        return events.shift();
    };

    const subscribe = (channel) => new Promise((resolve) => {
        cometd.subscribe(channel, channel === CALLS_CHANNEL ? onEvent : onOther, resolve);
    });
    let replies;
    if (opts.batch) {
        let pending;
        cometd.batch(() => { pending = Promise.all(channels.map(subscribe)); });
        replies = await withTimeout(pending, opts.timeoutMs, 'the subscribe replies');
    } else {
        replies = [];
        for (const channel of channels) {
            replies.push(await withTimeout(subscribe(channel), opts.timeoutMs, 'the subscribe reply'));
        }
    }
    let [subscribed, ...others] = replies;
    if (!subscribed.successful && /^402::/.test(subscribed.error || '')) {
        // The server does not know our session (a resumed session it lost): the client re-handshakes and
        // the handshake listener above subscribes again.
        subscribed = await withTimeout(callsResubscribed, opts.timeoutMs, 'the subscription after a re-handshake');
    }
    if (!subscribed.successful) throw new Error(`subscribe failed: ${JSON.stringify(subscribed)}`);
    others.forEach((reply, i) => emit({
        type: 'subscribe', subscription: opts.subscribeAlso[i], successful: Boolean(reply.successful),
        error: reply.error, httpCode: reply.failure && reply.failure.httpCode, t: now()}));

    // 3. The operations, each followed by its CallRecordingStateChange notification.
    for (const op of opts.ops) {
        await sleep(opts.pauseMs + (opts.extraPause[op] || 0));
        if (op === opts.holdBefore) {
            emit({type: 'holding', op, t: now()});
            await new Promise((resolve) => process.stdin.once('data', resolve).once('end', resolve));
            process.stdin.destroy();
        }
        lastOp = op;
        const post = () => request('POST', `${opts.url}/api/v2/me/calls/${encodeURIComponent(opts.callId)}`, {
            ...sessionHeaders,
            ...(csrfToken ? {[csrfHeader]: csrfToken} : {}),
            'Content-Type': 'application/json',
        }, JSON.stringify({operationName: op}));
        let reply;
        for (let attempt = 1; ; attempt++) {
            const retry = opts.retryMs !== null && attempt <= 3;
            try {
                reply = await post();
            } catch (e) {
                if (!retry) throw e;
                emit({type: 'broken', op, error: e.message, t: now()});
                await sleep(opts.retryMs);
                continue;
            }
            emit({type: 'reply', op, status: reply.status, body: parseJson(reply.text), t: reply.t});
            if (!(retry && reply.status >= 500)) break;
            await sleep(opts.retryMs);
        }
        replyT[op] = reply.t;
        if (reply.status !== 200) throw new Error(`${op} answered HTTP ${reply.status}`);

        for (;;) {
            const {message, t, op: evOp} = await nextEvent();
            const data = message.data || {};
            // /v2/me/calls is one global Faye channel: a notification about another call (say, a
            // late one caused by an earlier session's POST) is reported but does not answer our op.
            const ours = !(data.call && data.call.id) || data.call.id === opts.callId;
            emit({
                type: ours ? 'event' : 'stray_event',
                channel: message.channel,
                notificationType: data.notificationType,
                recordingState: data.call && data.call.recordingState,
                gsipRecord: data.call && data.call.userData && data.call.userData.GSIP_RECORD,
                op: evOp,
                delay_ms: replyT[evOp] === undefined ? null : Math.round((t - replyT[evOp]) * 1000) / 1000,
                t,
                data,
            });
            if (ours && data.notificationType === 'CallRecordingStateChange') break;
        }
        if (op === opts.forgetSessionAfter) state.forget = true;
        if (op === opts.reloadAfter) {
            // The page reloads: the extension saves the handshake reply; the server is not told.
            cometd.reload();
            fs.writeFileSync(opts.reloadState, JSON.stringify({
                sessionStorage: globalThis.window.sessionStorage.snapshot(), cookie, csrfHeader, csrfToken}));
            emit({type: 'reloaded', t: now()});
            emit({type: 'done'});
            return;
        }
    }
    if (opts.trace) emit({type: 'advice', advice: cometd.getAdvice(), t: now()});

    // 4. Disconnect (the reply, or a failure, both end the session).
    await withTimeout(new Promise((resolve) => cometd.disconnect(resolve)), 5000, 'the disconnect reply');
    if (timesync) emit({type: 'timesync', lag: timesync.getNetworkLag(), offset: timesync.getTimeOffset()});
    emit({type: 'done'});
}

runClient(parseArgs, main);
