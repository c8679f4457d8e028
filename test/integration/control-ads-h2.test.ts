import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import {
  AggregatedDiscoveryService,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { AsyncQueue } from '../../src/control/async-queue.js';
import { MAX_REQUEST_BYTES } from '../../src/control/server/ads-h2.js';
import type { JsonObject } from '../../src/config/snapshot.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, startTestControlPlane } from '../support/control-harness.js';
import { TYPE, kindOf, nodeOf } from '../support/xds-light.js';
import { RawSotw } from '../support/xds-raw.js';
import { waitFor } from '../support/wait.js';

/**
 * The sidecars' gRPC ADS streams are served on raw node:http2 (ads-h2.ts).
 * These check that path against real peers (grpc-js, a hand-framed HTTP/2
 * client) and its bad input, and that gRPC-Web/Connect still reach the
 * same streams through connect.
 */
const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
const SOTW = `/${AggregatedDiscoveryService.typeName}/StreamAggregatedResources`;
type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

function framed(bytes: Uint8Array, flag = 0): Buffer {
  const b = Buffer.alloc(5 + bytes.length);
  b[0] = flag;
  b.writeUInt32BE(bytes.length, 1);
  b.set(bytes, 5);
  return b;
}
const reqBytes = (init: Parameters<typeof create<typeof DiscoveryRequestSchema>>[1]): Uint8Array =>
  toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, init));

describe('control plane: raw HTTP/2 ADS transport', function () {
  this.timeout(10000);
  let cp: CP;
  let session: http2.ClientHttp2Session;
  beforeEach(async () => {
    cp = await startTestControlPlane({ debounceMs: 10 });
    await client(cp.address).apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001])) });
    session = http2.connect(`http://${cp.address}`);
  });
  afterEach(async () => {
    session.destroy();
    await cp.close();
  });

  it('a grpc-js client with gzip-compressed requests subscribes, ACKs and gets the next change', async () => {
    const c = new grpc.Client(cp.address, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    const call = c.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(
      SOTW,
      (m) => Buffer.from(toBinary(DiscoveryRequestSchema, m)),
      (b) => fromBinary(DiscoveryResponseSchema, b),
    );
    const got: DiscoveryResponse[] = [];
    call.on('data', (r: DiscoveryResponse) => {
      got.push(r);
      call.write(create(DiscoveryRequestSchema, { typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: ['*'] }));
    });
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    call.on('error', () => {});
    call.write(create(DiscoveryRequestSchema, { node: nodeOf('grpcjs-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] }));
    await waitFor(() => got.length === 1, 'the first Cluster response');
    expect(kindOf(got[0]!.typeUrl)).to.equal('Cluster');
    expect(got[0]!.resources.map((a) => a.typeUrl)).to.deep.equal([TYPE('Cluster')]);
    await waitFor(() => cp.plane.statusOf().some((s) => s.node?.id === 'grpcjs-1' && s.synced), 'the ACK to be recorded');
    await client(cp.address).apply({ documents: J(cluster('web', [1002])) });
    await waitFor(() => got.length === 2, 'the pushed change');
    expect(got[1]!.versionInfo).not.to.equal(got[0]!.versionInfo);
    call.end(); // half-close: the server ends the stream with OK
    expect((await status).code).to.equal(grpc.status.OK);
    c.close();
  });

  it('a request split across many DATA frames is reassembled', async () => {
    const s = new RawSotw(session);
    const responses: DiscoveryResponse[] = [];
    s.onResponse = (r) => responses.push(r);
    const bytes = framed(reqBytes({ node: nodeOf('split-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] }));
    for (let i = 0; i < bytes.length; i += 3) {
      await s.writeRaw(bytes.subarray(i, i + 3)); // each write sent before the next: separate DATA frames
    }
    await waitFor(() => responses.length === 1, 'a response to the reassembled request');
    expect(responses[0]!.resources).to.have.length(1);
    s.close();
  });

  it('bad input ends only that stream, with the right status; the session and other streams go on', async () => {
    const good = new RawSotw(session);
    const got: DiscoveryResponse[] = [];
    good.onResponse = (r) => {
      got.push(r);
      good.ack(r, ['*']);
    };
    good.send({ node: nodeOf('good-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    await waitFor(() => got.length === 1, 'the good stream to subscribe');

    const garbage = new RawSotw(session);
    await garbage.writeRaw(framed(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
    expect((await garbage.ended).status).to.equal('3'); // INVALID_ARGUMENT
    expect((await garbage.ended).message).to.match(/cannot decode request/);

    const huge = new RawSotw(session);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(MAX_REQUEST_BYTES + 1, 1);
    await huge.writeRaw(prefix);
    const h = await huge.ended;
    expect(h.status).to.equal('8'); // RESOURCE_EXHAUSTED, without reading the body
    expect(h.message).to.match(/exceeds/);

    const compressed = new RawSotw(session); // flag 1 without grpc-encoding
    await compressed.writeRaw(framed(gzipSync(reqBytes({ node: nodeOf('c-1'), typeUrl: TYPE('Cluster') })), 1));
    expect((await compressed.ended).status).to.equal('13'); // INTERNAL

    const nodeless = new RawSotw(session);
    nodeless.send({ typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    const n = await nodeless.ended;
    expect(n.status).to.equal('3');
    expect(n.message).to.match(/must carry the node/);

    const cut = new RawSotw(session); // half-close inside a message
    await cut.writeRaw(framed(reqBytes({ node: nodeOf('cut-1'), typeUrl: TYPE('Cluster') })).subarray(0, 8));
    cut.stream.end();
    expect((await cut.ended).status).to.equal('13');

    // The good stream still gets pushes on the same session.
    await client(cp.address).apply({ documents: J(cluster('web', [1003])) });
    await waitFor(() => got.length === 2, 'the good stream to get the change');
    expect(cp.plane.statusOf().map((s) => s.node?.id)).to.deep.equal(['good-1']);
    good.close();
    await waitFor(() => cp.plane.statusOf().length === 0, 'a reset stream to be closed on the server');
  });

  it('gRPC-Web/Connect clients still reach the streams through connect (Connect protocol, bidi over HTTP/2)', async () => {
    const transport = createConnectTransport({ baseUrl: `http://${cp.address}`, httpVersion: '2' });
    const ads = createClient(AggregatedDiscoveryService, transport);
    const requests = new AsyncQueue<DiscoveryRequest>();
    const abort = new AbortController();
    requests.push(create(DiscoveryRequestSchema, { node: nodeOf('connect-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] }));
    const it = ads.streamAggregatedResources(requests, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).to.equal(false);
    expect(kindOf((first.value as DiscoveryResponse).typeUrl)).to.equal('Cluster');
    abort.abort();
    await it.return?.().catch(() => {});
  });
});
