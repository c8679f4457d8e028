import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { AggregatedDiscoveryService, DiscoveryRequestSchema, type DiscoveryRequest } from '../../../src/gen/outrigger/control/v1/discovery_pb.js';
import { startMeshControlPlane, type MeshControlPlane } from '../../support/mesh-harness.js';
import { client as operator, spawnControlPlane } from '../../support/control-harness.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cluster } from '../../support/config-docs.js';
import { samplesOf } from '../../support/prom-text.js';
import { typeUrlOf } from '../../../src/control/protocol.js';

/** Opens a SotW stream as node `nodeId` with `token` and reads until the first response or the error. */
async function firstAnswer(address: string, nodeId: string, token: string | undefined, connectProtocol = false): Promise<'response' | Code> {
  const baseUrl = `http://${address}`;
  const transport = connectProtocol ? createConnectTransport({ baseUrl, httpVersion: '2' }) : createGrpcTransport({ baseUrl });
  const c = createClient(AggregatedDiscoveryService, transport);
  const abort = new AbortController();
  async function* requests(): AsyncIterable<DiscoveryRequest> {
    yield create(DiscoveryRequestSchema, { node: { id: nodeId }, resourceNames: ['*'], typeUrl: typeUrlOf('Cluster') });
    await new Promise((r) => abort.signal.addEventListener('abort', r));
  }
  try {
    for await (const _ of c.streamAggregatedResources(requests(), { signal: abort.signal, headers: token ? { authorization: `Bearer ${token}` } : {} })) {
      return 'response';
    }
    return Code.Unknown;
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    abort.abort();
  }
}

describe('identity: authenticated config streams', function () {
  this.timeout(20_000);
  let cp: MeshControlPlane;
  before(async () => {
    cp = await startMeshControlPlane({ 'tok-web': 'shop/web' });
    await operator(cp.address).apply({ documents: [cluster('web', [1001]) as never] });
  });
  after(async () => cp?.stop());

  it('serves a stream whose token names the node id’s namespace; refuses no token, unknown tokens and other namespaces', async () => {
    expect(await firstAnswer(cp.address, 'web-0.shop', 'tok-web')).to.equal('response');
    expect(await firstAnswer(cp.address, 'web-0.shop', undefined)).to.equal(Code.Unauthenticated);
    expect(await firstAnswer(cp.address, 'web-0.shop', 'tok-guess')).to.equal(Code.Unauthenticated);
    expect(await firstAnswer(cp.address, 'api-0.billing', 'tok-web')).to.equal(Code.PermissionDenied);
    // The same rules for Connect / gRPC-Web clients (served by connect, not the raw gRPC path).
    expect(await firstAnswer(cp.address, 'web-0.shop', 'tok-web', true)).to.equal('response');
    expect(await firstAnswer(cp.address, 'web-0.shop', undefined, true)).to.equal(Code.Unauthenticated);
    expect(await firstAnswer(cp.address, 'api-0.billing', 'tok-web', true)).to.equal(Code.PermissionDenied);

    const m = await cp.registry.metrics();
    const n = (result: string): number => samplesOf(m, 'outrigger_control_stream_auth_total').find((s) => s.labels.result === result)?.value ?? 0;
    expect(n('ok')).to.equal(2);
    expect(n('unauthenticated')).to.equal(3);
    expect(n('denied')).to.equal(2);
    const audit = cp.logs.filter((l) => l.audit === true && l.op === 'stream');
    expect(audit).to.have.length(5);
    expect(JSON.stringify(audit)).not.to.include('tok-');
  });

  it('--no-auth with no token authenticator serves an injected sidecar that presents its projected token (nothing could check it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-noauth-'));
    const dev = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--port', '0', '--no-auth']);
    try {
      expect(await firstAnswer(`127.0.0.1:${dev.port}`, 'web-0.shop', 'projected-token')).to.equal('response');
      expect(await firstAnswer(`127.0.0.1:${dev.port}`, 'web-0.shop', undefined)).to.equal('response');
    } finally {
      dev.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
