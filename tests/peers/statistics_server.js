#!/usr/bin/env node
// A stand-in for the Genesys Statistics API v3, built on the CometD project's own Node server (npm
// "cometd-nodejs-server"), for the gwsvcr tests that drive the real Statistics SDK (npm
// "genesys-statistics-client-js"): Bearer token and x-api-key on every request, no session cookie of
// its own (the CometD server sets BAYEUX_BROWSER).
//
//   node statistics_server.js [--port 0] [--event-delay-ms 250] [--snapshot-delay-ms 30]
//       [--agent TOKEN=NAME ...] [--api-key K]
//
// Prints "gwsvcr: listening on http://127.0.0.1:PORT" once it accepts connections. Under /statistics/v3:
//   /notifications                CometD long-polling; a subscribe to /statistics/v3/service gets the
//                                 service state --snapshot-delay-ms later
//   POST /subscriptions           {operationId, data: {statistics: [{statisticId, objectId, ...}]}}
//                                 -> {status: {code: 0}, data: {subscriptionId: operationId, statistics}},
//                                 then --event-delay-ms later an update on /statistics/v3/updates to the
//                                 CometD sessions of that token only
//   DELETE /subscriptions/{id}    closes it
'use strict';

const http = require('node:http');
const cometd = require('cometd-nodejs-server');
const {eachArg, listen, readBody, sendJson} = require('./peerlib');

const BASE = '/statistics/v3';
const SERVICE = `${BASE}/service`;
const UPDATES = `${BASE}/updates`;

function parseArgs(argv) {
    const opts = {port: 0, eventDelayMs: 250, snapshotDelayMs: 30, agents: new Map(), apiKey: 'statistics-api-key'};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--event-delay-ms': opts.eventDelayMs = Number(value()); break;
            case '--snapshot-delay-ms': opts.snapshotDelayMs = Number(value()); break;
            case '--agent': { const [token, name] = value().split('='); opts.agents.set(token, name); break; }
            case '--api-key': opts.apiKey = value(); break;
            default: return false;
        }
        return true;
    });
    return opts;
}

function main() {
    const opts = parseArgs(process.argv.slice(2));
    const agentOf = (req) => {
        const bearer = /^Bearer\s+(\S+)$/i.exec((req && req.headers.authorization) || '');
        if (!bearer || req.headers['x-api-key'] !== opts.apiKey) return null;
        return opts.agents.get(bearer[1]) || null;
    };
    const sessions = new Map(); // agent -> Set<ServerSession>
    const server = cometd.createCometDServer({timeout: 30000, maxInterval: 10000});
    server.policy = {
        canHandshake(session, message, callback) {
            const agent = agentOf(server.context && server.context.request);
            if (agent) {
                if (!sessions.has(agent)) sessions.set(agent, new Set());
                sessions.get(agent).add(session);
                session.addListener('removed', () => sessions.get(agent).delete(session));
            }
            callback(null, Boolean(agent));
        },
    };
    server.createServerChannel(SERVICE).addListener('subscribed', (channel, session) => {
        setTimeout(() => session.deliver(null, SERVICE, {serviceState: 'Started', since: '2026-12-01'}),
            opts.snapshotDelayMs);
    });
    const open = new Map(); // subscriptionId -> agent

    async function handle(req, res) {
        const path = new URL(req.url, 'http://127.0.0.1').pathname;
        const agent = agentOf(req);
        if (path.startsWith(`${BASE}/notifications`)) {
            if (!agent) {
                await readBody(req);
                return sendJson(res, 401, {status: {code: 40001, message: 'Bearer token and x-api-key'}});
            }
            return server.handle(req, res);
        }
        const text = await readBody(req);
        if (!agent) return sendJson(res, 401, {status: {code: 40001, message: 'Bearer token and x-api-key'}});
        if (path === `${BASE}/subscriptions` && req.method === 'POST') {
            const body = JSON.parse(text || '{}');
            const id = body.operationId;
            const statistics = ((body.data || {}).statistics || []).map((s) => ({...s, value: {state: 'Ready'}}));
            open.set(id, agent);
            sendJson(res, 200, {status: {code: 0}, data: {subscriptionId: id, statistics}});
            setTimeout(() => {
                const update = {subscriptionId: id, statistics: statistics.map((s) => ({
                    statisticId: s.statisticId, objectId: s.objectId, value: {state: 'NotReady'}}))};
                for (const session of sessions.get(agent) || []) session.deliver(null, UPDATES, update);
            }, opts.eventDelayMs);
            return undefined;
        }
        const one = new RegExp(`^${BASE}/subscriptions/([^/]+)$`).exec(path);
        if (one && req.method === 'DELETE') {
            const known = open.get(decodeURIComponent(one[1])) === agent;
            open.delete(decodeURIComponent(one[1]));
            return sendJson(res, known ? 200 : 404, {status: {code: known ? 0 : 404}});
        }
        return sendJson(res, 404, {status: {code: 404, message: `Not found: ${req.method} ${path}`}});
    }

    listen(http.createServer((req, res) => {
        handle(req, res).catch((e) => sendJson(res, 500, {status: {code: 500, message: String(e)}}));
    }), opts.port);
}

main();
