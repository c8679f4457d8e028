import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AggregatedDiscoveryService, DiscoveryRequestSchema, type DiscoveryRequest } from '../../../src/gen/outrigger/control/v1/discovery_pb.js';
import { OperatorService } from '../../../src/gen/outrigger/control/v1/operator_pb.js';
import { typeUrlOf } from '../../../src/control/protocol.js';
import { newKeyAndCsr } from '../../../src/control/client/csr.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import { tempDir, removeDir, TOKEN } from '../../support/control-harness.js';
import { operatorClient } from '../../../src/control/client/operator-client.js';
import { join } from 'node:path';
import { makeControlPki, type ControlPki } from '../../support/control-pki.js';
import { cluster } from '../../support/config-docs.js';
import { samplesOf } from '../../support/prom-text.js';
import { waitFor } from '../../support/wait.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';

interface Pem {
  cert: string;
  key: string;
}

/** Opens a SotW stream over TLS as `nodeId`, presenting `clientCert` (and no token); the first response or the error code. */
async function firstAnswer(cp: MeshControlPlane, ca: string, nodeId: string, clientCert: Pem | undefined): Promise<'response' | Code> {
  const transport = createGrpcTransport({ baseUrl: cp.address, nodeOptions: { ca, ...(clientCert ?? {}) } });
  const c = createClient(AggregatedDiscoveryService, transport);
  const abort = new AbortController();
  async function* requests(): AsyncIterable<DiscoveryRequest> {
    yield create(DiscoveryRequestSchema, { node: { id: nodeId }, resourceNames: ['*'], typeUrl: typeUrlOf('Cluster') });
    await new Promise((r) => abort.signal.addEventListener('abort', r));
  }
  try {
    for await (const _ of c.streamAggregatedResources(requests(), { signal: abort.signal })) return 'response';
    return Code.Unknown;
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    abort.abort();
  }
}

/** A workload certificate from the control plane's CA for `spiffeId` (as the issuance RPC would sign it). */
async function svidFor(cp: MeshControlPlane, spiffeId: string): Promise<Pem> {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const issued = await cp.ca.issue(csrPem, spiffeId, 3600_000);
  return { cert: issued.chain.join(''), key: keyPem };
}

/**
 * Issue 17 point 6: over a TLS control connection a sidecar holding a
 * workload certificate authenticates its config stream with it (mTLS), so
 * it needs no token any more; the SVID's namespace must be the node id's.
 * Real sockets: an in-process control plane serving TLS, a sidecar with its
 * own xDS client and certificate manager.
 */
describe('identity: config streams authenticated by the SVID over mTLS', function () {
  this.timeout(30_000);
  let pki: ControlPki;
  let dir: string;
  let cp: MeshControlPlane;
  let tls: { cert: string; key: string; clientCa: string };
  let ca: string;
  let sidecar: TestSidecar | undefined;
  let port = 0;
  const operatorOf = (c: MeshControlPlane) => operatorClient({ address: c.address, token: TOKEN, tls: { ca } });

  const start = (port = 0): Promise<MeshControlPlane> => startMeshControlPlane({ 'tok-web': 'shop/web' }, { dir, port, tls, keepDir: true });

  before(async () => {
    pki = await makeControlPki();
    dir = await tempDir('outrigger-svid-auth-');
    ca = readFileSync(pki.caFile, 'utf8');
    tls = { cert: readFileSync(pki.server.certFile, 'utf8'), key: readFileSync(pki.server.keyFile, 'utf8'), clientCa: ca };
    cp = await start();
    port = cp.port;
    await operatorOf(cp).apply({ documents: [cluster('one', [1001]) as never] });
  });
  after(async () => {
    await sidecar?.close();
    await cp?.stop();
    await removeDir(dir);
    await pki?.remove();
  });

  it('a sidecar whose token file is deleted reconnects with its certificate (no token) and keeps receiving config', async () => {
    sidecar = await startMeshSidecar(cp, 'web-0.shop', 'tok-web', [cluster('local', [1003])], { controlTls: { ca } });
    await sidecar.sidecar.identity!.first;
    await waitFor(() => sidecar!.sidecar.store.current()?.clusters.has('one') === true, 'first push');
    // The stream opened before the certificate arrived went with the token.
    expect(cp.logs.some((l) => l.msg === 'config stream authenticated' && l.via === 'bootstrap-token')).to.equal(true);
    await rm(join(cp.dir, 'token-0'));
    // A restarted control plane (same store, same port): the sidecar reconnects with what it has left, its SVID.
    await cp.stop();
    cp = await start(port);
    await waitFor(() => cp.logs.some((l) => l.msg === 'config stream authenticated' && l.nodeId === 'web-0.shop' && l.via === 'svid'), 'stream authenticated by the SVID', 15_000);
    await operatorOf(cp).apply({ documents: [cluster('two', [1002]) as never] });
    await waitFor(() => sidecar!.sidecar.store.current()?.clusters.has('two') === true, 'push over the SVID-authenticated stream', 10_000);
    expect(sidecar.logs.some((l) => l.msg === 'control stream up' && l.credential === 'svid')).to.equal(true);
    const m = await cp.registry.metrics();
    expect(samplesOf(m, 'outrigger_control_stream_auth_total').find((x) => x.labels.result === 'ok')?.value).to.be.greaterThan(0);
  });

  it('after rotations the next control connection presents the current certificate (the first one has expired)', async () => {
    await sidecar?.close();
    // This harness instance's first token file is token-0 (the restarted control plane counts afresh).
    sidecar = await startMeshSidecar(cp, 'web-2.shop', 'tok-web', [cluster('local', [1003])], { controlTls: { ca }, requestedTtlMs: 2000 });
    const certs = sidecar.sidecar.identity!;
    await certs.first;
    const first = certs.current()!;
    const rotated = () => sidecar!.logs.filter((l) => l.msg === 'workload certificate installed' && l.rotated === true).length;
    await waitFor(() => rotated() >= 2 && Date.now() > first.notAfterMs, 'two rotations, the first certificate expired', 15_000);
    await rm(join(cp.dir, 'token-0'));
    await cp.stop();
    cp = await start(port);
    await waitFor(() => cp.logs.some((l) => l.msg === 'config stream authenticated' && l.nodeId === 'web-2.shop' && l.via === 'svid'), 'stream authenticated by the rotated SVID', 15_000);
    expect(certs.current()!.serial).to.not.equal(first.serial);
  });

  it("the SVID's namespace must be the node id's; a certificate of another CA authenticates nothing", async () => {
    const web = await svidFor(cp, 'spiffe://cluster.local/ns/shop/sa/web');
    expect(await firstAnswer(cp, ca, 'web-1.shop', web)).to.equal('response');
    expect(await firstAnswer(cp, ca, 'api-0.billing', web)).to.equal(Code.PermissionDenied);
    // Another trust domain's SPIFFE ID, signed by our CA: not a workload of this mesh.
    expect(await firstAnswer(cp, ca, 'web-1.shop', await svidFor(cp, 'spiffe://other.domain/ns/shop/sa/web'))).to.equal(Code.Unauthenticated);
    const mallory = { cert: readFileSync(pki.otherClient.certFile, 'utf8'), key: readFileSync(pki.otherClient.keyFile, 'utf8') };
    expect(await firstAnswer(cp, ca, 'web-1.shop', mallory)).to.equal(Code.Unauthenticated);
    expect(await firstAnswer(cp, ca, 'web-1.shop', undefined)).to.equal(Code.Unauthenticated);
    const denied = cp.logs.filter((l) => l.audit === true && l.op === 'stream' && l.result === 'denied');
    expect(denied.map((l) => l.nodeId)).to.deep.equal(['api-0.billing']);
  });

  it("an SVID is never an operator credential; the operator's client certificate still is", async () => {
    const web = await svidFor(cp, 'spiffe://cluster.local/ns/shop/sa/web');
    const asWorkload = createClient(OperatorService, createGrpcTransport({ baseUrl: cp.address, nodeOptions: { ca, ...web } }));
    const err = await asWorkload.list({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).to.equal(Code.Unauthenticated);
    const alice = { cert: readFileSync(pki.client.certFile, 'utf8'), key: readFileSync(pki.client.keyFile, 'utf8') };
    const asOperator = createClient(OperatorService, createGrpcTransport({ baseUrl: cp.address, nodeOptions: { ca, ...alice } }));
    expect((await asOperator.list({})).resources.length).to.be.greaterThan(0);
  });
});
