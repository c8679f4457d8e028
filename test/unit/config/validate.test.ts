import { expect } from 'chai';
import { editBase, errorsOf, baseDocs, doc, type Obj } from './helpers.js';

type Route = Obj & { match?: Obj; route?: Obj };
const routesOf = (spec: Obj): Route[] => ((spec.virtualHosts as Obj[])[0]!.routes as Route[]);

describe('config validation', () => {
  it('accepts the base config', () => {
    expect(errorsOf(baseDocs())).to.deep.equal([]);
  });

  it('reports duplicate kind/name with the first location', () => {
    const docs = [...baseDocs(), doc('Cluster', 'books', { type: 'DISCOVERY_TYPE_EDS' })];
    expect(errorsOf(docs)).to.deep.equal(['Cluster/books: metadata.name: duplicate Cluster "books" (first defined in test.yaml#2)']);
  });

  describe('Listener', () => {
    it('checks port range, with port 0 only when ephemeral ports are allowed', () => {
      const zero = editBase((find) => ((find('Listener', 'main').address as Obj).port = 0));
      expect(errorsOf(zero)).to.deep.equal(['Listener/main: spec.address.port: must be 1..65535, got 0']);
      expect(errorsOf(zero, { allowEphemeralPorts: true })).to.deep.equal([]);
      const big = editBase((find) => ((find('Listener', 'main').address as Obj).port = 65536));
      expect(errorsOf(big, { allowEphemeralPorts: true })).to.deep.equal(['Listener/main: spec.address.port: must be 1..65535, got 65536']);
    });

    it('checks the host', () => {
      for (const host of ['0.0.0.0', '::', '::1', 'localhost', 'svc.ns.svc.cluster.local']) {
        expect(errorsOf(editBase((find) => ((find('Listener', 'main').address as Obj).host = host))), host).to.deep.equal([]);
      }
      const cases: [string, string][] = [
        ['', 'required'],
        ['bad host', 'invalid host "bad host": expected an IP address or a host name'],
        ['127.0.0.1:80', 'invalid host "127.0.0.1:80" (put the port in "port", not in "host")'],
        ['[::1]', 'write IPv6 addresses without brackets ("::1")'],
      ];
      for (const [host, message] of cases) {
        expect(errorsOf(editBase((find) => ((find('Listener', 'main').address as Obj).host = host)))).to.deep.equal([
          `Listener/main: spec.address.host: ${message}`,
        ]);
      }
      expect(errorsOf(editBase((find) => delete find('Listener', 'main').address))).to.deep.equal(['Listener/main: spec.address: required']);
    });

    it('requires routeConfig and defaultCluster to exist, and one of them', () => {
      expect(errorsOf(editBase((find) => (find('Listener', 'main').routeConfig = 'x')))).to.deep.equal([
        'Listener/main: spec.routeConfig: unknown route configuration "x"',
      ]);
      expect(errorsOf(editBase((find) => (find('Listener', 'main').defaultCluster = 'nope')))).to.deep.equal([
        'Listener/main: spec.defaultCluster: unknown cluster "nope"',
      ]);
      expect(errorsOf(editBase((find) => delete find('Listener', 'main').routeConfig))).to.deep.equal([
        'Listener/main: spec: set routeConfig (HTTP and gRPC routing), defaultCluster (opaque TCP) or both',
      ]);
      expect(errorsOf(editBase((find) => Object.assign(find('Listener', 'main'), { routeConfig: '', defaultCluster: 'books' })))).to.deep.equal([]);
    });

    it('requires defaultCluster when opaque', () => {
      expect(errorsOf(editBase((find) => (find('Listener', 'main').opaque = true)))).to.deep.equal([
        'Listener/main: spec.defaultCluster: required when opaque is true',
      ]);
    });

    it('rejects two listeners on the same address, wildcards included', () => {
      const second = (host: string, port: number): Obj => doc('Listener', 'second', { address: { host, port }, routeConfig: 'main' });
      expect(errorsOf([...baseDocs(), second('127.0.0.1', 8080)])).to.deep.equal([
        'Listener/second: spec.address: 127.0.0.1:8080 clashes with listener "main" on 127.0.0.1:8080',
      ]);
      expect(errorsOf([...baseDocs(), second('0.0.0.0', 8080)])).to.deep.equal([
        'Listener/second: spec.address: 0.0.0.0:8080 clashes with listener "main" on 127.0.0.1:8080',
      ]);
      expect(errorsOf([...baseDocs(), second('127.0.0.1', 8081)])).to.deep.equal([]);
      const zero = editBase((find) => ((find('Listener', 'main').address as Obj).port = 0));
      expect(errorsOf([...zero, second('127.0.0.1', 0)], { allowEphemeralPorts: true })).to.deep.equal([]);
    });

    it('requires TLS cert and key together', () => {
      expect(errorsOf(editBase((find) => (find('Listener', 'main').tls = { certFile: 'c.pem' })))).to.deep.equal([
        'Listener/main: spec.tls.keyFile: required when certFile is set',
      ]);
      expect(errorsOf(editBase((find) => (find('Listener', 'main').tls = { keyFile: 'k.pem' })))).to.deep.equal([
        'Listener/main: spec.tls.certFile: required when keyFile is set',
      ]);
      expect(errorsOf(editBase((find) => (find('Listener', 'main').tls = { certFile: 'c.pem', keyFile: 'k.pem' })))).to.deep.equal([]);
    });

    it('rejects negative durations', () => {
      expect(errorsOf(editBase((find) => (find('Listener', 'main').idleTimeout = '-1s')))).to.deep.equal([
        'Listener/main: spec.idleTimeout: must not be negative',
      ]);
      expect(errorsOf(editBase((find) => (find('Listener', 'main').limits = { requestHeadersTimeout: '-0.5s' })))).to.deep.equal([
        'Listener/main: spec.limits.requestHeadersTimeout: must not be negative',
      ]);
      expect(errorsOf(editBase((find) => (find('Listener', 'main').limits = { requestHeadersTimeout: '10ms' })))).to.have.length(1); // durations are seconds
    });
  });

  describe('RouteConfiguration', () => {
    const rc = (edit: (spec: Obj, routes: Route[]) => void): string[] =>
      errorsOf(editBase((find) => edit(find('RouteConfiguration', 'main'), routesOf(find('RouteConfiguration', 'main')))));

    it('requires every route cluster to exist', () => {
      expect(rc((_s, routes) => (routes[2]!.route!.cluster = 'bookz'))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.cluster: unknown cluster "bookz"',
      ]);
      expect(rc((_s, routes) => (routes[0]!.route = {}))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.cluster: required (or weightedClusters)',
      ]);
    });

    it('requires an action and a match', () => {
      expect(rc((_s, routes) => delete routes[1]!.route)).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[1]: route has no action: set route or directResponse',
      ]);
      expect(rc((_s, routes) => delete routes[1]!.match)).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[1].match: required (use prefix "/" to match every path)',
      ]);
    });

    it('compiles path and header regexes', () => {
      expect(rc((_s, routes) => (routes[2]!.match = { regex: '^/(a|b$' }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.regex: invalid regex: Invalid regular expression: /^/(a|b$/: Unterminated group',
      ]);
      expect(rc((_s, routes) => (routes[2]!.match = { prefix: '/', headers: [{ name: 'x-v', regex: '[' }, { name: '', present: true }] }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.headers[0].regex: invalid regex: Invalid regular expression: /[/: Unterminated character class',
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.headers[1].name: required',
      ]);
    });

    it('checks path templates', () => {
      expect(rc((_s, routes) => (routes[0]!.match = { template: '/v1/{name=shelves/*}/books/**:get' }))).to.deep.equal([]);
      expect(rc((_s, routes) => (routes[0]!.match = { template: '/v1/**/books' }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].match.template: invalid template "/v1/**/books": "**" must be the last segment',
      ]);
    });

    it('checks prefixes, paths and methods', () => {
      expect(rc((_s, routes) => (routes[2]!.match = { prefix: 'api', methods: ['GET', 'post', 'GE T'] }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.prefix: must start with "/", got "api"',
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.methods[2]: invalid method "GE T"',
      ]);
      expect(rc((_s, routes) => (routes[2]!.match = { path: '/search?q=1' }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.path: paths are matched without the query string; remove "?…"',
      ]);
    });

    it('requires a path specifier or grpc in a match', () => {
      expect(rc((_s, routes) => (routes[2]!.match = { methods: ['GET'] }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match: needs a path specifier (prefix, path, template or regex) or grpc',
      ]);
    });

    it('checks gRPC matches', () => {
      expect(rc((_s, routes) => (routes[1]!.match = { grpc: { method: 'GetBook' } }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[1].match.grpc.service: required (a fully qualified service name)',
      ]);
    });

    it('allows prefixRewrite only with a prefix match', () => {
      expect(rc((_s, routes) => (routes[2]!.route!.prefixRewrite = '/v2/'))).to.deep.equal([]);
      expect(rc((_s, routes) => (routes[0]!.route!.prefixRewrite = '/v2/'))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.prefixRewrite: only allowed on a route with a prefix match',
      ]);
    });

    it('checks direct response status', () => {
      expect(rc((_s, routes) => routes.push({ match: { path: '/healthz' }, directResponse: { status: 200, body: 'ok' } }))).to.deep.equal([]);
      expect(rc((_s, routes) => routes.push({ match: { path: '/gone' }, directResponse: { status: 99 } }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[3].directResponse.status: must be 200..599, got 99',
      ]);
    });

    it('checks domains: well-formed and unique across virtual hosts', () => {
      const vhs = (spec: Obj): Obj[] => spec.virtualHosts as Obj[];
      expect(
        rc((spec) => vhs(spec).push({ name: 'api', domains: ['api.example.com', '*.Example.com', '[::1]', 'x.io', 'x.io'], routes: [] })),
      ).to.deep.equal([]);
      expect(
        rc((spec) =>
          vhs(spec).push({ name: 'api', domains: ['*.example.com:8080', 'a.*.com', '*', 'bad_host'], routes: [] }),
        ),
      ).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[1].domains[0]: invalid domain "*.example.com:8080": a port goes after a host name or IP ("host:80", "[::1]:80"), never with "*"',
        'RouteConfiguration/main: spec.virtualHosts[1].domains[1]: invalid domain "a.*.com": "*" is only allowed alone or as a leading "*."',
        'RouteConfiguration/main: spec.virtualHosts[1].domains[2]: domain "*" is already listed by virtual host 0 ("default")',
        'RouteConfiguration/main: spec.virtualHosts[1].domains[3]: invalid domain "bad_host": expected "*", "*.suffix" or a host name',
      ]);
      expect(
        rc((spec) => vhs(spec).push({ name: '', domains: ['a.io'] }, { name: '', domains: ['A.io'] })),
      ).to.deep.equal(['RouteConfiguration/main: spec.virtualHosts[2].domains[0]: domain "A.io" is already listed by virtual host 1']);
      expect(rc((spec) => (vhs(spec)[0]!.domains = []))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].domains: at least one domain is required ("*" matches any host)',
      ]);
    });
  });

  describe('Cluster and ClusterLoadAssignment', () => {
    it('requires endpoints in a STATIC cluster and none in an EDS cluster', () => {
      expect(errorsOf(editBase((find) => (find('Cluster', 'books').endpoints = [])))).to.deep.equal([
        'Cluster/books: spec.endpoints: a DISCOVERY_TYPE_STATIC cluster needs at least one endpoint',
      ]);
      expect(errorsOf(editBase((find) => (find('Cluster', 'web').endpoints = [{ address: { host: '10.0.0.2', port: 80 } }])))).to.deep.equal([
        'Cluster/web: spec.endpoints: must be empty for a DISCOVERY_TYPE_EDS cluster (its endpoints come from ClusterLoadAssignment "web")',
      ]);
      expect(errorsOf(editBase((find) => delete find('Cluster', 'books').type))).to.deep.equal([
        'Cluster/books: spec.type: required: DISCOVERY_TYPE_STATIC, DISCOVERY_TYPE_EDS, DISCOVERY_TYPE_ORIGINAL_DST, DISCOVERY_TYPE_DNS, DISCOVERY_TYPE_KUBERNETES, DISCOVERY_TYPE_CONSUL or DISCOVERY_TYPE_NATS',
      ]);
    });

    it('accepts an ORIGINAL_DST cluster without endpoints; refuses endpoints, an lbPolicy and a ClusterLoadAssignment for it', () => {
      const passthrough = (spec: Obj): Obj[] => [...baseDocs(), doc('Cluster', 'passthrough', { type: 'DISCOVERY_TYPE_ORIGINAL_DST', ...spec })];
      expect(errorsOf(passthrough({ protocol: 'UPSTREAM_PROTOCOL_HTTP1', connectTimeout: '2s', idleTimeout: '30s' }))).to.deep.equal([]);
      expect(errorsOf(passthrough({ endpoints: [{ address: { host: '10.0.0.9', port: 80 } }], lbPolicy: 'LB_POLICY_ROUND_ROBIN' }))).to.deep.equal([
        'Cluster/passthrough: spec.endpoints: must be empty for a DISCOVERY_TYPE_ORIGINAL_DST cluster (each connection goes to its original destination)',
        'Cluster/passthrough: spec.lbPolicy: must be unset for a DISCOVERY_TYPE_ORIGINAL_DST cluster (there is one destination per connection, nothing to balance)',
      ]);
      expect(errorsOf([...passthrough({}), doc('ClusterLoadAssignment', 'passthrough', {})])).to.deep.equal([
        'ClusterLoadAssignment/passthrough: no EDS cluster "passthrough" (cluster "passthrough" has type ORIGINAL_DST, not EDS)',
      ]);
    });

    it('accepts originalDst (useHostHeader) on an ORIGINAL_DST cluster only', () => {
      const passthrough = (spec: Obj): Obj[] => [...baseDocs(), doc('Cluster', 'passthrough', spec)];
      for (const originalDst of [{}, { useHostHeader: false }, { useHostHeader: true }]) {
        expect(errorsOf(passthrough({ type: 'DISCOVERY_TYPE_ORIGINAL_DST', originalDst }))).to.deep.equal([]);
      }
      expect(errorsOf(passthrough({ type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '10.0.0.9', port: 80 } }], originalDst: { useHostHeader: false } }))).to.deep.equal([
        'Cluster/passthrough: spec.originalDst: only for a DISCOVERY_TYPE_ORIGINAL_DST cluster (the others have their endpoints)',
      ]);
      const bad = errorsOf(passthrough({ type: 'DISCOVERY_TYPE_ORIGINAL_DST', originalDst: { useHostHeader: 'no', useHttpHeader: true } }));
      expect(bad.join('\n')).to.match(/spec\.originalDst\.useHostHeader: expected bool/);
      expect(bad.join('\n')).to.match(/spec\.originalDst\.useHttpHeader: unknown field; known fields: useHostHeader/);
    });

    it('requires a ClusterLoadAssignment for an EDS cluster, and an EDS cluster for it', () => {
      const noCla = baseDocs().filter((d) => d.kind !== 'ClusterLoadAssignment');
      expect(errorsOf(noCla)).to.deep.equal(['Cluster/web: no ClusterLoadAssignment "web" for EDS cluster']);
      expect(errorsOf([...baseDocs(), doc('ClusterLoadAssignment', 'orphan', {})])).to.deep.equal(['ClusterLoadAssignment/orphan: no EDS cluster "orphan"']);
      expect(errorsOf([...baseDocs(), doc('ClusterLoadAssignment', 'books', {})])).to.deep.equal([
        'ClusterLoadAssignment/books: no EDS cluster "books" (cluster "books" has type STATIC, not EDS)',
      ]);
    });

    it('checks endpoint addresses', () => {
      expect(
        errorsOf(
          editBase((find) => {
            find('Cluster', 'books').endpoints = [{ address: { host: '', port: 0 } }, {}];
            find('ClusterLoadAssignment', 'web').endpoints = [{ address: { host: 'db', port: 70000 } }];
          }),
          { allowEphemeralPorts: true },
        ),
      ).to.deep.equal([
        'Cluster/books: spec.endpoints[0].address.host: required',
        'Cluster/books: spec.endpoints[0].address.port: must be 1..65535, got 0',
        'Cluster/books: spec.endpoints[1].address: required',
        'ClusterLoadAssignment/web: spec.endpoints[0].address.port: must be 1..65535, got 70000',
      ]);
    });
  });

  it('collects errors of every document without stopping at the first', () => {
    const errors = errorsOf(
      editBase((find) => {
        (find('Listener', 'main').address as Obj).port = 0;
        routesOf(find('RouteConfiguration', 'main'))[2]!.route!.cluster = 'bookz';
        find('Cluster', 'books').endpoints = [];
      }),
    );
    expect(errors).to.have.length(3);
  });

  it('does not report references to a document that failed to decode', () => {
    const docs = editBase((find) => (find('Cluster', 'books').type = 'STATIC'));
    expect(errorsOf(docs)).to.deep.equal([
      'Cluster/books: spec.type: unknown value "STATIC" for DiscoveryType; allowed: DISCOVERY_TYPE_UNSPECIFIED, DISCOVERY_TYPE_STATIC, DISCOVERY_TYPE_EDS, DISCOVERY_TYPE_ORIGINAL_DST, DISCOVERY_TYPE_DNS, DISCOVERY_TYPE_KUBERNETES, DISCOVERY_TYPE_CONSUL, DISCOVERY_TYPE_NATS',
    ]);
  });

  describe('Transcode: reflection and openapi', () => {
    const withTranscode = (t: Obj): Obj[] => editBase((find) => (routesOf(find('RouteConfiguration', 'main'))[0]!.route!.transcode = t));
    it('accepts a reflection source and an openapi path', () => {
      expect(errorsOf(withTranscode({ reflection: {} }))).to.deep.equal([]);
      expect(errorsOf(withTranscode({ reflection: { refreshInterval: '5s', services: ['a.b.Svc'] }, openapi: { path: '/api/openapi.json' } }))).to.deep.equal([]);
    });
    it('rejects a too short refresh, bad service names and a bad openapi path, by field', () => {
      expect(errorsOf(withTranscode({ reflection: { refreshInterval: '0.01s', services: ['bad name'] }, openapi: { path: 'openapi.json' } }))).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.transcode.reflection.refreshInterval: at least 100ms (0: the default, 30s)',
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.transcode.reflection.services[0]: invalid service name "bad name"',
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.transcode.openapi.path: must be a path starting with "/", got "openapi.json"',
      ]);
    });
  });
});
