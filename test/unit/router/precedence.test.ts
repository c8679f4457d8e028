import type { JsonObject } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { RouteTable } from '../../../src/proxy/router/index.js';
import { r, req, routeConfig, table, winner } from './fixtures.js';
import type { RouteRequest } from '../../../src/proxy/router/index.js';

/** The winner must not depend on declaration order unless the rule says so. */
function inBothOrders(routes: JsonObject[], request: RouteRequest | string, expected: string | undefined): void {
  expect(winner(table(routes), request), 'declared order').to.equal(expected);
  expect(winner(table([...routes].reverse()), request), 'reversed order').to.equal(expected);
}

const SVC = 'pkg.Svc';

describe('router: precedence (most specific wins, not first match)', () => {
  it('exact path > template > prefix > regex', () => {
    const all = [
      r('regex', { regex: '/a/.*' }),
      r('prefix', { prefix: '/a/' }),
      r('template', { template: '/a/{x}' }),
      r('path', { path: '/a/b' }),
    ];
    inBothOrders(all, '/a/b', 'path');
    inBothOrders(all.slice(0, 3), '/a/b', 'template');
    inBothOrders(all.slice(0, 2), '/a/b', 'prefix');
    inBothOrders(all.slice(0, 1), '/a/b', 'regex');
  });

  it('the category decides before length: a short template beats a long prefix', () => {
    inBothOrders([r('prefix', { prefix: '/api/v1/users/' }), r('template', { template: '/{a=**}' })], '/api/v1/users/7', 'template');
  });

  describe('templates, segment by segment from the left', () => {
    it('literal > variable > "**"', () => {
      const routes = [r('multi', { template: '/a/**' }), r('var', { template: '/a/{x}' }), r('lit', { template: '/a/b' })];
      inBothOrders(routes, '/a/b', 'lit');
      inBothOrders(routes, '/a/c', 'var');
      inBothOrders(routes, '/a/c/d', 'multi');
    });

    it('the first differing segment decides, whatever follows', () => {
      inBothOrders([r('late', { template: '/{x}/b/c' }), r('early', { template: '/a/{y}/{z}' })], '/a/b/c', 'early');
      inBothOrders([r('multi', { template: '/a/b/**' }), r('var', { template: '/a/{x}/c' })], '/a/b/c', 'multi');
    });

    it('"*" and "{x}" are equally specific: more conditions, then declaration order', () => {
      expect(winner(table([r('star', { template: '/a/*' }), r('var', { template: '/a/{x}' })]), '/a/b')).to.equal('star');
      expect(winner(table([r('var', { template: '/a/{x}' }), r('star', { template: '/a/*' })]), '/a/b')).to.equal('var');
      inBothOrders([r('star', { template: '/a/*', methods: ['GET'] }), r('var', { template: '/a/{x}' })], '/a/b', 'star');
    });

    it('a template that ends where the path ends beats "**" matching zero segments ("/a" beats "/a/**" on "/a")', () => {
      inBothOrders([r('short', { template: '/a' }), r('long', { template: '/a/**' })], '/a', 'short');
      inBothOrders([r('short', { template: '/a/{x}' }), r('long', { template: '/a/{x}/{rest=**}' })], '/a/b', 'short');
    });

    it('a custom verb is more specific when the segments tie', () => {
      const routes = [r('plain', { template: '/v1/{name}' }), r('verb', { template: '/v1/{name}:cancel' })];
      inBothOrders(routes, '/v1/op:cancel', 'verb');
      inBothOrders(routes, '/v1/op', 'plain');
      inBothOrders(routes, '/v1/op:other', 'plain');
    });

    it('a custom verb does not beat a more specific segment', () => {
      inBothOrders([r('verb', { template: '/{a}/{b}:cancel' }), r('plain', { template: '/v1/{name}' })], '/v1/op:cancel', 'plain');
      // The verb route ends with the path; `**` would match zero segments.
      inBothOrders([r('verb', { template: '/v1/{n}:cancel' }), r('multi', { template: '/v1/{n}/**' })], '/v1/op:cancel', 'verb');
      inBothOrders([r('verb', { template: '/v1/op:cancel' }), r('plain', { template: '/v1/{n}' })], '/v1/op:cancel', 'verb');
    });
  });

  it('prefixes: the longer prefix wins', () => {
    const routes = [r('root', { prefix: '/' }), r('api', { prefix: '/api' }), r('v1', { prefix: '/api/v1/' })];
    inBothOrders(routes, '/api/v1/users', 'v1');
    inBothOrders(routes, '/api/v2', 'api');
    inBothOrders(routes, '/other', 'root');
  });

  it('regexes: declaration order', () => {
    const a = r('a', { regex: '/x/.*' });
    const b = r('b', { regex: '/x/[0-9]+' });
    expect(winner(table([a, b]), '/x/1')).to.equal('a');
    expect(winner(table([b, a]), '/x/1')).to.equal('b');
  });

  it('regexes: the same regex twice is one specificity, so conditions decide', () => {
    inBothOrders([r('plain', { regex: '/x/.*' }), r('get', { regex: '/x/.*', methods: ['GET'] })], '/x/1', 'get');
  });

  it('a gRPC-only route with a method ranks as the exact path /<service>/<method>', () => {
    const grpc = r('grpc', { grpc: { service: SVC, method: 'Get' } });
    const g = req(`/${SVC}/Get`, { isGrpc: true, method: 'POST' });
    inBothOrders([grpc, r('template', { template: `/${SVC}/{m}` })], g, 'grpc');
    // Equal path specificity; the gRPC condition counts as a constraint.
    inBothOrders([grpc, r('path', { path: `/${SVC}/Get` })], g, 'grpc');
  });

  it('a gRPC-only route without a method ranks as the prefix /<service>/', () => {
    const grpc = r('grpc', { grpc: { service: SVC } });
    const g = req(`/${SVC}/Get`, { isGrpc: true, method: 'POST' });
    inBothOrders([grpc, r('shorter', { prefix: `/${SVC}` })], g, 'grpc');
    inBothOrders([grpc, r('longer', { prefix: `/${SVC}/G` })], g, 'longer');
    inBothOrders([grpc, r('template', { template: `/${SVC}/{m}` })], g, 'template');
    inBothOrders([grpc, r('regex', { regex: '.*' })], g, 'grpc');
  });

  it('at equal path specificity, more conditions win; a method list counts once', () => {
    const routes = [
      r('none', { path: '/x' }),
      r('header', { path: '/x', headers: [{ name: 'a', exact: '1' }] }),
      r('two', { path: '/x', methods: ['GET'], headers: [{ name: 'a', exact: '1' }] }),
    ];
    inBothOrders(routes, req('/x', { headers: { a: '1' } }), 'two');
    inBothOrders(routes, req('/x', { method: 'POST', headers: { a: '1' } }), 'header');
    inBothOrders(routes, req('/x', { method: 'POST' }), 'none');
    const many = r('many', { path: '/x', methods: ['GET', 'POST', 'PUT'] });
    const one = r('one', { path: '/x', methods: ['GET'] });
    expect(winner(table([many, one]), '/x')).to.equal('many');
    expect(winner(table([one, many]), '/x')).to.equal('one');
  });

  it('then declaration order', () => {
    expect(winner(table([r('first', { prefix: '/' }), r('second', { prefix: '/' })]), '/')).to.equal('first');
    expect(winner(table([r('second', { prefix: '/' }), r('first', { prefix: '/' })]), '/')).to.equal('second');
  });

  describe('falls back to the next most specific route when conditions fail', () => {
    it('within the trie, backtracking to a less specific branch', () => {
      const routes = [
        r('deep', { template: '/a/b/c', headers: [{ name: 'x', present: true }] }),
        r('mid', { template: '/a/{y}/c', methods: ['POST'] }),
        r('wide', { template: '/a/**' }),
      ];
      inBothOrders(routes, req('/a/b/c', { headers: { x: '1' } }), 'deep');
      inBothOrders(routes, req('/a/b/c', { method: 'POST' }), 'mid');
      inBothOrders(routes, req('/a/b/c'), 'wide');
    });

    it('across categories', () => {
      const routes = [
        r('path', { path: '/a', methods: ['POST'] }),
        r('template', { template: '/a', methods: ['PUT'] }),
        r('prefix', { prefix: '/a', methods: ['DELETE'] }),
        r('regex', { regex: '/a' }),
      ];
      inBothOrders(routes, req('/a', { method: 'POST' }), 'path');
      inBothOrders(routes, req('/a', { method: 'PUT' }), 'template');
      inBothOrders(routes, req('/a', { method: 'DELETE' }), 'prefix');
      inBothOrders(routes, req('/a', { method: 'GET' }), 'regex');
    });

    it('to a shorter prefix', () => {
      inBothOrders([r('long', { prefix: '/api', methods: ['POST'] }), r('short', { prefix: '/' })], '/api/x', 'short');
    });
  });

  it('never falls through to another virtual host', () => {
    const t = RouteTable.compile(
      routeConfig({
        virtualHosts: [
          { name: 'exact', domains: ['a.com'], routes: [r('a', { path: '/only' })] },
          { name: 'any', domains: ['*'], routes: [r('any', { prefix: '/' })] },
        ],
      }),
    );
    expect(t.match(req('/other', { host: 'a.com' }))).to.equal(undefined);
    expect(t.match(req('/other', { host: 'b.com' }))?.route.name).to.equal('any');
  });
});
