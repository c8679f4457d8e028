/** HTTP/1.1 keep-alive backend: 200 with a small fixed body for every request. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, backendArgs, onTerminate } from './common.js';

const { host, port } = backendArgs();
const body = Buffer.from('hello from the http/1.1 backend\n');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };

const server = http.createServer((req, res) => {
  // Drain any request body so the connection stays reusable.
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(port, host, () => announce((server.address() as AddressInfo).port));
onTerminate(() => {
  server.close();
  server.closeAllConnections();
});
