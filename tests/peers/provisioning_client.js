#!/usr/bin/env node
// One agent driven by Genesys' own Provisioning API v3 SDK (npm "genesys-provisioning-client-js", CometD JS 5
// inside): it tags each asynchronous operation with a uuid it makes (POST .../operations/get-users?_aioId=<uuid>)
// and calls the operation's callback only for the CometD result that carries that uuid back.
//
//   node provisioning_client.js --url http://127.0.0.1:PORT --token T --api-key K --agent NAME
//       [--ops users:1,users:2,skills] [--pause-ms 0] [--timeout-ms 30000]
//
// It initializes (POST /initialize-provisioning, the session cookie, CometD handshake and subscribe to /*),
// then starts each operation in turn (users:N = getUsers({limit: N, filterParameters: NAME}), skills =
// getUsedSkills()), waiting --pause-ms before each and for its HTTP reply, not for its result: with no pause
// several are in flight at once. Once every callback was called it logs out. stdout: JSON lines: reply (per
// operation), event (per callback: own = the result is this operation's, delay_ms after its reply), done |
// error. A result that is not the operation's own is an error.
'use strict';

const {agentArgs, emit, now, runClient, sleep, withTimeout} = require('./peerlib');

function parseArgs(argv) {
    return agentArgs(argv, {ops: ['users:1', 'users:2', 'skills']}, (arg, value, opts) => {
        if (arg !== '--ops') return false;
        opts.ops = value().split(',').filter(Boolean);
        return true;
    });
}

// Whether a callback's data is the result of ``op`` for ``agent``.
function isOwn(op, agent, data) {
    const [kind, n] = op.split(':');
    if (kind === 'skills') return Array.isArray(data.skills) && data.skills.includes(`${agent}-skill`);
    return Array.isArray(data.users) && data.users.length === Number(n)
        && data.users.every((u) => u.firstName === agent);
}

async function main(opts) {
    const {ProvisioningApi} = require('genesys-provisioning-client-js');
    const api = new ProvisioningApi(opts.apiKey, opts.url);
    await withTimeout(api.initialize({token: opts.token}), opts.timeoutMs, 'the SDK initialization');
    const results = opts.ops.map((op, index) => {
        let got;
        const promise = new Promise((resolve) => { got = resolve; });
        return {op, index, promise, got, replyT: null};
    });
    for (const result of results) {
        await sleep(opts.pauseMs);
        const callback = (data) => {
            const t = now();
            const own = isOwn(result.op, opts.agent, data);
            emit({type: 'event', op: result.op, index: result.index, own, t,
                delay_ms: result.replyT === null ? null : Math.round((t - result.replyT) * 1000) / 1000});
            result.got(own ? null : new Error(`${result.op} got a result not its own: ${JSON.stringify(data)}`));
        };
        const [kind, n] = result.op.split(':');
        const reply = kind === 'skills' ? await api.operations.getUsedSkills(callback)
            : await api.operations.getUsers({limit: Number(n), filterParameters: opts.agent}, callback);
        result.replyT = now();
        emit({type: 'reply', op: result.op, index: result.index, body: reply, t: result.replyT});
    }
    for (const result of results) {
        const error = await withTimeout(result.promise, opts.timeoutMs, `the result of ${result.op}`);
        if (error) throw error;
    }
    await withTimeout(api.destroy(), 5000, 'the logout');
    emit({type: 'done', t: now()});
}

runClient(parseArgs, main);
