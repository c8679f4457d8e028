import { expect } from 'chai';
import { formatConfigError } from '../../../src/config/snapshot.js';
import { baseDocs, editBase, errorsOf, snapshotOf, type Obj } from './helpers.js';

const routesOf = (spec: Obj): Obj[] => (spec.virtualHosts as Obj[])[0]!.routes as Obj[];

describe('config validation: upstream resilience fields', () => {
  it('accepts every balancing field in range', () => {
    const docs = editBase((find) => {
      Object.assign(find('Cluster', 'books'), {
        lbPolicy: 'LB_POLICY_RING_HASH',
        hashBalanceFactor: 125,
        healthyPanicThreshold: 0,
        ringHash: { minimumRingSize: '2048', maximumRingSize: '65536' },
        peakEwma: { decay: '5s', defaultRtt: '0.01s' },
      });
      (routesOf(find('RouteConfiguration', 'main'))[0]!.route as Obj).hashPolicy = [
        { header: { name: 'x-user' }, terminal: true },
        { cookie: { name: 'sid', ttl: '3600s', path: '/' } },
        { sourceIp: {} },
        { queryParameter: { name: 'id' } },
      ];
    });
    expect(errorsOf(docs)).to.deep.equal([]);
    expect(snapshotOf(docs).clusters.get('books')!.hashBalanceFactor).to.equal(125);
  });

  it('reports out-of-range balancing fields with their paths', () => {
    const docs = editBase((find) => {
      Object.assign(find('Cluster', 'books'), {
        hashBalanceFactor: 99,
        healthyPanicThreshold: 101,
        ringHash: { minimumRingSize: '4096', maximumRingSize: '1024' },
        peakEwma: { decay: '-1s' },
      });
    });
    expect(errorsOf(docs)).to.deep.equal([
      'Cluster/books: spec.hashBalanceFactor: must be at least 100 (percent of the mean load), or 0 for unbounded; got 99',
      'Cluster/books: spec.healthyPanicThreshold: a percentage: 0..100, got 101',
      'Cluster/books: spec.ringHash.minimumRingSize: must not exceed maximumRingSize (1024)',
      'Cluster/books: spec.peakEwma.decay: must not be negative',
    ]);
    const big = editBase((find) => Object.assign(find('Cluster', 'books'), { ringHash: { maximumRingSize: '8388609' } }));
    expect(errorsOf(big)).to.deep.equal(['Cluster/books: spec.ringHash.maximumRingSize: at most 8388608, got 8388609']);
  });

  it('checks healthCheck: one checker, ranges, hex payloads, durations', () => {
    const ok = editBase((find) => Object.assign(find('Cluster', 'books'), { healthCheck: { interval: '2s', grpc: { service: 'x' } } }));
    expect(errorsOf(ok)).to.deep.equal([]);
    const bad = (hc: Obj): string[] => errorsOf(editBase((find) => Object.assign(find('Cluster', 'books'), { healthCheck: hc })));
    expect(bad({ interval: '1s' })).to.deep.equal(['Cluster/books: spec.healthCheck: set one of http, tcp, grpc, custom']);
    expect(bad({ timeout: '-1s', http: { path: 'healthz', expectedStatuses: [{ start: 200, end: 200 }] } })).to.deep.equal([
      'Cluster/books: spec.healthCheck.timeout: must not be negative',
      'Cluster/books: spec.healthCheck.http.path: must start with "/", got "healthz"',
      'Cluster/books: spec.healthCheck.http.expectedStatuses[0]: a [start, end) range within 100..600 with start < end, got [200, 200)',
    ]);
    expect(bad({ custom: { module: '' } })).to.deep.equal([
      'Cluster/books: spec.healthCheck.custom.module: required: a path relative to the config file, or a package name',
    ]);
    expect(bad({ custom: { module: './check.mjs', config: { any: 'thing' } } })).to.deep.equal([]);
    expect(bad({ tcp: { send: 'xyz', expect: 'abc' } })).to.deep.equal([
      'Cluster/books: spec.healthCheck.tcp.send: hex bytes, e.g. "50494e47"',
      'Cluster/books: spec.healthCheck.tcp.expect: hex bytes, e.g. "504f4e47"',
    ]);
  });

  it('checks outlierDetection percentages and durations', () => {
    const bad = editBase((find) =>
      Object.assign(find('Cluster', 'books'), { outlierDetection: { baseEjectionTime: '-1s', maxEjectionPercent: 101, failurePercentage: { threshold: 200 } } }),
    );
    expect(errorsOf(bad)).to.deep.equal([
      'Cluster/books: spec.outlierDetection.baseEjectionTime: must not be negative',
      'Cluster/books: spec.outlierDetection.maxEjectionPercent: a percentage: 0..100, got 101',
      'Cluster/books: spec.outlierDetection.failurePercentage.threshold: a percentage: 0..100, got 200',
    ]);
  });

  it('reports hash policies without a name or a specifier', () => {
    const docs = editBase((find) => {
      (routesOf(find('RouteConfiguration', 'main'))[2]!.route as Obj).hashPolicy = [{ header: { name: '' } }, { terminal: true }, { cookie: { name: '' } }];
    });
    expect(errorsOf(docs)).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.hashPolicy[0].header.name: required',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.hashPolicy[1]: set one of header, cookie, sourceIp, queryParameter',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.hashPolicy[2].cookie.name: required',
    ]);
  });

  it('accepts locality and priority fields; reports them out of range with their paths', () => {
    const ok = editBase((find, docs) => {
      Object.assign(find('Cluster', 'books'), {
        endpoints: [
          { address: { host: '127.0.0.1', port: 9090 }, locality: { region: 'eu', zone: 'eu-1a' }, priority: 0 },
          { address: { host: '127.0.0.1', port: 9091 }, locality: { region: 'eu', zone: 'eu-1b' }, priority: 1, healthStatus: 'HEALTH_STATUS_DEGRADED' },
        ],
        zoneAwareRouting: { enabled: true, minClusterSize: 2, localCluster: 'web' },
        overprovisioningFactor: 200,
      });
      void docs;
    });
    expect(errorsOf(ok)).to.deep.equal([]);
    const c = snapshotOf(ok).clusters.get('books')!;
    expect(c.endpoints[1]!.priority).to.equal(1);
    expect(c.zoneAwareRouting?.minClusterSize).to.equal(2);
    const bad = editBase((find) => {
      Object.assign(find('Cluster', 'books'), {
        endpoints: [{ address: { host: '127.0.0.1', port: 9090 }, priority: 128 }],
        zoneAwareRouting: { localCluster: 'nope' },
        overprovisioningFactor: 0,
      });
      Object.assign(find('ClusterLoadAssignment', 'web'), { endpoints: [{ address: { host: '10.0.0.1', port: 80 }, priority: 1000 }] });
    });
    expect(errorsOf(bad)).to.deep.equal([
      'Cluster/books: spec.endpoints[0].priority: at most 127, got 128',
      "Cluster/books: spec.overprovisioningFactor: a percentage in 1..1000 (140 = Envoy's 1.4), got 0",
      'Cluster/books: spec.zoneAwareRouting.localCluster: unknown cluster "nope"',
      'ClusterLoadAssignment/web: spec.endpoints[0].priority: at most 127, got 1000',
    ]);
  });

  it('a route to a ring-hash or Maglev cluster without a hashPolicy is a warning, not an error', () => {
    const docs = editBase((find) => {
      Object.assign(find('Cluster', 'books'), { lbPolicy: 'LB_POLICY_MAGLEV' });
      (routesOf(find('RouteConfiguration', 'main'))[0]!.route as Obj).hashPolicy = [{ header: { name: 'x-user' } }];
    });
    expect(errorsOf(docs)).to.deep.equal([]);
    const warnings = (snapshotOf(docs).warnings ?? []).map(formatConfigError);
    expect(warnings).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].routes[1].route.hashPolicy: cluster "books" balances with LB_POLICY_MAGLEV but this route has no hashPolicy: each request gets a random hash (no stickiness)',
    ]);
    // No hash policy needed elsewhere: round robin, or every route with one.
    expect(snapshotOf(baseDocs()).warnings).to.equal(undefined);
  });
});
