import type { JsonObject } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { RouteCompileError, RouteTable } from '../../../src/proxy/router/index.js';
import { routeConfig } from './fixtures.js';

function compileError(vhosts: JsonObject[]): RouteCompileError {
  try {
    RouteTable.compile(routeConfig({ name: 'rc', virtualHosts: vhosts }));
  } catch (e) {
    expect(e).to.be.instanceOf(RouteCompileError);
    return e as RouteCompileError;
  }
  throw new Error('expected a RouteCompileError');
}

/** The error for one bad route at virtualHosts[1].routes[2] (the earlier ones are fine). */
function routeError(bad: JsonObject): RouteCompileError {
  const ok = { match: { prefix: '/' }, route: { cluster: 'c' } };
  return compileError([
    { domains: ['a.com'], routes: [ok] },
    { domains: ['*'], routes: [ok, ok, bad] },
  ]);
}

describe('router: compile errors carry the config path', () => {
  it('bad regex', () => {
    const e = routeError({ match: { regex: '/a(' }, route: { cluster: 'c' } });
    expect(e.path).to.equal('virtualHosts[1].routes[2].match.regex');
    expect(e.reason).to.match(/invalid regex/);
    expect(e.message).to.equal(`${e.path}: ${e.reason}`);
  });

  it('a regex that would only compile once wrapped in anchors is still rejected', () => {
    expect(routeError({ match: { regex: 'a)(b' }, route: { cluster: 'c' } }).path).to.equal('virtualHosts[1].routes[2].match.regex');
  });

  it('bad template', () => {
    const e = routeError({ match: { template: '/a/{b' }, route: { cluster: 'c' } });
    expect(e.path).to.equal('virtualHosts[1].routes[2].match.template');
    expect(e.reason).to.match(/unclosed/);
  });

  it('"**" not last', () => {
    const e = routeError({ match: { template: '/a/**/b' }, route: { cluster: 'c' } });
    expect(e.path).to.equal('virtualHosts[1].routes[2].match.template');
    expect(e.reason).to.match(/must be the last segment/);
  });

  it('nested variable', () => {
    const e = routeError({ match: { template: '/{a={b}}' }, route: { cluster: 'c' } });
    expect(e.path).to.equal('virtualHosts[1].routes[2].match.template');
    expect(e.reason).to.match(/nested variables/);
  });

  it('bad header regex', () => {
    const e = routeError({ match: { prefix: '/', headers: [{ name: 'a' }, { name: 'b', regex: '[' }] }, route: { cluster: 'c' } });
    expect(e.path).to.equal('virtualHosts[1].routes[2].match.headers[1].regex');
  });

  it('no path specifier and no gRPC match', () => {
    expect(routeError({ match: { methods: ['GET'] }, route: { cluster: 'c' } }).path).to.equal('virtualHosts[1].routes[2].match');
    expect(routeError({ route: { cluster: 'c' } }).path).to.equal('virtualHosts[1].routes[2]');
  });

  it('empty gRPC service', () => {
    expect(routeError({ match: { grpc: { method: 'M' } }, route: { cluster: 'c' } }).path).to.equal(
      'virtualHosts[1].routes[2].match.grpc.service',
    );
  });

  it('no action, empty cluster, bad direct status', () => {
    expect(routeError({ match: { prefix: '/' } }).path).to.equal('virtualHosts[1].routes[2]');
    expect(routeError({ match: { prefix: '/' }, route: {} }).path).to.equal('virtualHosts[1].routes[2].route.cluster');
    expect(routeError({ match: { prefix: '/' }, directResponse: { status: 42 } }).path).to.equal(
      'virtualHosts[1].routes[2].directResponse.status',
    );
  });

  it('prefixRewrite on a route that is not a prefix match', () => {
    expect(routeError({ match: { path: '/a' }, route: { cluster: 'c', prefixRewrite: '/b' } }).path).to.equal(
      'virtualHosts[1].routes[2].route.prefixRewrite',
    );
  });

  it('domains: none, duplicated across virtual hosts, unsupported wildcard', () => {
    const ok = [{ match: { prefix: '/' }, route: { cluster: 'c' } }];
    expect(compileError([{ domains: [], routes: ok }]).path).to.equal('virtualHosts[0].domains');
    expect(
      compileError([
        { domains: ['a.com'], routes: ok },
        { domains: ['b.com', 'A.com'], routes: ok },
      ]).path,
    ).to.equal('virtualHosts[1].domains[1]');
    expect(compileError([{ domains: ['a.*.com'], routes: ok }]).path).to.equal('virtualHosts[0].domains[0]');
    expect(compileError([{ domains: ['*a.com'], routes: ok }]).path).to.equal('virtualHosts[0].domains[0]');
  });
});
