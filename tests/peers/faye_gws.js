#!/usr/bin/env node
// A GWS-like upstream for the gwsvcr tests, built on a real Faye Bayeux server.
//
//   node faye_gws.js [--port 0] [--event-delay-ms 250] [--password secret] [--check-csrf]
//                    [--forget-clients-after N] [--forget-delay-ms 100] [--fail-request N=STATUS|reset ...]
//
// Prints exactly one line "gwsvcr: listening on http://127.0.0.1:PORT" on stdout once it accepts
// connections; diagnostics go to stderr. Serves:
//   /api/v2/notifications[/...]  Faye (long-polling, callback-polling, websocket, ...)
//   GET  /api/v2/me              Basic auth -> user JSON + JSESSIONID cookie + CSRF token headers
//   POST /api/v2/me/calls/{id}   {"operationName": "<Start|Stop|Pause|Resume>CallRecording"}
//                                -> {"statusCode":0}, then after --event-delay-ms a
//                                CallRecordingStateChange event on /v2/me/calls (shape of
//                                /work/shared/seed/StopCallRecording.txt).
// --forget-clients-after N: --forget-delay-ms after the notification of a login session's (JSESSIONID's) Nth
// operation went out, the server forgets every CometD client it has (as a node restart does): a held connect is
// answered at once, the next one gets Faye's "401:<clientId>:Unknown client" with advice reconnect:"handshake".
// --fail-request N=503: a login's Nth POST /api/v2/me/calls/{id} is answered HTTP 503 (no notification);
// N=reset: its connection is reset instead. Repeatable. Operations count the requests that succeeded.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const faye = require('faye');
const {cookieValue, eachArg, listen, readBody, sendJson} = require('./peerlib');

const COMETD_PATH = '/api/v2/notifications';
const CALLS_CHANNEL = '/v2/me/calls';

function parseArgs(argv) {
    const opts = {port: 0, eventDelayMs: 250, password: 'secret', checkCsrf: false, forgetClientsAfter: 0,
        forgetDelayMs: 100, failRequests: new Map()};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--event-delay-ms': opts.eventDelayMs = Number(value()); break;
            case '--password': opts.password = value(); break;
            case '--check-csrf': opts.checkCsrf = true; break;
            case '--forget-clients-after': opts.forgetClientsAfter = Number(value()); break;
            case '--forget-delay-ms': opts.forgetDelayMs = Number(value()); break;
            case '--fail-request': {
                const [n, how] = value().split('=');
                if (!(Number(n) > 0) || !(how === 'reset' || Number(how) >= 400)) {
                    throw new Error('--fail-request wants N=STATUS or N=reset');
                }
                opts.failRequests.set(Number(n), how);
                break;
            }
            default: return false;
        }
        return true;
    });
    return opts;
}

function log(...parts) {
    process.stderr.write(`faye_gws: ${parts.join(' ')}\n`);
}

// ---- GWS notification payloads ---------------------------------------------------------------

// The seed's capabilities, minus StartCallRecording: the recording ones depend on the state.
const BASE_CAPABILITIES = [
    'UpdateUserData', 'SendDtmf', 'InitiateConference', 'Hold', 'SingleStepTransfer',
    'InitiateTransfer', 'AttachUserData', 'DeleteUserDataPair', 'SingleStepConference',
    'DeleteUserData', 'Hangup',
];

const RECORDING_STATES = {
    StartCallRecording: {state: 'Recording', gsip: 'ON', caps: ['PauseCallRecording', 'StopCallRecording']},
    PauseCallRecording: {state: 'Paused', gsip: 'PAUSED', caps: ['ResumeCallRecording', 'StopCallRecording']},
    ResumeCallRecording: {state: 'Recording', gsip: 'ON', caps: ['PauseCallRecording', 'StopCallRecording']},
    StopCallRecording: {state: 'Stopped', gsip: 'OFF', caps: ['StartCallRecording']},
};

// The seed's call object (StopCallRecording sample) with the call id and recording fields swapped in.
function callObject(id, rec) {
    return {
        id,
        state: 'Established',
        callUuid: id,
        connId: '007102719818001f',
        deviceUri: 'http://127.0.0.1:8080/api/v2/devices/631608b3-ceb1-472b-ba05-2ae39555b0d1',
        participants: [
            {e164Number: '', formattedPhoneNumber: '15001', phoneNumber: '15001', digits: '15001'},
        ],
        dnis: '15001',
        callType: 'Internal',
        capabilities: [...BASE_CAPABILITIES, ...rec.caps],
        userData: {
            GSIP_RECORD: rec.gsip,
            IW_BundleUid: '717f9130-a1d9-4092-f8b9-7804ee2592ea',
            IW_CaseUid: 'd7e2c775-edaa-4d1e-b65c-bd48371b43ad',
            GSIP_REC_FN: `${id}_15000_15000_15001_2015-10-16_14-26-23_hpe-voicevm-70-dot-genesyslab-dot-com__%3Ccont_center_id%3E`,
        },
        duration: '353',
        mute: 'Off',
        recordingState: rec.state,
        supervisorListeningIn: false,
        monitoredUserMuted: false,
        monitoring: false,
        uri: `http://127.0.0.1:8080/api/v2/me/calls/${id}`,
        path: `/calls/${id}`,
    };
}

function recordingNotification(id, operationName) {
    return {
        messageType: 'CallStateChangeMessage',
        notificationType: 'CallRecordingStateChange',
        phoneNumber: '15000',
        call: callObject(id, RECORDING_STATES[operationName]),
    };
}

// ---- HTTP helpers ----------------------------------------------------------------------------

function authorized(req, password) {
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization || '');
    if (!m) return false;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon > 0 && decoded.slice(colon + 1) === password;
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

    const bayeux = new faye.NodeAdapter({mount: COMETD_PATH, timeout: 30});
    const csrfTokens = new Map(); // JSESSIONID -> CSRF token (only enforced with --check-csrf)
    const connectedClients = new Set();
    const remoteClients = new Set(); // clientIds handshaken over HTTP or WebSocket (not the publisher's)
    const operations = new Map(); // JSESSIONID -> operations so far
    const requests = new Map(); // JSESSIONID -> POST /api/v2/me/calls requests so far (for --fail-request)

    // A node restart: every remote client forgotten, with its subscriptions (the publisher stays).
    function forgetClients(number) {
        const engine = bayeux._server._engine;
        log(`forgetting ${remoteClients.size} client(s) after operation ${number}`);
        for (const clientId of remoteClients) engine.destroyClient(clientId);
        remoteClients.clear();
        connectedClients.clear();
    }

    bayeux.addExtension({
        // Three declared parameters: Faye then passes the HTTP (or WebSocket upgrade) request.
        incoming(message, request, callback) {
            if (message.channel === '/meta/handshake' && request) {
                // GWS needs the session's credentials on CometD too; this also proves that the
                // clients (and the proxy) really put Authorization/Cookie on CometD requests.
                const ok = authorized(request, opts.password);
                log(`handshake auth=${ok ? 'ok' : 'missing'} cookie=${request.headers.cookie || '-'}`);
                if (!ok) message.error = '401::Unauthorized';
            } else if (message.channel === '/meta/connect' && !connectedClients.has(message.clientId)) {
                // Faye holds every /meta/connect for the full timeout unless the client itself asks
                // for advice.timeout 0 (CometD JS does, aiocometd does not). The CometD server that
                // GWS runs answers the first connect after a handshake at once: do the same.
                connectedClients.add(message.clientId);
                if (request) {
                    log(`first connect ${message.clientId} connectionType=${message.connectionType}`,
                        `via=${request.headers.upgrade ? 'websocket' : request.method}`,
                        `auth=${authorized(request, opts.password) ? 'ok' : 'missing'}`);
                }
                message.advice = {...(message.advice || {}), timeout: 0};
            } else if (message.channel === '/meta/disconnect') {
                connectedClients.delete(message.clientId);
                remoteClients.delete(message.clientId);
            }
            callback(message);
        },
        outgoing(message, request, callback) {
            // Faye answers any handshake error with advice reconnect:"handshake", so a client without
            // credentials would retry for ever; GWS-like servers tell it to give up.
            if (message.channel === '/meta/handshake' && /^401:/.test(message.error || '')) {
                message.advice = {reconnect: 'none', interval: 0};
            }
            if (message.channel === '/meta/handshake' && message.successful && request) {
                remoteClients.add(message.clientId);
            }
            callback(message);
        },
    });

    // Faye's in-process client publishes the GWS notifications.
    const publisher = bayeux.getClient();

    const server = http.createServer(async (req, res) => {
        try {
            await handleRest(req, res);
        } catch (e) {
            log('error', e.stack || e);
            if (!res.headersSent) sendJson(res, 500, {statusCode: 1, statusMessage: String(e.message || e)});
        }
    });

    async function handleRest(req, res) {
        const path = new URL(req.url, 'http://127.0.0.1').pathname;
        const callMatch = /^\/api\/v2\/me\/calls\/([^/]+)$/.exec(path);
        if (!(path === '/api/v2/me' && req.method === 'GET') && !(callMatch && req.method === 'POST')) {
            return sendJson(res, 404, {statusCode: 1, statusMessage: `Not found: ${req.method} ${path}`});
        }
        const body = await readBody(req);
        if (!authorized(req, opts.password)) {
            return sendJson(res, 401, {statusCode: 2, statusMessage: 'Unauthorized'});
        }

        if (path === '/api/v2/me') {
            const session = crypto.randomBytes(16).toString('hex').toUpperCase();
            const token = crypto.randomUUID();
            csrfTokens.set(session, token);
            return sendJson(res, 200, {statusCode: 0, user: {userName: 'agent1', employeeId: 'agent1'}}, {
                'Set-Cookie': `JSESSIONID=${session}; Path=/; HttpOnly`,
                'X-CSRF-HEADER': 'X-CSRF-TOKEN',
                'X-CSRF-TOKEN': token,
            });
        }

        if (opts.checkCsrf) {
            const expected = csrfTokens.get(cookieValue(req, 'JSESSIONID'));
            if (!expected || req.headers['x-csrf-token'] !== expected) {
                return sendJson(res, 403, {statusCode: 3, statusMessage: 'Missing or invalid Csrf token'});
            }
        }

        let operationName;
        try {
            operationName = JSON.parse(body).operationName;
        } catch (e) {
            return sendJson(res, 400, {statusCode: 1, statusMessage: `Invalid JSON body: ${e.message}`});
        }
        if (!Object.hasOwn(RECORDING_STATES, operationName)) {
            return sendJson(res, 400, {statusCode: 1, statusMessage: `Unknown operation ${operationName}`});
        }

        const callId = decodeURIComponent(callMatch[1]);
        const login = cookieValue(req, 'JSESSIONID') || '-';
        const request = (requests.get(login) || 0) + 1;
        requests.set(login, request);
        const failure = opts.failRequests.get(request);
        if (failure === 'reset') {
            log(`resetting request ${request} (${operationName})`);
            return req.socket.resetAndDestroy();
        }
        if (failure) {
            log(`answering request ${request} (${operationName}) ${failure}`);
            return sendJson(res, Number(failure), {statusCode: 1, statusMessage: 'Service Unavailable'});
        }
        const number = (operations.get(login) || 0) + 1;
        operations.set(login, number);
        sendJson(res, 200, {statusCode: 0});
        setTimeout(() => {
            publisher.publish(CALLS_CHANNEL, recordingNotification(callId, operationName)).then(
                () => log(`published ${operationName} for ${callId}`),
                (err) => log(`publish ${operationName} failed: ${JSON.stringify(err)}`));
            if (number === opts.forgetClientsAfter) setTimeout(forgetClients, opts.forgetDelayMs, number);
        }, opts.eventDelayMs);
    }

    // attach() wraps the server's 'request' and 'upgrade' listeners: requests under COMETD_PATH go to
    // Faye, the rest to handleRest above.
    bayeux.attach(server);

    listen(server, opts.port);
}

main();
