import { expect } from 'chai';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fromBinary } from '@bufbuild/protobuf';
import { SampleSchema } from '../../src/gen/outrigger/examples/transcoding/v1/echo_pb.js';
import { startEchoBackend, type EchoBackend } from '../support/echo-backend.js';
import { freePort } from '../support/redis-server.js';
import type { TestSidecar } from '../support/sidecar-harness.js';
import { ECHO_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, startTranscodeSidecar } from '../support/transcode-harness.js';
import { waitFor } from '../support/wait.js';

/** A gRPC server that records each call (path, metadata, request frames) and answers OK with no message. */
interface Recorder {
  readonly port: number;
  readonly calls: { headers: http2.IncomingHttpHeaders; body: Buffer }[];
  close(): Promise<void>;
}

async function startRecorder(): Promise<Recorder> {
  const calls: Recorder['calls'] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      calls.push({ headers, body: Buffer.concat(chunks) });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, calls, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const route = (name: string, domains: string[], mirror: string) => ({
  name,
  domains,
  routes: [{ name, match: { prefix: '/' }, route: { cluster: 'echo', transcode: { descriptorBin: ECHO_DESCRIPTOR }, mirror: { cluster: mirror } } }],
});

/**
 * Request mirroring on transcoded routes (docs/routing.md#mirroring): the
 * upstream gRPC call a REST or Connect request becomes is copied to the
 * mirror cluster, its answer dropped, its failures never the caller's.
 */
describe('transcode: mirroring the upstream gRPC call', function () {
  this.timeout(20000);
  let echo: EchoBackend;
  let rec: Recorder;
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    echo = await startEchoBackend();
    rec = await startRecorder();
    const dead = await freePort(); // nothing listens there
    sc = await startTranscodeSidecar(
      hosts('main', [route('mirrored', ['mirrored'], 'rec'), route('down', ['down'], 'dead')]),
      grpcCluster('echo', echo.port),
      grpcCluster('rec', rec.port),
      grpcCluster('dead', dead),
    );
    base = baseUrl(sc);
  });
  after(async () => {
    await sc?.close();
    await rec?.close();
    await echo?.close();
  });

  it('REST: the mirror gets the same gRPC call (method, metadata, message) with a -shadow authority; the caller gets the real answer', async () => {
    const r = await requestJson(`${base}/v1/samples`, { method: 'POST', headers: { host: 'mirrored', 'content-type': 'application/json' }, body: JSON.stringify({ id: '7', name: 'copy-me', tags: ['a'] }) });
    expect(r.status).to.equal(200);
    expect(r.json).to.include({ id: '7', name: 'copy-me' });
    await waitFor(() => rec.calls.length === 1, 'the mirrored call');
    const copy = rec.calls[0]!;
    expect(copy.headers[':path']).to.equal('/outrigger.examples.transcoding.v1.EchoService/Create');
    expect(copy.headers[':authority']).to.equal('mirrored-shadow');
    expect(copy.headers['content-type']).to.equal('application/grpc');
    expect(copy.body.readUInt32BE(1)).to.equal(copy.body.length - 5);
    const msg = fromBinary(SampleSchema, copy.body.subarray(5));
    expect(msg.id).to.equal(7n);
    expect(msg.name).to.equal('copy-me');
    expect(msg.tags).to.deep.equal(['a']);
    await waitFor(async () => /outrigger_mirror_requests_total\{cluster="rec",result="answered"\} 1/.test(await sc.metrics()), 'mirror metric');
  });

  it('Connect: a unary call is mirrored too', async () => {
    const before = rec.calls.length;
    const r = await requestJson(`${base}/outrigger.examples.transcoding.v1.EchoService/Get`, { method: 'POST', headers: { host: 'mirrored', 'content-type': 'application/json' }, body: JSON.stringify({ id: '9' }) });
    expect(r.status).to.equal(200);
    expect(r.json).to.include({ id: '9' });
    await waitFor(() => rec.calls.length === before + 1, 'the mirrored call');
    expect(rec.calls.at(-1)!.headers[':path']).to.equal('/outrigger.examples.transcoding.v1.EchoService/Get');
    expect(fromBinary(SampleSchema, rec.calls.at(-1)!.body.subarray(5)).id).to.equal(9n);
  });

  it('a mirror cluster that is down never reaches the caller; its failures are counted', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await requestJson(`${base}/v1/samples`, { method: 'POST', headers: { host: 'down', 'content-type': 'application/json' }, body: JSON.stringify({ id: String(i + 1) }) });
      expect(r.status).to.equal(200);
      expect(r.json).to.include({ id: String(i + 1) });
    }
    await waitFor(async () => /outrigger_mirror_requests_total\{cluster="dead",result="failed"\} 3/.test(await sc.metrics()), 'mirror failures counted');
  });
});
