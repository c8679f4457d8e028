import type { JsonObject } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { req, table } from './fixtures.js';

/**
 * Not a benchmark and not an assertion on speed (CI machines vary): it prints
 * the cost of a match on a ~50-route table so a regression is visible in the
 * test log. The target is well under 2 µs per match.
 */
describe('router: timing (printed, not asserted)', () => {
  it('matches a realistic 50-route table', () => {
    const routes: JsonObject[] = [];
    const add = (match: JsonObject) => routes.push({ match, route: { cluster: 'c' } });
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
    const t = table(routes);
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
    for (const r of requests) expect(t.match(r), r.path).to.not.equal(undefined);
    const n = 200_000;
    let sink = 0;
    for (let i = 0; i < n; i++) sink += t.match(requests[i % requests.length]!)!.route.index; // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += t.match(requests[i % requests.length]!)!.route.index;
    const ns = Number(process.hrtime.bigint() - t0) / n;
    console.log(`      router: ${routes.length} routes, ${ns.toFixed(0)} ns/match (mixed requests) [${sink > 0 ? 'ok' : ''}]`);
  });
});
