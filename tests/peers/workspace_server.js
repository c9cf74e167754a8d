#!/usr/bin/env node
// A stand-in for the Genesys Workspace API v3, built on the CometD project's own Node server
// (npm "cometd-nodejs-server"), for the gwsvcr tests that drive the real Workspace SDK
// (npm "genesys-workspace-client-js").
//
//   node workspace_server.js [--port 0] [--event-delay-ms 250] [--token T] [--api-key K]
//       [--call-id ID] [--debug]
//
// Prints exactly one line "gwsvcr: listening on http://127.0.0.1:PORT" on stdout once it accepts
// connections; diagnostics go to stderr. Serves, under /workspace/v3:
//   POST /initialize-workspace   Authorization: Bearer <token> and x-api-key: <key> (401 otherwise)
//                                -> {"status":{"code":0}} and Set-Cookie WORKSPACE_SESSIONID
//   /notifications[/...]         CometD long-polling (the server sets its BAYEUX_BROWSER cookie); a
//                                subscribe to /workspace/v3/initialization gets {"state":"Complete",...}
//   POST /voice/calls/{id}/{start,stop,pause,resume}-recording
//                                -> {"status":{"code":1}} (accepted, asynchronous), then after
//                                --event-delay-ms a CallStateChanged event on /workspace/v3/voice, to the
//                                CometD sessions of that WORKSPACE_SESSIONID only
//   GET  /current-session        the user
//   POST /logout                 ends the workspace session
// Everything but initialize-workspace needs the WORKSPACE_SESSIONID cookie and the x-api-key header.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const cometd = require('cometd-nodejs-server');
const {cookieValue, eachArg, listen, readBody, sendJson} = require('./peerlib');

const BASE = '/workspace/v3';
const COMETD_PATH = `${BASE}/notifications`;
const INIT_CHANNEL = `${BASE}/initialization`;
const VOICE_CHANNEL = `${BASE}/voice`;
const SESSION_COOKIE = 'WORKSPACE_SESSIONID';

function parseArgs(argv) {
    const opts = {port: 0, eventDelayMs: 250, token: 'workspace-token', apiKey: 'workspace-api-key',
        callId: '007102719818001f', debug: false};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--event-delay-ms': opts.eventDelayMs = Number(value()); break;
            case '--token': opts.token = value(); break;
            case '--api-key': opts.apiKey = value(); break;
            case '--call-id': opts.callId = value(); break;
            case '--debug': opts.debug = true; break;
            default: return false;
        }
        return true;
    });
    return opts;
}

function log(...parts) {
    process.stderr.write(`workspace_server: ${parts.join(' ')}\n`);
}

// ---- Workspace payloads ----------------------------------------------------------------------

const RECORDING = {
    'start-recording': {state: 'Recording', caps: ['pause-recording', 'stop-recording']},
    'pause-recording': {state: 'Paused', caps: ['resume-recording', 'stop-recording']},
    'resume-recording': {state: 'Recording', caps: ['pause-recording', 'stop-recording']},
    'stop-recording': {state: 'Stopped', caps: ['start-recording']},
};
const BASE_CAPABILITIES = ['release', 'hold', 'initiate-transfer', 'initiate-conference', 'single-step-transfer',
    'attach-user-data', 'update-user-data', 'delete-user-data-pair', 'send-dtmf'];

const USER = {
    dbid: 101, firstName: 'Agent', lastName: 'One', userName: 'agent1', employeeId: 'agent1',
    agentLogin: 'agent1', defaultPlace: 'place_15000', agentId: 'agent1',
};

function callStateChanged(callId, operation) {
    const rec = RECORDING[operation];
    return {
        messageType: 'CallStateChanged',
        notificationType: 'StatePropertiesChanged',
        call: {
            type: 'Call',
            id: callId,
            connId: callId,
            callUuid: '01RCC3N118B1V0SL8O7GK2LAES00000V',
            phoneNumber: '15001',
            callType: 'Internal',
            state: 'Established',
            recordingState: rec.state,
            capabilities: [...BASE_CAPABILITIES, ...rec.caps],
            participants: [{number: '15001', phoneNumber: '15001'}],
            dnis: '15001',
            ani: '15000',
            userData: [{key: 'GSIP_RECORD', type: 'str', value: rec.state === 'Stopped' ? 'OFF' : 'ON'}],
        },
    };
}

// ---- HTTP helpers ----------------------------------------------------------------------------

function failure(res, status, message) {
    sendJson(res, status, {status: {code: status === 401 ? 40001 : 50000, message}});
}

// ---- server ----------------------------------------------------------------------------------

function main() {
    let opts;
    try {
        opts = parseArgs(process.argv.slice(2));
    } catch (e) {
        log(e.message);
        process.exit(2);
    }

    const sessions = new Map(); // WORKSPACE_SESSIONID -> {id, cometd: Set<ServerSession>}
    const cometdServer = cometd.createCometDServer({
        logLevel: opts.debug ? 'debug' : 'info',
        timeout: 30000,
        maxInterval: 10000,
    });

    // The Workspace session of the HTTP request being processed: the cookie it sent and the API key.
    const workspaceSessionOf = (req) => {
        if (!req || req.headers['x-api-key'] !== opts.apiKey) return null;
        return sessions.get(cookieValue(req, SESSION_COOKIE)) || null;
    };

    cometdServer.policy = {
        canHandshake(session, message, callback) {
            const ws = workspaceSessionOf(cometdServer.context && cometdServer.context.request);
            if (ws) {
                ws.cometd.add(session);
                session.addListener('removed', () => ws.cometd.delete(session));
                session._workspace = ws;
            }
            log(`handshake ${ws ? 'ok' : 'refused: no workspace session'}`);
            callback(null, Boolean(ws));
        },
    };

    // Initialization: once the SDK subscribes, it is told its workspace is ready (and who it is).
    cometdServer.createServerChannel(INIT_CHANNEL).addListener('subscribed', (channel, session) => {
        setImmediate(() => session.deliver(null, INIT_CHANNEL, {
            state: 'Complete',
            data: {user: USER, configuration: {applications: [], actionCodes: [], settings: {}}},
        }));
    });

    const server = http.createServer((req, res) => {
        handle(req, res).catch((e) => {
            log('error', e.stack || e);
            if (!res.headersSent) failure(res, 500, String(e.message || e));
        });
    });

    async function handle(req, res) {
        const path = new URL(req.url, 'http://127.0.0.1').pathname;
        if (path === COMETD_PATH || path.startsWith(`${COMETD_PATH}/`)) {
            if (!workspaceSessionOf(req)) {
                await readBody(req);
                return failure(res, 401, 'CometD needs the WORKSPACE_SESSIONID cookie and the x-api-key header');
            }
            return cometdServer.handle(req, res);
        }
        await readBody(req);

        if (path === `${BASE}/initialize-workspace` && req.method === 'POST') {
            const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization || '');
            if (!bearer || bearer[1] !== opts.token || req.headers['x-api-key'] !== opts.apiKey) {
                return failure(res, 401, 'initialize-workspace needs Authorization: Bearer <token> and x-api-key');
            }
            const id = crypto.randomBytes(16).toString('hex');
            sessions.set(id, {id, cometd: new Set()});
            log(`workspace session ${id.slice(0, 8)}... initialized`);
            return sendJson(res, 200, {status: {code: 0}},
                {'Set-Cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly`});
        }

        const ws = workspaceSessionOf(req);
        if (!ws) return failure(res, 401, 'no workspace session: send WORKSPACE_SESSIONID and x-api-key');

        const op = /^\/workspace\/v3\/voice\/calls\/([^/]+)\/((?:start|stop|pause|resume)-recording)$/.exec(path);
        if (op && req.method === 'POST') {
            const callId = decodeURIComponent(op[1]);
            if (callId !== opts.callId) return failure(res, 404, `unknown call ${callId}`);
            sendJson(res, 200, {status: {code: 1}});
            setTimeout(() => {
                for (const session of ws.cometd) session.deliver(null, VOICE_CHANNEL, callStateChanged(callId, op[2]));
                log(`${op[2]} -> CallStateChanged to ${ws.cometd.size} CometD session(s)`);
            }, opts.eventDelayMs);
            return undefined;
        }
        if (path === `${BASE}/current-session` && req.method === 'GET') {
            return sendJson(res, 200, {status: {code: 0}, data: {user: USER}});
        }
        if (path === `${BASE}/logout` && req.method === 'POST') {
            sessions.delete(ws.id);
            return sendJson(res, 200, {status: {code: 0}});
        }
        return failure(res, 404, `Not found: ${req.method} ${path}`);
    }

    listen(server, opts.port);
}

main();
