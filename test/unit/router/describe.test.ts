import { expect } from 'chai';
import { RouteTable } from '../../../src/proxy/router/index.js';
import { req, routeConfig } from './fixtures.js';

describe('router: compiled routes and describe()', () => {
  const t = RouteTable.compile(
    routeConfig({
      name: 'main',
      virtualHosts: [
        {
          name: 'api',
          domains: ['*'],
          routes: [
            { match: { regex: '/r.*' }, directResponse: { status: 404, body: 'nope' } },
            { name: 'files', match: { prefix: '/files/' }, route: { cluster: 'fs', prefixRewrite: '/', timeout: '1.5s' } },
            { match: { template: '/v1/{id}' }, route: { cluster: 'api', hostRewrite: 'api.internal' } },
            { match: { path: '/healthz' }, directResponse: { status: 200 } },
            { match: { grpc: { service: 'pkg.Svc' } }, route: { cluster: 'grpc' } },
          ],
        },
      ],
    }),
  );

  it('names unnamed routes "<vhost>/<index>" and keeps configured names', () => {
    expect(t.match(req('/v1/7'))?.route.name).to.equal('api/2');
    expect(t.match(req('/files/x'))?.route.name).to.equal('files');
    expect(t.match(req('/rx'))?.route.name).to.equal('api/0');
  });

  it('compiles actions', () => {
    expect(t.match(req('/files/x'))?.route.action).to.deep.equal({
      kind: 'cluster',
      cluster: 'fs',
      timeoutMs: 1500,
      prefixRewrite: '/',
    });
    expect(t.match(req('/files/x'))?.route.prefix).to.equal('/files/');
    expect(t.match(req('/v1/7'))?.route.action).to.deep.equal({
      kind: 'cluster',
      cluster: 'api',
      timeoutMs: 0,
      hostRewrite: 'api.internal',
    });
    expect(t.match(req('/rx'))?.route.action).to.deep.equal({ kind: 'direct', status: 404, body: 'nope' });
  });

  it('reports matchKind and the declaration index', () => {
    const grpc = t.match(req('/pkg.Svc/Get', { isGrpc: true }))!.route;
    expect(grpc.matchKind).to.equal('prefix');
    expect(grpc.index).to.equal(4);
    expect(grpc.prefix, 'only explicit prefix routes expose a rewritable prefix').to.equal(undefined);
    expect(t.match(req('/v1/7'))?.route.matchKind).to.equal('template');
  });

  it('lists routes in precedence order, JSON-serialisable', () => {
    const d = JSON.parse(JSON.stringify(t.describe()));
    expect(d.name).to.equal('main');
    expect(d.virtualHosts).to.have.length(1);
    const routes = d.virtualHosts[0].routes as Array<{ name: string; match: unknown }>;
    expect(routes.map((x) => x.name)).to.deep.equal(['api/3', 'api/2', 'api/4', 'files', 'api/0']);
    expect(routes[2]!.match).to.deep.equal({ prefix: '/pkg.Svc/', impliedByGrpc: true, grpc: { service: 'pkg.Svc', method: '' } });
  });
});
