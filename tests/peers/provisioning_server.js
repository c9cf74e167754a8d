#!/usr/bin/env node
// A stand-in for the Genesys Provisioning API v3, built on the CometD project's own Node server (npm
// "cometd-nodejs-server"), for the gwsvcr tests that drive the real Provisioning SDK (npm
// "genesys-provisioning-client-js"), whose asynchronous operations are tagged with a uuid the SDK makes.
//
//   node provisioning_server.js [--port 0] [--event-delay-ms 200] [--api-key K] [--agent TOKEN=NAME ...]
//
// Prints "gwsvcr: listening on http://127.0.0.1:PORT" once it accepts connections. Under /provisioning/v3:
//   POST /initialize-provisioning     Authorization: Bearer <a known token>, x-api-key -> {status: {code: 0},
//                                     data: {sessionId}} (a new id each time, as the SDK's model has it) and
//                                     Set-Cookie PROVISIONING_SESSIONID
//   /notifications                    CometD long-polling (needs the session cookie and the API key)
//   POST /operations/get-users?_aioId=<uuid>&limit=N[&filterParameters=S]
//   POST /operations/get-used-skills?_aioId=<uuid>
//                                     -> {status: {code: 1}} (accepted), then the result on CometD channel
//                                     /operations to the CometD sessions of that provisioning session only:
//                                     {channel: 'operations', data: {id: <uuid>, data: {data: '<JSON string>'}}},
//                                     the JSON string {aioId, data: {...}} (the SDK parses it and hands its data
//                                     to the callback of that uuid); get-users after --event-delay-ms, its users
//                                     named after the agent and filterParameters; get-used-skills after half that
//   POST /logout                      ends the session
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const cometd = require('cometd-nodejs-server');
const {cookieValue, eachArg, listen, readBody, sendJson} = require('./peerlib');

const BASE = '/provisioning/v3';
const COOKIE = 'PROVISIONING_SESSIONID';

function parseArgs(argv) {
    const opts = {port: 0, eventDelayMs: 200, apiKey: 'provisioning-api-key', agents: new Map()};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--event-delay-ms': opts.eventDelayMs = Number(value()); break;
            case '--api-key': opts.apiKey = value(); break;
            case '--agent': { const [token, name] = value().split('='); opts.agents.set(token, name); break; }
            default: return false;
        }
        return true;
    });
    return opts;
}

function users(agent, query) {
    const limit = Number(query.get('limit') || 10);
    const filter = query.get('filterParameters') || agent;
    return Array.from({length: limit}, (_, i) => ({DBID: 100 + i, userName: `${filter}-user${i + 1}`,
        firstName: filter, lastName: `User${i + 1}`, enabled: true}));
}

function main() {
    const opts = parseArgs(process.argv.slice(2));
    const sessions = new Map(); // PROVISIONING_SESSIONID -> {agent, cometd: Set<ServerSession>}
    const sessionOf = (req) => (req && req.headers['x-api-key'] === opts.apiKey
        && sessions.get(cookieValue(req, COOKIE))) || null;
    const server = cometd.createCometDServer({timeout: 30000, maxInterval: 10000});
    server.policy = {
        canHandshake(session, message, callback) {
            const owner = sessionOf(server.context && server.context.request);
            if (owner) {
                owner.cometd.add(session);
                session.addListener('removed', () => owner.cometd.delete(session));
            }
            callback(null, Boolean(owner));
        },
    };

    function later(owner, ms, aioId, data) {
        setTimeout(() => {
            const result = {channel: 'operations', data: {id: aioId, data: {data: JSON.stringify({aioId, data})}}};
            for (const session of owner.cometd) session.deliver(null, '/operations', result);
        }, ms);
    }

    async function handle(req, res) {
        const url = new URL(req.url, 'http://127.0.0.1');
        const path = url.pathname;
        if (path.startsWith(`${BASE}/notifications`)) {
            if (!sessionOf(req)) {
                await readBody(req);
                return sendJson(res, 401, {status: {code: 40001, message: 'the session cookie and x-api-key'}});
            }
            return server.handle(req, res);
        }
        await readBody(req);
        if (path === `${BASE}/initialize-provisioning` && req.method === 'POST') {
            const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization || '');
            const agent = bearer && opts.agents.get(bearer[1]);
            if (!agent || req.headers['x-api-key'] !== opts.apiKey) {
                return sendJson(res, 401, {status: {code: 40001, message: 'Bearer token and x-api-key'}});
            }
            const id = crypto.randomBytes(16).toString('hex');
            sessions.set(id, {agent, cometd: new Set()});
            return sendJson(res, 200, {status: {code: 0}, data: {sessionId: crypto.randomUUID()}},
                {'Set-Cookie': `${COOKIE}=${id}; Path=/; HttpOnly`});
        }
        const owner = sessionOf(req);
        if (!owner) return sendJson(res, 401, {status: {code: 40001, message: 'no provisioning session'}});
        const aioId = url.searchParams.get('_aioId');
        if (path === `${BASE}/operations/get-users` && req.method === 'POST' && aioId) {
            sendJson(res, 200, {status: {code: 1}});
            return later(owner, opts.eventDelayMs, aioId, {users: users(owner.agent, url.searchParams)});
        }
        if (path === `${BASE}/operations/get-used-skills` && req.method === 'POST' && aioId) {
            sendJson(res, 200, {status: {code: 1}});
            return later(owner, opts.eventDelayMs / 2, aioId, {skills: [`${owner.agent}-skill`, 'english']});
        }
        if (path === `${BASE}/logout` && req.method === 'POST') {
            sessions.delete(cookieValue(req, COOKIE));
            return sendJson(res, 200, {status: {code: 0}});
        }
        return sendJson(res, 404, {status: {code: 404, message: `Not found: ${req.method} ${path}`}});
    }

    listen(http.createServer((req, res) => {
        handle(req, res).catch((e) => sendJson(res, 500, {status: {code: 500, message: String(e)}}));
    }), opts.port);
}

main();
