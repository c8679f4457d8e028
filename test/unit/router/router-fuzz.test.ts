import type { JsonObject } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom, type Random } from '../../../src/core/random.js';
import { RouteTable, validateRouteTemplate, type RouteRequest } from '../../../src/proxy/router/index.js';
import { parseRouteTemplate } from '../../../src/proxy/router/route-template.js';
import { referenceMatch } from './reference-matcher.js';
import { HEADER_MATCH_SAMPLES, routeConfig } from './fixtures.js';

/**
 * Property tests: random tables and random requests, checked against the
 * naive reference matcher. Small alphabets make collisions (and therefore
 * precedence decisions) frequent. Every loop is bounded by a count and a
 * wall-clock budget, so a hang shows up as a failure, not a stuck run.
 */

const pick = <T>(rnd: Random, xs: readonly T[]): T => xs[rnd.int(xs.length)]!;
const LITERALS = ['a', 'b', 'v1', 'x:y'];
const PATH_SEGMENTS = ['a', 'b', 'v1', 'c', '', '%41', '%zz', 'a%2Fb', 'a:go', ':go', 'b:stop', 'x:y', 'x:y:go', '..'];
const VERBS = ['go', 'stop'];
const SERVICES = ['a', 'v1', 'svc.S'];
const METHODS = ['GET', 'POST', 'PUT'];
const BUDGET_MS = 8000;

function randomTemplate(rnd: Random): string {
  const n = 1 + rnd.int(4);
  const segs: string[] = [];
  let v = 0;
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    const k = rnd.int(last ? 7 : 5);
    if (k <= 1) segs.push(pick(rnd, LITERALS.filter((l) => !last || !l.includes(':'))));
    else if (k === 2) segs.push('*');
    else if (k === 3) segs.push(`{p${v++}}`);
    else if (k === 4) segs.push(`{p${v++}=${pick(rnd, ['a/*', '*/b', '*'])}}`);
    else if (k === 5) segs.push('**');
    else segs.push(`{p${v++}=${pick(rnd, ['**', 'a/**', '*/**'])}}`);
  }
  return `/${segs.join('/')}${rnd.int(3) === 0 ? `:${pick(rnd, VERBS)}` : ''}`;
}

function randomPath(rnd: Random): string {
  if (rnd.int(30) === 0) return pick(rnd, ['', '*', 'a/b', '//', '/']);
  const n = rnd.int(6);
  const segs = Array.from({ length: n }, () => pick(rnd, PATH_SEGMENTS));
  let p = `/${segs.join('/')}`;
  if (rnd.int(4) === 0) p += `:${pick(rnd, VERBS)}`;
  return p;
}

function randomMatch(rnd: Random): JsonObject {
  const m: JsonObject = {};
  switch (rnd.int(6)) {
    case 0:
      m['path'] = randomPath(rnd) || '/';
      break;
    case 1:
      m['prefix'] = randomPath(rnd).slice(0, 1 + rnd.int(6));
      break;
    case 2:
      m['regex'] = pick(rnd, ['/a/.*', '/[ab]/.*', '.*go', '/v1/[^/]+', '/.*']);
      break;
    case 5: {
      const service = pick(rnd, SERVICES);
      m['grpc'] = rnd.int(2) === 0 ? { service } : { service, method: pick(rnd, LITERALS) };
      if (rnd.int(2) === 0) return m;
      m['template'] = randomTemplate(rnd);
      break;
    }
    default:
      m['template'] = randomTemplate(rnd);
  }
  if (rnd.int(4) === 0) m['methods'] = METHODS.filter(() => rnd.int(2) === 0);
  if (rnd.int(4) === 0) {
    m['headers'] = [{ ...pick(rnd, HEADER_MATCH_SAMPLES) }];
  }
  return m;
}

function randomRequest(rnd: Random): RouteRequest {
  const path = rnd.int(4) === 0 ? `/${pick(rnd, SERVICES)}/${pick(rnd, LITERALS)}` : randomPath(rnd);
  const h = rnd.int(4);
  return {
    host: 'h',
    method: pick(rnd, METHODS),
    path,
    headers: h === 0 ? {} : h === 1 ? { 'x-h': '1' } : h === 2 ? { 'x-h': '2' } : { 'x-h': ['1', '2'] },
    isGrpc: rnd.int(2) === 0,
  };
}

describe('router: property tests against a naive reference matcher', function () {
  this.timeout(BUDGET_MS * 2);

  it('agrees with the reference on random tables and requests', () => {
    const rnd = seededRandom(20240601);
    const deadline = Date.now() + BUDGET_MS;
    let matched = 0;
    let checked = 0;
    for (let tableNo = 0; tableNo < 400 && Date.now() < deadline; tableNo++) {
      const routes: JsonObject[] = Array.from({ length: 1 + rnd.int(12) }, (_, i) => ({
        name: `r${i}`,
        match: randomMatch(rnd),
        route: { cluster: 'c' },
      }));
      const t = RouteTable.compile(routeConfig({ virtualHosts: [{ name: 'vh', domains: ['*'], routes }] }));
      for (let i = 0; i < 50; i++) {
        const request = randomRequest(rnd);
        const got = t.match(request);
        const want = referenceMatch(routes, request);
        const context = () => JSON.stringify({ request, routes });
        expect(got?.route.name, context()).to.equal(want?.name);
        if (want) expect(got!.params, context()).to.deep.equal(want.params);
        checked++;
        if (want) matched++;
      }
    }
    expect(checked).to.be.greaterThan(5000);
    // The generator must produce enough hits for the comparison to mean something.
    expect(matched / checked).to.be.greaterThan(0.3);
  });

  it('never throws on arbitrary paths, hosts and headers', () => {
    const rnd = seededRandom(7);
    const routes = Array.from({ length: 40 }, (_, i) => ({ name: `r${i}`, match: randomMatch(rnd), route: { cluster: 'c' } }));
    const t = RouteTable.compile(
      routeConfig({ virtualHosts: [{ name: 'vh', domains: ['*', 'a.com', '*.b.com'], routes }] }),
    );
    const chars = '/%:*{}?.aZ\u00e9\u20ac\ud83d\ude00\ud800 \t';
    const deadline = Date.now() + BUDGET_MS;
    for (let i = 0; i < 20_000 && Date.now() < deadline; i++) {
      const s = () => Array.from({ length: rnd.int(40) }, () => chars[rnd.int(chars.length)]).join('');
      const path = rnd.int(2) === 0 ? `/${s()}` : s();
      t.match({ host: s(), method: s(), path, headers: { 'x-h': s() }, isGrpc: rnd.int(2) === 0 });
    }
    const long = `/${'a/'.repeat(10_000)}`;
    t.match({ host: 'a.com', method: 'GET', path: long, headers: {}, isGrpc: false });
  });

  it('the template parser never throws, and what it accepts compiles', () => {
    const rnd = seededRandom(99);
    const chars = ['/', '{', '}', '=', '*', '**', ':', 'a', 'b', '.', '_', '1', ' '];
    for (let i = 0; i < 20_000; i++) {
      const t = `/${Array.from({ length: rnd.int(12) }, () => pick(rnd, chars)).join('')}`;
      const parsed = parseRouteTemplate(t);
      expect(validateRouteTemplate(t)).to.equal(typeof parsed === 'string' ? parsed : undefined);
      if (typeof parsed !== 'string') {
        RouteTable.compile(routeConfig({ virtualHosts: [{ domains: ['*'], routes: [{ match: { template: t }, route: { cluster: 'c' } }] }] }));
      }
    }
  });
});
