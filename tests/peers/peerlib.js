// What the Node peers (servers and clients driven by the gwsvcr tests) share: argument reading, the
// JSON-lines output of the clients, and the HTTP helpers of the servers.
'use strict';

const {performance} = require('node:perf_hooks');

// Calls handle(arg, value) for each command-line argument; value() takes the argument's value. A
// handler that returns false names an unknown argument.
function eachArg(argv, handle) {
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new Error(`missing value for ${arg}`);
            return argv[++i];
        };
        if (handle(arg, value) === false) throw new Error(`unknown argument ${arg}`);
    }
}

// The options of one agent of a Genesys SDK: --url --token --api-key --agent [--pause-ms 0] [--timeout-ms 30000];
// more(arg, value, opts) takes the client's own (false: unknown).
function agentArgs(argv, defaults = {}, more = () => false) {
    const opts = {url: null, token: null, apiKey: null, agent: null, pauseMs: 0, timeoutMs: 30000, ...defaults};
    eachArg(argv, (arg, value) => {
        switch (arg) {
            case '--url': opts.url = value().replace(/\/+$/, ''); break;
            case '--token': opts.token = value(); break;
            case '--api-key': opts.apiKey = value(); break;
            case '--agent': opts.agent = value(); break;
            case '--pause-ms': opts.pauseMs = Number(value()); break;
            case '--timeout-ms': opts.timeoutMs = Number(value()); break;
            default: return more(arg, value, opts);
        }
        return true;
    });
    if (!opts.url || !opts.token || !opts.apiKey || !opts.agent) throw new Error('--url --token --api-key --agent');
    return opts;
}

// ---- clients: one JSON object per line on stdout, t = ms since process start (monotonic) ---------

const now = () => Math.round(performance.now() * 1000) / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function emit(record) {
    // stdout to a pipe or file is synchronous on Linux, so process.exit() right after loses nothing.
    process.stdout.write(JSON.stringify(record) + '\n');
}

function fail(message) {
    emit({type: 'error', message});
    process.exit(1);
}

// What a failure says: an HTTP error's status and body, an error's message, else the value itself.
function describe(e) {
    if (!e) return String(e);
    if (e.status) return `HTTP ${e.status}: ${e.response && e.response.text}`;
    if (e.message) return e.message;
    return typeof e === 'string' ? e : JSON.stringify(e);
}

// Runs a client: its options from the command line (parseArgs(argv) throws on bad ones), main(options) within
// options.timeoutMs; exit 0 once main resolved, else an error record and exit 1.
function runClient(parseArgs, main) {
    let options;
    try {
        options = parseArgs(process.argv.slice(2));
    } catch (e) {
        fail(e.message);
    }
    setTimeout(() => fail(`global timeout: ${options.timeoutMs} ms`), options.timeoutMs);
    main(options).then(() => process.exit(0), (e) => fail(describe(e)));
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- servers ---------------------------------------------------------------------------------

function sendJson(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, {
        'Content-Type': 'application/json;charset=UTF-8',
        'Content-Length': Buffer.byteLength(text),
        ...headers,
    });
    res.end(text);
}

function cookieValue(req, name) {
    for (const part of (req.headers.cookie || '').split(';')) {
        const [k, ...v] = part.trim().split('=');
        if (k === name) return v.join('=');
    }
    return undefined;
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

// Prints the one line the tests wait for, once the server accepts connections.
function listen(server, port) {
    server.listen(port, '127.0.0.1', () => {
        process.stdout.write(`gwsvcr: listening on http://127.0.0.1:${server.address().port}\n`);
    });
    const shutdown = () => {
        server.close();
        process.exit(0);
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
}

module.exports = {
    agentArgs, eachArg, now, sleep, emit, fail, describe, runClient, withTimeout, sendJson, cookieValue, readBody, listen,
};
