/**
 * Route matching cost on a realistic ~50-route table (static paths, templates
 * with verbs, prefixes with methods, gRPC services, a header match, regexes).
 * Prints ns per match for mixed requests; it asserts nothing about speed (CI
 * machines vary), only that every request matches. The target is well under
 * 2 µs per match. Bounded: --iterations matches per round, --rounds rounds
 * after one warm-up round.
 *
 *   node --import tsx bench/router.ts [--iterations 200000] [--rounds 5]
 */
import { fromJson, type JsonObject } from '@bufbuild/protobuf';
import { parseArgs } from 'node:util';
import { RouteConfigurationSchema } from '../src/gen/outrigger/config/v1/route_pb.js';
import { RouteTable, type RouteRequest } from '../src/proxy/router/index.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '5' },
  },
});
const iterations = Number(values.iterations);
const rounds = Number(values.rounds);
if (!(iterations > 0 && rounds > 0)) throw new Error('--iterations and --rounds must be positive numbers');

const routes: JsonObject[] = [];
const add = (match: JsonObject): void => void routes.push({ match, route: { cluster: 'c' } });
for (let i = 0; i < 10; i++) add({ path: `/static/page${i}.html` });
for (let i = 0; i < 15; i++) add({ template: `/v1/res${i}/{id}/items/{item}` });
for (let i = 0; i < 5; i++) add({ template: `/v1/res${i}/{name=things/*}:publish` });
for (let i = 0; i < 8; i++) add({ prefix: `/api/v${i}/`, methods: ['GET', 'POST'] });
for (let i = 0; i < 6; i++) add({ grpc: { service: `pkg.v1.Service${i}`, ...(i % 2 ? { method: 'Get' } : {}) } });
add({ prefix: '/', headers: [{ name: 'x-canary', exact: '1' }] });
add({ regex: '/legacy/[0-9]+/.*' });
add({ regex: '/old/.*' });
add({ path: '/healthz', methods: ['GET'] });
add({ template: '/v2/{rest=**}' });
add({ prefix: '/' });
const table = RouteTable.compile(fromJson(RouteConfigurationSchema, { name: 'rc', virtualHosts: [{ name: 'vh', domains: ['*'], routes }] }));

const req = (path: string, extra: Partial<RouteRequest> = {}): RouteRequest => ({ host: 'example.com', method: 'GET', path, headers: {}, isGrpc: false, ...extra });
const requests = [
  req('/static/page7.html'),
  req('/v1/res12/abc/items/42'),
  req('/v1/res3/things/x:publish'),
  req('/api/v5/users/7'),
  req('/pkg.v1.Service3/Get', { isGrpc: true, method: 'POST' }),
  req('/pkg.v1.Service4/List', { isGrpc: true, method: 'POST' }),
  req('/legacy/12/x'),
  req('/nothing/here', { headers: { 'x-canary': '1' } }),
];
for (const r of requests) if (!table.match(r)) throw new Error(`no match for ${r.path}`);

/** Runs one round; the sum of route indexes keeps the matches from being optimised away. */
function round(): { ns: number; sink: number } {
  let sink = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += table.match(requests[i % requests.length]!)!.route.index;
  return { ns: Number(process.hrtime.bigint() - t0) / iterations, sink };
}

round(); // warm-up
const results = Array.from({ length: rounds }, () => round().ns).sort((a, b) => a - b);
const median = results[Math.floor(results.length / 2)]!;
console.log(`router: ${routes.length} routes, ${requests.length} mixed requests, ${iterations} matches x ${rounds} rounds`);
console.log(`  ns/match: median ${median.toFixed(0)}, min ${results[0]!.toFixed(0)}, max ${results.at(-1)!.toFixed(0)}`);
