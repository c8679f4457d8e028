import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import net from 'node:net';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { ISTIO_BUCKETS } from '../../src/observability/istio-metrics.js';
import { startH1Echo, startTcpEcho, type Started } from '../support/backends.js';
import { bookstoreClient, type BookstoreClient } from '../support/bookstore-client.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { samplesOf } from '../support/prom-text.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';
const self = { workload: 'reviews-v1', namespace: 'shop', app: 'reviews', version: 'v1' };

function h1Get(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = http.get({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    r.on('error', reject);
  });
}

/** One opaque TCP exchange: read the greeting, send `ping\n`, read the echo, close. */
async function tcpPing(port: number): Promise<void> {
  const s = net.connect(port, '127.0.0.1');
  let got = '';
  await new Promise<void>((resolve, reject) => {
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got === 'hello\n') s.write('ping\n');
      if (got === 'hello\nping\n') s.end();
    });
    s.on('close', () => resolve());
  });
  expect(got).to.equal('hello\nping\n');
}

describe('Istio standard metrics from a live sidecar', function () {
  let bookstore: BookstoreServer;
  let h1: Started<unknown>;
  let tcp: Started<unknown>;
  let sc: TestSidecar;
  let client: BookstoreClient;
  let docs: Doc[];

  before(async () => {
    bookstore = await startBookstore();
    h1 = await startH1Echo('h1');
    tcp = await startTcpEcho();
    docs = [
      listener('main'),
      listener('outbound'),
      listener('tcp', { routeConfig: '', defaultCluster: 'tcp', opaque: true }),
      routes('main', [{ name: 'bookstore', match: { grpc: { service: SVC } }, route: { cluster: 'bookstore' } }, prefixRoute('/h1/', 'h1c')]),
      cluster('bookstore', [bookstore.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('h1c', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('tcp', [tcp.port]),
    ];
    sc = await startTestSidecar(docs, { telemetry: { workload: self, compat: 'both' } });
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client.close();
    await sc.close();
    await bookstore.close();
    await h1.close();
    await tcp.close();
  });

  it('counts a known mix of gRPC, HTTP/1.1, local-reply and TCP traffic with Istio labels', async () => {
    for (let i = 0; i < 3; i++) await client.unary('getShelf', { shelf: 1n });
    const err = await client.unary('getShelf', { shelf: 999n }).then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).to.equal(grpc.status.NOT_FOUND);
    expect(await h1Get(sc.port('outbound'), '/h1/a', 'ratings.shop.svc.cluster.local:9080')).to.equal(200);
    expect(await h1Get(sc.port('outbound'), '/h1/b', 'ratings.shop.svc.cluster.local:9080')).to.equal(200);
    expect(await h1Get(sc.port('main'), '/nowhere', 'reviews')).to.equal(404);
    await tcpPing(sc.port('tcp'));
    await tcpPing(sc.port('tcp'));
    await waitFor(() => sc.access.length === 9, 'nine access-log lines (7 requests, 2 connections)');

    const text = await sc.metrics();
    const grpcAuthority = `127.0.0.1`;
    const rows = samplesOf(text, 'istio_requests_total')
      .map(({ labels: l, value }) => [l.reporter, l.destination_service, l.request_protocol, l.response_code, l.grpc_response_status, l.response_flags, value].join(' '))
      .sort();
    expect(rows).to.deep.equal(
      [
        `destination ${grpcAuthority} grpc 200 0 - 3`,
        `destination ${grpcAuthority} grpc 200 5 - 1`,
        'destination reviews http 404  NR 1',
        'source ratings.shop.svc.cluster.local http 200  - 2',
      ].sort(),
    );
    const all = samplesOf(text, 'istio_requests_total');
    const inbound = all.find((s) => s.labels.reporter === 'destination')!.labels;
    expect(Object.keys(inbound).sort()).to.deep.equal(
      [
        'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
        'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
        'destination_service', 'destination_service_name', 'destination_service_namespace',
        'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
      ].sort(),
    );
    // Reporter destination: this pod is the destination; the caller is unknown without mTLS peer identity.
    expect([inbound.destination_workload, inbound.destination_workload_namespace, inbound.destination_app, inbound.destination_version]).to.deep.equal(['reviews-v1', 'shop', 'reviews', 'v1']);
    expect([inbound.source_workload, inbound.source_principal, inbound.destination_principal, inbound.connection_security_policy]).to.deep.equal(['unknown', 'unknown', 'unknown', 'none']);
    const outbound = all.find((s) => s.labels.reporter === 'source')!.labels;
    expect([outbound.source_workload, outbound.destination_workload, outbound.destination_service_name, outbound.destination_service_namespace]).to.deep.equal(['reviews-v1', 'unknown', 'ratings', 'shop']);

    // Histograms: Istio's buckets, one observation per request.
    const buckets = samplesOf(text, 'istio_request_duration_milliseconds_bucket').filter((s) => s.labels.response_code === '404');
    expect(buckets.map((b) => b.labels.le)).to.deep.equal([...ISTIO_BUCKETS.map(String), '+Inf']);
    expect(samplesOf(text, 'istio_request_duration_milliseconds_count').reduce((n, s) => n + s.value, 0)).to.equal(7);
    expect(samplesOf(text, 'istio_request_bytes_count').reduce((n, s) => n + s.value, 0)).to.equal(7);
    expect(samplesOf(text, 'istio_response_bytes_count').reduce((n, s) => n + s.value, 0)).to.equal(7);

    // TCP: two connections, 5 bytes in and 11 out each.
    const tcpOf = (name: string) => samplesOf(text, name).map((s) => [s.labels.reporter, s.labels.destination_service, s.labels.request_protocol, s.labels.response_flags, s.value].join(' '));
    expect(tcpOf('istio_tcp_connections_opened_total')).to.deep.equal(['destination tcp tcp - 2']);
    expect(tcpOf('istio_tcp_connections_closed_total')).to.deep.equal(['destination tcp tcp - 2']);
    expect(tcpOf('istio_tcp_received_bytes_total')).to.deep.equal(['destination tcp tcp - 10']);
    expect(tcpOf('istio_tcp_sent_bytes_total')).to.deep.equal(['destination tcp tcp - 22']);

    // Ours alongside (--metrics-compat both), and the process collectors.
    expect(samplesOf(text, 'outrigger_request_duration_seconds_count').reduce((n, s) => n + s.value, 0)).to.equal(7);
    for (const m of ['outrigger_nodejs_eventloop_utilization', 'outrigger_nodejs_eventloop_lag_p99_seconds', 'outrigger_nodejs_heap_size_used_bytes', 'outrigger_nodejs_active_handles_total']) {
      expect(text, m).to.match(new RegExp(`^${m}(\\{[^}]*\\})? `, 'm'));
    }
    expect(text).to.include('# TYPE outrigger_nodejs_gc_duration_seconds histogram');
  });

  it('--metrics-compat istio drops our request histogram; outrigger drops Istio\'s', async () => {
    for (const [compat, present, absent] of [
      ['istio', 'istio_requests_total', 'outrigger_request_duration_seconds_count'],
      ['outrigger', 'outrigger_request_duration_seconds_count', 'istio_requests_total'],
    ] as const) {
      const other = await startTestSidecar(docs, { telemetry: { compat } });
      try {
        expect(await h1Get(other.port('main'), '/nowhere', 'x')).to.equal(404);
        await waitFor(() => other.access.length === 1, 'the access-log line');
        const text = await other.metrics();
        expect(samplesOf(text, present).reduce((n, s) => n + s.value, 0), `${compat}: ${present}`).to.equal(1);
        expect(samplesOf(text, absent), `${compat}: ${absent}`).to.deep.equal([]);
      } finally {
        await other.close();
      }
    }
  });
});
