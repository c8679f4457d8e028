import { expect } from 'chai';
import http from 'node:http';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';
import { outrigger, TOKEN } from '../../support/control-harness.js';
import { waitFor } from '../../support/wait.js';
import { controlClient } from '../../../src/control/client/operator-client.js';
import { CaService, RotationStep } from '../../../src/gen/outrigger/control/v1/ca_pb.js';
import { newKeyAndCsr } from '../../../src/control/client/csr.js';
import type { CertificateAuthority } from '../../../src/control/server/ca/certificate-authority.js';

const API_ID = 'spiffe://cluster.local/ns/shop/sa/api';

/** Whether `chainPem`'s leaf was signed by `rootPem`. */
function issuedBy(chainPem: string, rootPem: string): boolean {
  const leaf = new X509Certificate(chainPem);
  const root = new X509Certificate(rootPem);
  return leaf.checkIssued(root) && leaf.verify(root.publicKey);
}

/**
 * Issue 17 point 3: `outrigger ca rotate` (stage → commit → drop) on the
 * root kept in the store, under steady load between two sidecars with
 * 3-second certificates: zero failed requests across the whole rotation;
 * afterwards a certificate from the old root is refused by the server
 * sidecar.
 */
describe('identity: root rotation (outrigger ca rotate) with zero failed requests', function () {
  this.timeout(90_000);
  let cp: MeshControlPlane;
  let app: Started<http.Server>;
  let api: TestSidecar;
  let web: TestSidecar;
  // Short enough for three steps in seconds, long enough that a loaded machine renews in time.
  const TTL = 5000;

  before(async () => {
    cp = await startMeshControlPlane({ 'tok-web': 'shop/web', 'tok-api': 'shop/api' }, { certTtlMs: TTL });
    app = await startH1Echo('app');
    api = await startMeshSidecar(cp, 'api-0.shop', 'tok-api', [
      listener('strict', { peerAuthentication: 'PEER_AUTHENTICATION_STRICT' }),
      routes('main', [prefixRoute('/', 'app')]),
      cluster('app', [app.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const mesh = { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: [API_ID] } };
    web = await startMeshSidecar(cp, 'web-0.shop', 'tok-web', [
      listener('main'),
      routes('main', [prefixRoute('/churn/', 'api-churn'), prefixRoute('/', 'api')]),
      cluster('api', [api.port('strict')], 'UPSTREAM_PROTOCOL_HTTP1', mesh),
      // New mesh connections keep being made (handshakes against the current bundle).
      cluster('api-churn', [api.port('strict')], 'UPSTREAM_PROTOCOL_HTTP1', { ...mesh, maxIdleConnections: 1 }),
    ]);
  });
  after(async () => {
    await web?.close();
    await api?.close();
    await app?.close();
    await cp?.stop();
  });

  it('stage, commit, drop under load: no request fails; the old root is refused afterwards', async () => {
    const ca = controlClient(CaService, { address: cp.address, token: TOKEN });
    const oldCa: CertificateAuthority = cp.ca;
    const oldRoot = oldCa.bundle[0]!;
    const sidecars = [api, web];
    const svid = (s: TestSidecar) => s.sidecar.identity!.current()!;
    /** Every sidecar installed a certificate after `since` (ms) that satisfies `ok`. */
    const renewedSince = (since: number, ok: (s: TestSidecar) => boolean) => () =>
      sidecars.every((s) => s.logs.some((l) => l.msg === 'workload certificate installed' && (l.time as number) > since) && ok(s));

    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const one = (path: string): Promise<number> =>
      new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: web.port('main'), path, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(-1));
        });
        req.on('error', () => resolve(-1));
      });
    let running = true;
    let ok = 0;
    const failed: number[] = [];
    const worker = async (path: string): Promise<void> => {
      for (let i = 0; running; i++) {
        const st = await one(path + i);
        if (st === 200) ok++;
        else failed.push(st);
      }
    };
    const load = Promise.all([worker('/a/'), worker('/churn/b/'), worker('/churn/c/')]);
    try {
      // 1. Stage: both roots trusted, the old one signs. Every sidecar renews and receives both.
      let t = Date.now();
      let state = (await ca.rotateRoot({ step: RotationStep.STAGE })).state!;
      expect(state.phase).to.equal('staged');
      expect(state.roots).to.have.length(2);
      const newRoot = state.roots.find((r) => !r.signing)!.pem;
      await waitFor(renewedSince(t, (s) => svid(s).bundlePem.length === 2 && issuedBy(svid(s).certChainPem, oldRoot)), 'every sidecar trusts both roots', 4 * TTL);
      // A step out of order is refused.
      const early = await ca.rotateRoot({ step: RotationStep.DROP }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(early?.code).to.equal(Code.FailedPrecondition);

      // 2. Commit: the new root signs; peers holding old-root certificates are still trusted.
      t = Date.now();
      state = (await ca.rotateRoot({ step: RotationStep.COMMIT })).state!;
      expect(state.phase).to.equal('committed');
      await waitFor(renewedSince(t, (s) => issuedBy(svid(s).certChainPem, newRoot)), 'every sidecar holds a certificate from the new root', 4 * TTL);

      // 3. Drop (with the CLI): only the new root is trusted.
      t = Date.now();
      const cli = await outrigger(['ca', 'rotate', '--drop', '--control-plane', cp.address], { OUTRIGGER_TOKEN: TOKEN });
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.include('phase: stable');
      await waitFor(renewedSince(t, (s) => svid(s).bundlePem.length === 1 && svid(s).bundlePem[0]!.trim() === newRoot.trim()), 'every sidecar trusts only the new root', 4 * TTL);
      // Some more load on the final state.
      const after = ok;
      await waitFor(() => ok > after + 20, 'traffic after the drop', 10_000);
    } finally {
      running = false;
      await load;
      agent.destroy();
    }
    expect(failed, `failed requests (of ${ok + failed.length})`).to.deep.equal([]);
    expect(ok).to.be.greaterThan(100);

    // A client certificate from the dropped root: the server sidecar refuses the connection.
    const { keyPem, csrPem } = await newKeyAndCsr();
    const stale = await oldCa.issue(csrPem, 'spiffe://cluster.local/ns/shop/sa/web', 3600_000);
    const refused = await new Promise<boolean>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: api.port('strict'), cert: stale.chain.join(''), key: keyPem, ca: svid(api).bundlePem as string[], checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      });
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('error', () => {});
      s.on('close', () => resolve(!data.startsWith('HTTP/1.1 ')));
    });
    expect(refused, 'a certificate of the dropped root is refused').to.equal(true);
    const audit = cp.logs.filter((l) => l.audit === true && l.op === 'ca-rotate').map((l) => l.step);
    expect(audit).to.deep.equal(['stage', 'commit', 'drop']);
  });
});
