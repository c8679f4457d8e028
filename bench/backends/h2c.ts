/** Cleartext HTTP/2 (prior knowledge) backend: 200 with a small fixed body. */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { announce, backendArgs, onTerminate } from './common.js';

const { host, port } = backendArgs();
const body = Buffer.from('hello from the h2c backend\n');
const headers = { ':status': 200, 'content-type': 'text/plain', 'content-length': body.length };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => {});
  // Drain any request body.
  stream.resume();
  stream.respond(headers);
  stream.end(body);
});
server.on('sessionError', () => {});
server.listen(port, host, () => announce((server.address() as AddressInfo).port));
onTerminate(() => server.close());
