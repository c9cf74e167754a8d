#!/usr/bin/env node
// One agent driven by Genesys' own Statistics API v3 SDK (npm "genesys-statistics-client-js", CometD JS 3
// inside): Bearer token and x-api-key, no session cookie of its own.
//
//   node statistics_client.js --url http://127.0.0.1:PORT --token T --api-key K --agent NAME
//       [--pause-ms 0] [--timeout-ms 30000]
//
// It initializes (CometD handshake, subscriptions to /statistics/v3/service and /statistics/v3/updates,
// sent without waiting for their replies), waits --pause-ms, opens a statistics subscription named by a uuid it makes (POST /subscriptions), waits
// for the update of that subscription, waits --pause-ms, closes it (DELETE /subscriptions/{id}) and
// disconnects. stdout: JSON lines: service (the snapshot and its delay after the subscribe's reply),
// reply, event (its delay after the reply to the operation that opened it), done | error. An update
// that is not this agent's own is an error.
'use strict';

const crypto = require('node:crypto');
const {agentArgs, emit, now, runClient, sleep, withTimeout} = require('./peerlib');

async function main(opts) {
    require('winston').level = 'error';
    const Statistics = require('genesys-statistics-client-js');
    const api = new Statistics(opts.apiKey, opts.url);
    const cometd = api.notifications.cometd;
    let subscribedAt = null;
    let serviceSeen;
    const service = new Promise((resolve) => { serviceSeen = resolve; });
    cometd.addListener('/meta/subscribe', (reply) => {
        if (reply.subscription === '/statistics/v3/service' && reply.successful) subscribedAt = now();
    });
    api.on(api.SERVICE_CHANGE_EVENT, (data) => {
        const t = now();
        const delay = subscribedAt === null ? null : Math.round((t - subscribedAt) * 1000) / 1000;
        emit({type: 'service', data, delay_ms: delay, t});
        serviceSeen();
    });
    let updated;
    const updates = [];
    api.on(api.UPDATES_EVENT, (data) => { updates.push({data, t: now()}); if (updated) updated(); });

    // initialize() resolves on the handshake, before its subscribes are answered: the subscription below
    // may well reach the server between the subscribe and the snapshot that subscribe brings
    await withTimeout(api.initialize(opts.token), opts.timeoutMs, 'the SDK initialization');
    await sleep(opts.pauseMs);
    const operationId = crypto.randomUUID();
    const opened = await api.createSubscription(operationId, [{statisticId: `state-${opts.agent}`,
        objectId: opts.agent, objectType: 'Agent', definition: {notificationMode: 'Immediate'}}]);
    const replyT = now();
    emit({type: 'reply', op: 'create', operationId, body: opened, t: replyT});
    while (updates.length === 0) {
        await withTimeout(new Promise((resolve) => { updated = resolve; }), opts.timeoutMs, 'the update');
    }
    const {data, t} = updates.shift();
    const own = data.subscriptionId === operationId && data.statistics.every((s) => s.objectId === opts.agent);
    emit({type: 'event', op: 'create', subscriptionId: data.subscriptionId, own,
        delay_ms: Math.round((t - replyT) * 1000) / 1000, t});
    if (!own) throw new Error(`an update that is not ${opts.agent}'s: ${JSON.stringify(data)}`);
    await withTimeout(service, opts.timeoutMs, 'the service snapshot');
    await sleep(opts.pauseMs);
    const closed = await api.deleteSubscription(operationId);
    emit({type: 'reply', op: 'delete', body: closed, t: now()});
    if (updates.length) throw new Error(`unexpected updates: ${JSON.stringify(updates)}`);
    await withTimeout(new Promise((resolve) => cometd.disconnect(resolve)), 5000, 'the disconnect reply');
    emit({type: 'done', t: now()});
}

runClient(agentArgs, main);
