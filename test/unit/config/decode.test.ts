import { expect } from 'chai';
import { decodeDocument } from '../../../src/config/decode.js';
import { formatConfigError } from '../../../src/config/snapshot.js';
import { Cluster_DiscoveryType } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { doc, type Obj } from './helpers.js';

function decodeErrors(value: unknown): string[] {
  const r = decodeDocument({ value, source: { file: 'f.yaml', index: 3 } });
  return r.ok ? [] : r.errors.map(formatConfigError);
}

const listenerSpec = (extra: Obj = {}): Obj => ({ address: { host: '127.0.0.1', port: 8080 }, routeConfig: 'main', ...extra });

describe('config decode', () => {
  it('decodes a document into its message, taking the name from metadata', () => {
    const r = decodeDocument({
      value: doc('Cluster', 'books', { type: 'DISCOVERY_TYPE_STATIC', connectTimeout: '1.5s' }, { labels: { app: 'b' }, annotations: { note: 'x' } }),
      source: {},
    });
    expect(r.ok).to.equal(true);
    if (!r.ok || r.value.kind !== 'Cluster') return;
    expect(r.value.name).to.equal('books');
    expect(r.value.message.name).to.equal('books');
    expect(r.value.message.type).to.equal(Cluster_DiscoveryType.STATIC);
    expect(r.value.message.connectTimeout?.seconds).to.equal(1n);
    expect(r.value.message.connectTimeout?.nanos).to.equal(500_000_000);
    expect(r.value.labels).to.deep.equal({ app: 'b' });
    expect(r.value.annotations).to.deep.equal({ note: 'x' });
  });

  it('accepts proto field names as well as json names, and enum numbers', () => {
    const r = decodeDocument({
      value: doc('Listener', 'main', { address: { host: '::1', port: '8080' }, route_config: 'main', trusted_hops: 2 }),
      source: {},
    });
    expect(r.ok && r.value.kind === 'Listener' && [r.value.message.routeConfig, r.value.message.trustedHops, r.value.message.address?.port]).to.deep.equal([
      'main',
      2,
      8080,
    ]);
    expect(decodeErrors(doc('Cluster', 'c', { type: 2 }))).to.deep.equal([]);
  });

  it('checks the envelope', () => {
    expect(decodeErrors({ apiVersion: 'outrigger.io/v2', kind: 'Listener', metadata: { name: 'main' }, spec: listenerSpec() })).to.deep.equal([
      'Listener/main: apiVersion: must be "outrigger.io/v1", got "outrigger.io/v2"',
    ]);
    expect(decodeErrors({ apiVersion: 'outrigger.io/v1', kind: 'Gateway', metadata: { name: 'main' }, spec: {} })).to.deep.equal([
      'f.yaml#3: kind: must be one of Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, got "Gateway"',
    ]);
    expect(decodeErrors({ apiVersion: 'outrigger.io/v1', kind: 'Listener', spec: {} })).to.deep.equal(['f.yaml#3: metadata: required']);
    expect(decodeErrors({ apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: {}, spec: {} })).to.deep.equal([
      'f.yaml#3: metadata.name: required',
    ]);
    expect(decodeErrors(doc('Listener', 'Main_1', listenerSpec()))).to.deep.equal([
      'Listener/Main_1: metadata.name: invalid name "Main_1": use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
    ]);
    expect(decodeErrors(doc('Listener', 'a'.repeat(254), listenerSpec()))[0]).to.match(/metadata\.name: must be at most 253 characters$/);
    expect(decodeErrors(doc('Listener', 'main', listenerSpec(), { labels: { app: 1 }, owner: 'me' }))).to.deep.equal([
      'Listener/main: metadata.owner: unknown field; known fields: name, labels, annotations',
      'Listener/main: metadata.labels.app: expected string, got number',
    ]);
    expect(decodeErrors({ ...doc('Listener', 'main', listenerSpec()), status: {} })).to.deep.equal([
      'Listener/main: status: unknown field; known fields: apiVersion, kind, metadata, spec',
    ]);
    expect(decodeErrors(['not', 'a', 'document'])).to.deep.equal(['f.yaml#3: expected a resource document (object), got array']);
  });

  it('reports every unknown field and wrong type in spec with its path', () => {
    const errors = decodeErrors(
      doc('RouteConfiguration', 'main', {
        virtualHosts: [
          {
            domains: ['*', 7],
            routes: [
              { match: { prefix: '/' }, route: { cluster: 'a' } },
              { match: { prefix: '/' }, route: { cluster: 'a', timout: '1s' } },
              { match: { prefix: 42 }, route: { cluster: 'a', timeout: 5 } },
            ],
          },
        ],
        extra: true,
      }),
    );
    expect(errors).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].domains[1]: expected string, got number',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[1].route.timout: unknown field; known fields: cluster, timeout, prefixRewrite, hostRewrite, transcode, hashPolicy, retryPolicy, hedgePolicy, idempotent, perRequestBufferLimitBytes',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.prefix: expected string, got number',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.timeout: expected duration string like "1.5s", got number',
      'RouteConfiguration/main: spec.extra: unknown field; known fields: name, virtualHosts',
    ]);
  });

  it('checks scalars, lists, messages and durations', () => {
    expect(
      decodeErrors(
        doc('Listener', 'main', {
          address: { host: '127.0.0.1', port: -1 },
          routeConfig: 'main',
          opaque: 'yes',
          trustedHops: 1.5,
          detectTimeout: '100ms',
          limits: { maxRequestBodyBytes: 'lots' },
          accessLog: { sensitiveHeaders: 'x-secret' },
          tls: [],
        }),
      ),
    ).to.deep.equal([
      'Listener/main: spec.address.port: -1 is out of range for uint32 (0..4294967295)',
      'Listener/main: spec.opaque: expected boolean, got string',
      'Listener/main: spec.trustedHops: expected uint32, got 1.5',
      'Listener/main: spec.detectTimeout: invalid duration "100ms"; write seconds with an "s" suffix, e.g. "0.25s" or "30s"',
      'Listener/main: spec.limits.maxRequestBodyBytes: expected uint64, got string "lots"',
      'Listener/main: spec.accessLog.sensitiveHeaders: expected array, got string',
      'Listener/main: spec.tls: expected object, got array',
    ]);
  });

  it('rejects two members of one oneof', () => {
    expect(
      decodeErrors(
        doc('RouteConfiguration', 'main', {
          virtualHosts: [{ domains: ['*'], routes: [{ match: { prefix: '/', regex: '.*' }, route: { cluster: 'a' }, directResponse: { status: 200 } }] }],
        }),
      ),
    ).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].routes[0].match.regex: prefix is already set; set only one of prefix, path, template, regex',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[0].directResponse: route is already set; set only one of route, directResponse',
    ]);
  });

  it('rejects the same field under both of its names', () => {
    expect(decodeErrors(doc('Listener', 'main', listenerSpec({ route_config: 'main' })))).to.deep.equal([
      'Listener/main: spec.routeConfig: field given twice (as "routeConfig" and "route_config")',
    ]);
  });

  it('rejects unknown enum names and numbers with the allowed names', () => {
    const allowed = 'allowed: DISCOVERY_TYPE_UNSPECIFIED, DISCOVERY_TYPE_STATIC, DISCOVERY_TYPE_EDS, DISCOVERY_TYPE_ORIGINAL_DST';
    expect(decodeErrors(doc('Cluster', 'c', { type: 'STATIC' }))).to.deep.equal([
      `Cluster/c: spec.type: unknown value "STATIC" for DiscoveryType; ${allowed}`,
    ]);
    expect(decodeErrors(doc('Cluster', 'c', { type: 9 }))).to.deep.equal([`Cluster/c: spec.type: unknown value 9 for DiscoveryType; ${allowed}`]);
  });

  it('requires spec.name, when given, to equal metadata.name', () => {
    expect(decodeErrors(doc('Cluster', 'c', { name: 'c', type: 'DISCOVERY_TYPE_EDS' }))).to.deep.equal([]);
    expect(decodeErrors(doc('Cluster', 'c', { name: 'd', type: 'DISCOVERY_TYPE_EDS' }))).to.deep.equal([
      'Cluster/c: spec.name: must equal metadata.name "c" (or be omitted), got "d"',
    ]);
  });

  it('treats null as unset and a missing spec as empty', () => {
    expect(decodeErrors(doc('Listener', 'main', listenerSpec({ tls: null, detectTimeout: null })))).to.deep.equal([]);
    const r = decodeDocument({ value: { apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name: 'x' } }, source: {} });
    expect(r.ok).to.equal(true);
  });

  it('names the resource of a failed decode so references to it are not reported again', () => {
    const r = decodeDocument({ value: doc('Cluster', 'c', { type: 'NOPE' }), source: {} });
    expect(r.ok).to.equal(false);
    if (!r.ok) expect([r.kind, r.name]).to.deep.equal(['Cluster', 'c']);
  });
});
