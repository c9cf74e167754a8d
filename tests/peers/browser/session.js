// The scripted GWS call-recording session (same steps and JSON records as tests/peers/cometd_client.js),
// driven by the official CometD JS library loaded as ES modules from the npm package (served at ./cometd/).
// t = performance.now(): ms since the page started, monotonic.
import {CallbackPollingTransport, CometD, LongPollingTransport, WebSocketTransport} from './cometd/cometd.js';

const CALLS_CHANNEL = '/v2/me/calls';
const params = new URLSearchParams(window.location.search);
const opts = {
    cometdPath: params.get('cometdPath') || '/api/v2/notifications',
    callId: params.get('callId') || '01RCC3N118B1V0SL8O7GK2LAES00000V',
    ops: (params.get('ops') || 'StartCallRecording,PauseCallRecording,ResumeCallRecording,StopCallRecording')
        .split(',').map((s) => s.trim()).filter(Boolean),
    user: params.get('user') || 'agent1',
    password: params.get('password') || 'secret',
    transport: params.get('transport') || 'long-polling',
    eventTimeoutMs: Number(params.get('eventTimeoutMs') || 10000),
};

const result = document.getElementById('result');
const now = () => Math.round(performance.now() * 1000) / 1000;

function emit(record) {
    result.textContent += JSON.stringify(record) + '\n';
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function parseJson(text) {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

async function session() {
    const authorization = 'Basic ' + btoa(`${opts.user}:${opts.password}`);

    // 1. Log in. The browser keeps the JSESSIONID cookie itself (same origin) and sends it with every
    //    request, the callback-polling <script> GETs and the WebSocket upgrade included (neither can carry
    //    an Authorization header); the CSRF token goes back on each POST.
    const me = await fetch('/api/v2/me', {headers: {Authorization: authorization}});
    const meText = await me.text();
    if (me.status !== 200) throw new Error(`GET /api/v2/me answered ${me.status}: ${meText}`);
    const csrfHeader = me.headers.get('X-CSRF-HEADER') || 'X-CSRF-TOKEN';
    const csrfToken = me.headers.get('X-CSRF-TOKEN');

    // 2. CometD: only the requested transport, no fallback.
    const transports = {
        'long-polling': () => new LongPollingTransport(),
        'callback-polling': () => new CallbackPollingTransport(),
        'websocket': () => new WebSocketTransport(),
    };
    if (!transports[opts.transport]) throw new Error(`unsupported transport ${opts.transport}`);
    const cometd = new CometD();
    cometd.unregisterTransports();
    cometd.registerTransport(opts.transport, transports[opts.transport]());
    cometd.configure({
        url: window.location.origin + opts.cometdPath,
        requestHeaders: {Authorization: authorization},
        logLevel: 'info',
    });
    const handshake = await withTimeout(new Promise((resolve) => cometd.handshake(resolve)),
        opts.eventTimeoutMs, 'the handshake reply');
    if (!handshake.successful) {
        const f = handshake.failure || {};
        throw new Error(`handshake failed: ${handshake.error || `HTTP ${f.httpCode} ${f.reason || f.exception || ''}`}`);
    }
    emit({type: 'handshake', clientId: handshake.clientId, t: now(), userAgent: navigator.userAgent});

    const events = [];
    let wakeUp = null;
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

    const subscribed = await withTimeout(new Promise((resolve) => {
        cometd.subscribe(CALLS_CHANNEL, onEvent, resolve);
    }), opts.eventTimeoutMs, 'the subscribe reply');
    if (!subscribed.successful) throw new Error(`subscribe failed: ${JSON.stringify(subscribed)}`);

    // 3. The operations, each followed by its CallRecordingStateChange notification.
    for (const op of opts.ops) {
        lastOp = op;
        const reply = await fetch(`/api/v2/me/calls/${encodeURIComponent(opts.callId)}`, {
            method: 'POST',
            headers: {
                'Authorization': authorization,
                'Content-Type': 'application/json',
                ...(csrfToken ? {[csrfHeader]: csrfToken} : {}),
            },
            body: JSON.stringify({operationName: op}),
        });
        const text = await reply.text();
        const t = now();
        replyT[op] = t;
        emit({type: 'reply', op, status: reply.status, body: parseJson(text), t});
        if (reply.status !== 200) throw new Error(`${op} answered HTTP ${reply.status}`);

        for (;;) {
            const {message, t: at, op: evOp} = await nextEvent();
            const data = message.data || {};
            const ours = !(data.call && data.call.id) || data.call.id === opts.callId;
            emit({
                type: ours ? 'event' : 'stray_event',
                channel: message.channel,
                notificationType: data.notificationType,
                recordingState: data.call && data.call.recordingState,
                gsipRecord: data.call && data.call.userData && data.call.userData.GSIP_RECORD,
                op: evOp,
                delay_ms: replyT[evOp] === undefined ? null : Math.round((at - replyT[evOp]) * 1000) / 1000,
                t: at,
                data,
            });
            if (ours && data.notificationType === 'CallRecordingStateChange') break;
        }
    }

    // 4. Disconnect.
    await withTimeout(new Promise((resolve) => cometd.disconnect(resolve)), 5000, 'the disconnect reply');
}

window.sessionDone = session().then(() => {
    emit({type: 'done'});
    result.dataset.state = 'done';
}, (e) => {
    emit({type: 'error', message: e && e.message ? e.message : String(e)});
    result.dataset.state = 'error';
});
