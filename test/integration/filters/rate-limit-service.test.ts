import { expect } from 'chai';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { fromBinary } from '@bufbuild/protobuf';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { StatusSchema } from '../../../src/gen/google/rpc/status_pb.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener } from '../../support/config-docs.js';
import { RlsServer, RlsUnit } from '../../support/rls-server.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, transcodeHost } from '../../support/transcode-harness.js';

/**
 * globalRateLimit with `service`: an Envoy rate-limit service
 * (envoy.service.ratelimit.v3, a faithful grpc-js stand-in for
 * envoyproxy/ratelimit) decides over real sockets, called through the
 * sidecar's own cluster machinery. Each dialect gets its 429 with the
 * service's numbers; a slow, stopped or endpoint-less service is answered by
 * failureMode both ways.
 */
describe('filters: globalRateLimit with an Envoy rate-limit service', function () {
  this.timeout(30000);
  let rls: RlsServer;
  let store: BookstoreServer;
  let echo: Started<http.Server>;
  let sc: TestSidecar;
  let client: BookstoreClient;
  const audit: Record<string, unknown>[] = [];

  before(async () => {
    rls = await RlsServer.start({
      domains: {
        shop: [
          { key: 'client', rateLimit: { unit: RlsUnit.HOUR, requestsPerUnit: 1 } },
          // remote_address has no limit in the service: always OK, no current_limit.
        ],
      },
      responseHeaders: { 'x-ratelimit-checked': 'yes' },
      requestHeaders: { 'x-ratelimit-tier': 'gold' },
    });
    store = await startBookstore();
    echo = await startH1Echo('echo');
    const limits = [
      { name: 'client', key: { header: { name: 'x-client' } } },
      { key: { remoteAddress: {} } },
    ];
    const service = (extra: Record<string, unknown> = {}) => ({ globalRateLimit: { service: { cluster: 'rls' }, domain: 'shop', limits, decisionTimeout: '2s', ...extra } });
    const h1Host = (name: string, filter: Record<string, unknown>) => ({
      name,
      domains: [`${name}.test`],
      filters: { globalRateLimit: filter },
      routes: [{ name, match: { prefix: '/' }, route: { cluster: 'echo' } }],
    });
    sc = await startTestSidecar(
      [
        listener('main', { httpFilters: [service()] }),
        hosts('main', [
          { name: 'open', domains: ['open.test'], routes: [{ name: 'open', match: { prefix: '/' }, route: { cluster: 'echo' } }] },
          h1Host('closed', service({ failureMode: 'FAILURE_MODE_DENY' })),
          h1Host('fast', service({ service: { cluster: 'rls', timeout: '0.2s' } })),
          h1Host('fast-closed', service({ service: { cluster: 'rls', timeout: '0.2s' }, failureMode: 'FAILURE_MODE_DENY' })),
          h1Host('nowhere', service({ service: { cluster: 'empty' }, failureMode: 'FAILURE_MODE_DENY' })),
          h1Host('nowhere-open', service({ service: { cluster: 'empty' } })),
          transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR }),
        ]),
        grpcCluster('rls', rls.port),
        grpcCluster('store', store.port),
        cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
        cluster('empty', [], 'UPSTREAM_PROTOCOL_HTTP2', { type: 'DISCOVERY_TYPE_EDS', endpoints: [] }),
        { apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name: 'empty' }, spec: { endpoints: [] } },
      ],
      { auditLog: collector(audit) },
    );
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client?.raw.close();
    await sc?.close();
    rls?.stop();
    await store?.close();
    await echo?.close();
  });

  const h1 = (host: string, who: string) => requestJson(`${baseUrl(sc)}/x`, { headers: { host, 'x-client': who } });

  it('sends one descriptor per applied limit, keyed as Envoy actions are, in the filter domain', async () => {
    rls.requests.length = 0;
    const r = await h1('open.test', 'd1');
    expect(r.status).to.equal(200);
    expect(rls.requests).to.have.length(1);
    const req = rls.requests[0]!;
    expect(req.domain).to.equal('shop');
    expect(req.descriptors.map((d) => d.entries.map((e) => [e.key, e.value]))).to.deep.equal([[['client', 'd1']], [['remote_address', '127.0.0.1']]]);
    // request_headers_to_add reach the upstream, response_headers_to_add the client.
    expect(r.json.headers['x-ratelimit-tier']).to.equal('gold');
    expect(r.headers['x-ratelimit-checked']).to.equal('yes');
  });

  it('HTTP/1.1: OVER_LIMIT is a 429 with the service limit, remaining and reset', async () => {
    expect((await h1('open.test', 'h1')).status).to.equal(200);
    const r = await h1('open.test', 'h1');
    expect(r.status).to.equal(429);
    expect(r.headers['x-outrigger-local-reply']).to.equal('RLX');
    expect(r.headers['ratelimit-limit']).to.equal('1');
    expect(r.headers['ratelimit-remaining']).to.equal('0');
    expect(Number(r.headers['ratelimit-reset'])).to.be.within(1, 3600);
    expect(r.headers['retry-after']).to.equal(r.headers['ratelimit-reset']);
    expect(r.headers['x-ratelimit-checked'], 'response_headers_to_add on the refusal too').to.equal('yes');
    expect(audit.at(-1)).to.include({ outcome: 'rate_limited', descriptor: 'client (header:x-client)' });
  });

  it('REST transcoding: 429 with a google.rpc.Status carrying RetryInfo', async () => {
    const rest = () => requestJson(`${baseUrl(sc)}/v1/shelves`, { headers: { 'x-client': 'rest' } });
    expect((await rest()).status).to.equal(200);
    const r = await rest();
    expect(r.status).to.equal(429);
    expect(r.json.code).to.equal(8);
    expect(r.json.details[0]['@type']).to.equal('type.googleapis.com/google.rpc.RetryInfo');
  });

  it('gRPC: RESOURCE_EXHAUSTED with a RetryInfo detail', async () => {
    const md = new grpc.Metadata();
    md.set('x-client', 'grpc');
    await client.unary('listShelves', {}, { metadata: md });
    const err = await callFailure(client.unary('listShelves', {}, { metadata: md }));
    expect(err.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    const bin = err.metadata.get('grpc-status-details-bin')[0] as Buffer;
    const st = fromBinary(StatusSchema, bin);
    expect(st.details[0]!.typeUrl).to.equal('type.googleapis.com/google.rpc.RetryInfo');
  });

  it('a slow service: failureMode allows or denies after the service timeout', async () => {
    rls.delayMs = 1000;
    try {
      expect((await h1('fast.test', 's1')).status).to.equal(200);
      const d = await h1('fast-closed.test', 's2');
      expect(d.status).to.equal(500);
      expect(d.headers['x-outrigger-local-reply']).to.equal('RLSE');
      expect(audit.some((l) => l['reason'] === 'service_timeout (allowed)')).to.equal(true);
      expect(audit.some((l) => l['reason'] === 'service_timeout')).to.equal(true);
    } finally {
      rls.delayMs = 0;
    }
  });

  it('a cluster without endpoint: failureMode decides', async () => {
    expect((await h1('nowhere-open.test', 'n1')).status).to.equal(200);
    const d = await h1('nowhere.test', 'n2');
    expect(d.status).to.equal(500);
    expect(audit.at(-1)).to.include({ outcome: 'service_error', reason: 'service_no_endpoint' });
  });

  it('the service down: failureMode allows or denies; it counts again once back', async () => {
    rls.stop();
    try {
      expect((await h1('open.test', 'h1')).status, 'over its limit, but the service cannot say so').to.equal(200);
      const d = await h1('closed.test', 'down');
      expect(d.status).to.equal(500);
      expect(d.headers['x-outrigger-local-reply']).to.equal('RLSE');
      expect(audit.at(-1)).to.include({ outcome: 'service_error', reason: 'service_unavailable' });
    } finally {
      await rls.listen();
    }
    expect((await h1('open.test', 'h1')).status).to.equal(429);
  });
});
