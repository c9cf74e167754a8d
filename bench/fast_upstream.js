#!/usr/bin/env node
// A fast upstream for the recorder-overhead benchmark: answers every request like GWS answers a
// call-recording operation (HTTP 200, {"statusCode":0}), with nothing else to do, so that what is
// measured through a proxy in front of it is the proxy's own cost.
//
//   node fast_upstream.js [--port 0]
//
// Prints "gwsvcr: listening on http://127.0.0.1:PORT" on stdout when ready; SIGTERM stops it (exit 0).
'use strict';

const http = require('node:http');

let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') port = Number(argv[++i]);
    else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
}

const BODY = Buffer.from('{"statusCode":0}');
const server = http.createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
        res.writeHead(200, {'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': BODY.length});
        res.end(BODY);
    });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`gwsvcr: listening on http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
setTimeout(() => process.exit(0), 30 * 60 * 1000).unref();  // never outlive a forgotten run
