/**
 * The load-balancing benchmark's upstream (bench/lb.ts): three HTTP/1.1
 * keep-alive endpoints in one process. The last one is the sick one: it adds
 * 50 ms to 20 % of its responses, chosen by a seeded generator (request n of
 * that endpoint is slow or not the same way in every run).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { seededRandom } from '../../src/core/random.js';
import { onTerminate } from './common.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'slow-ms': { type: 'string', default: '50' },
    'slow-fraction': { type: 'string', default: '0.2' },
    seed: { type: 'string', default: '12' },
  },
});
const host = values.host ?? '127.0.0.1';
const slowMs = Number(values['slow-ms']);
const slowFraction = Number(values['slow-fraction']);
const draw = seededRandom(Number(values.seed));

const body = Buffer.from('hello from an lb backend\n');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };

function serve(sick: boolean): http.Server {
  const server = http.createServer((req, res) => {
    req.resume();
    const answer = (): void => {
      res.writeHead(200, headers);
      res.end(body);
    };
    if (sick && draw.next() < slowFraction) setTimeout(answer, slowMs);
    else answer();
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  return server;
}

const servers = [serve(false), serve(false), serve(true)];
await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, host, r))));
// One line for the orchestrator: the three ports, the sick one last.
process.stdout.write(`LISTENING ${servers.map((s) => (s.address() as AddressInfo).port).join(',')}\n`);
onTerminate(() => {
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
});
