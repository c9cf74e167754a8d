#!/usr/bin/env node
// A scripted agent session driven by Genesys' own Workspace API v3 client SDK
// (npm "genesys-workspace-client-js", which runs CometD JS 3.1 over long-polling).
//
//   node workspace_client.js --url http://127.0.0.1:PORT [--token T] [--api-key K]
//       [--call-id ID] [--ops stop-recording,start-recording] [--pause-ms 0]
//       [--event-timeout-ms 10000] [--timeout-ms 60000] [--debug]
//
// The SDK initializes (POST /workspace/v3/initialize-workspace with the bearer token and the API
// key, then CometD at /workspace/v3/notifications until /workspace/v3/initialization says
// Complete, then a subscription to /workspace/v3/voice); then each operation runs through the SDK
// (api.voice.stopRecording(...) ...) and waits for its CallStateChanged; at the end the SDK's
// CometD disconnects and the session logs out.
//
// stdout: one JSON object per line (initialized, reply, event, done | error);
// t = performance.now(), i.e. ms since process start on a monotonic clock. An event's delay_ms is
// its t minus the t of the reply to the operation that ran last. Exit 0 on success, 1 on failure.
'use strict';

const {describe, eachArg, emit, now, runClient, sleep, withTimeout} = require('./peerlib');

const VOICE_CHANNEL = '/workspace/v3/voice';
const OPERATIONS = {
    'start-recording': 'startRecording',
    'stop-recording': 'stopRecording',
    'pause-recording': 'pauseRecording',
    'resume-recording': 'resumeRecording',
};
const EXPECTED_STATE = {
    'start-recording': 'Recording', 'stop-recording': 'Stopped',
    'pause-recording': 'Paused', 'resume-recording': 'Recording',
};

function parseArgs(argv) {
    const opts = {url: null, token: 'workspace-token', apiKey: 'workspace-api-key', callId: '007102719818001f',
        ops: ['stop-recording', 'start-recording'], pauseMs: 0, eventTimeoutMs: 10000, timeoutMs: 60000,
        debug: false};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--url': opts.url = value().replace(/\/+$/, ''); break;
            case '--token': opts.token = value(); break;
            case '--api-key': opts.apiKey = value(); break;
            case '--call-id': opts.callId = value(); break;
            case '--ops': opts.ops = value().split(',').filter(Boolean); break;
            case '--pause-ms': opts.pauseMs = Number(value()); break;
            case '--event-timeout-ms': opts.eventTimeoutMs = Number(value()); break;
            case '--timeout-ms': opts.timeoutMs = Number(value()); break;
            case '--debug': opts.debug = true; break;
            default: return false;
        }
        return true;
    });
    if (!opts.url) throw new Error('--url is required');
    for (const op of opts.ops) {
        if (!Object.hasOwn(OPERATIONS, op)) throw new Error(`unknown operation ${op}`);
    }
    return opts;
}

async function main(opts) {
    // The SDK writes its debug log with console.log: keep stdout for the JSON lines.
    console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
    const WorkspaceApi = require('genesys-workspace-client-js');
    const api = new WorkspaceApi(opts.apiKey, opts.url, opts.debug);

    // The SDK subscribes to /workspace/v3/voice at the end of initialize() without waiting for the
    // reply: listen for that reply (on the SDK's own CometD object, created just before its
    // handshake), so no operation runs before its event can be delivered.
    let voiceSubscribed;
    const voiceReady = new Promise((resolve) => { voiceSubscribed = resolve; });
    const handshake = api._initCometDHandshake.bind(api);
    api._initCometDHandshake = () => {
        api._cometd.addListener('/meta/subscribe', (reply) => {
            if (reply.subscription === VOICE_CHANNEL) voiceSubscribed(reply);
        });
        return handshake();
    };

    const events = [];
    let wakeUp = null;
    api.on('CallStateChanged', (msg) => {
        events.push({msg, t: now()});
        if (wakeUp) wakeUp();
    });
    const nextEvent = async (op) => {
        while (events.length === 0) {
            await withTimeout(new Promise((resolve) => { wakeUp = resolve; }), opts.eventTimeoutMs,
                `the CallStateChanged after ${op}`);
        }
        return events.shift();
    };

    await withTimeout(api.initialize({token: opts.token}), opts.timeoutMs, 'the SDK initialization');
    const voice = await withTimeout(voiceReady, opts.timeoutMs, `the ${VOICE_CHANNEL} subscription`);
    if (!voice.successful) throw new Error(`${VOICE_CHANNEL} subscription failed: ${JSON.stringify(voice)}`);
    emit({type: 'initialized', user: api.user && api.user.userName, t: now()});

    for (const op of opts.ops) {
        await sleep(opts.pauseMs);
        let body;
        try {
            body = await api.voice[OPERATIONS[op]](opts.callId);
        } catch (e) {
            throw new Error(`${op} failed: ${describe(e)}`);
        }
        const replyT = now();
        emit({type: 'reply', op, body: JSON.parse(JSON.stringify(body)), t: replyT});
        const {msg, t} = await nextEvent(op);
        const call = msg.call || {};
        emit({
            type: 'event', op, notificationType: msg.notificationType, callId: call.id,
            recordingState: call.recordingState, expected: EXPECTED_STATE[op],
            delay_ms: Math.round((t - replyT) * 1000) / 1000, t,
        });
        if (call.id !== opts.callId || call.recordingState !== EXPECTED_STATE[op]) {
            throw new Error(`${op}: got ${call.recordingState} for call ${call.id}`);
        }
    }
    if (events.length) throw new Error(`unexpected events: ${JSON.stringify(events.map((e) => e.msg))}`);

    // What the SDK's destroy() does, but waited for: CometD disconnect, then logout.
    await withTimeout(new Promise((resolve) => api._cometd.disconnect(resolve)), 5000, 'the disconnect reply');
    await withTimeout(api._sessionApi.logout(), 5000, 'the logout reply');
    emit({type: 'done', t: now()});
}

runClient(parseArgs, main);
