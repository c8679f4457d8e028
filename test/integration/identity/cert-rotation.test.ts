import { expect } from 'chai';
import http from 'node:http';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';
import { collector } from '../../support/control-harness.js';
import { FakeClock } from '../../support/fake-clock.js';
import { samplesOf } from '../../support/prom-text.js';
import { waitFor } from '../../support/wait.js';
import { WorkloadCerts } from '../../../src/control/client/workload-certs.js';
import { CertificateAuthority, type CaMaterial } from '../../../src/control/server/ca/certificate-authority.js';
import { newKeyAndCsr } from '../../../src/control/client/csr.js';
import { systemClock } from '../../../src/core/clock.js';
import { seededRandom } from '../../../src/core/random.js';

const HOUR = 3600_000;

describe('identity: certificate rotation', function () {
  this.timeout(60_000);

  describe('schedule (injected clock)', () => {
    let cp: MeshControlPlane;
    const clock = new FakeClock();
    before(async () => {
      cp = await startMeshControlPlane({ 'tok-a': 'ns1/a' }, { clock, certTtlMs: 24 * HOUR });
    });
    after(async () => cp?.stop());

    it('renews at half the lifetime (±10 %), retries with backoff while the control plane is away, warns at 25 % left', async () => {
      const logs: Record<string, unknown>[] = [];
      const registry = new Registry();
      const certs = new WorkloadCerts({
        address: cp.address,
        nodeId: 'a-0.ns1',
        tokenFile: await cp.tokenFor('tok-a'),
        clock,
        random: seededRandom(7),
        logger: collector(logs),
        registry,
        initialBackoffMs: 1000,
        maxBackoffMs: 60_000,
      });
      certs.start();
      await certs.first;
      const first = certs.current()!;
      expect(first.spiffeId).to.equal('spiffe://cluster.local/ns/ns1/sa/a');
      expect(first.notAfterMs - clock.nowMs()).to.equal(24 * HOUR);
      const expiry = samplesOf(await registry.metrics(), 'outrigger_identity_cert_expiry_seconds')[0]!.value;
      expect(expiry).to.equal(24 * 3600);

      clock.advance(0.39 * 24 * HOUR);
      await new Promise((r) => setImmediate(r));
      expect(certs.current(), 'no renewal before 40 % of the lifetime').to.equal(first);
      clock.advance(0.22 * 24 * HOUR); // 61 %
      await waitFor(() => certs.current() !== first, 'renewed by 60 % of the lifetime');
      const second = certs.current()!;
      expect(second.serial).not.to.equal(first.serial);

      // The control plane goes away: renewals fail, the current certificate stays, retries back off.
      await cp.close();
      clock.advance(0.61 * 24 * HOUR);
      await waitFor(() => logs.some((l) => l.msg === 'workload certificate request failed; keeping the current certificate'), 'a failed renewal logged');
      expect(certs.current()).to.equal(second);
      const failed = async (): Promise<number> =>
        samplesOf(await registry.metrics(), 'outrigger_identity_cert_requests_total').find((s) => s.labels.result === 'failed')?.value ?? 0;
      // Each failure schedules the next attempt (backoff up to 60 s here, never past the expiry).
      for (let n = 2; n <= 4; n++) {
        clock.advance(60_000);
        const want = n;
        let seen = 0;
        await waitFor(async () => (seen = await failed()) >= want, `failed attempt ${want} (seen ${seen})`);
      }
      expect(certs.current()).to.equal(second);
      for (let i = 0; i < 40 && !logs.some((l) => String(l.msg).includes('25% of its life is left')); i++) {
        clock.advance(HOUR);
        await new Promise((r) => setImmediate(r));
      }
      expect(logs.some((l) => l.level === 50 && String(l.msg).includes('25% of its life is left')), 'the loud warning').to.equal(true);
      certs.close();
    });
  });

  describe('short-lived certificates under steady load (real handshakes)', () => {
    let cp: MeshControlPlane;
    let app: Started<http.Server>;
    let api: TestSidecar;
    let web: TestSidecar;

    before(async () => {
      cp = await startMeshControlPlane({ 'tok-web': 'shop/web', 'tok-api': 'shop/api' }, { certTtlMs: 4000 });
      app = await startH1Echo('app');
      api = await startMeshSidecar(cp, 'api-0.shop', 'tok-api', [
        listener('strict', { peerAuthentication: 'PEER_AUTHENTICATION_STRICT' }),
        routes('main', [prefixRoute('/', 'app')]),
        cluster('app', [app.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ]);
      const mesh = { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/api'] } };
      web = await startMeshSidecar(cp, 'web-0.shop', 'tok-web', [
        listener('main'),
        routes('main', [prefixRoute('/churn/', 'api-churn'), prefixRoute('/', 'api')]),
        cluster('api', [api.port('strict')], 'UPSTREAM_PROTOCOL_HTTP1', mesh),
        // One idle connection kept: the others close after each request, so new mesh connections keep being made.
        cluster('api-churn', [api.port('strict')], 'UPSTREAM_PROTOCOL_HTTP1', { ...mesh, maxIdleConnections: 1 }),
      ]);
    });
    after(async () => {
      await web?.close();
      await api?.close();
      await app?.close();
      await cp?.stop();
    });

    it('rotates several times with zero failed requests; new connections get the new certificate', async () => {
      const rotations = (s: TestSidecar): number => s.logs.filter((l) => l.msg === 'workload certificate installed' && l.rotated === true).length;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const stored = JSON.parse(await readFile(join(cp.dir, 'ca.json'), 'utf8')) as CaMaterial;
      const peerCa = await CertificateAuthority.load(stored, 'cluster.local', systemClock());
      const { keyPem, csrPem } = await newKeyAndCsr();
      const peer = await peerCa.issue(csrPem, 'spiffe://cluster.local/ns/shop/sa/peer', HOUR);
      const one = (path: string): Promise<number> =>
        new Promise((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: web.port('main'), path, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
            res.on('error', () => resolve(-1));
          });
          req.on('error', () => resolve(-1));
        });
      /** A fresh mTLS connection straight to the server sidecar: the serial of the certificate it presented. */
      const directSerial = (): Promise<string> =>
        new Promise((resolve, reject) => {
          const s = tls.connect(
            { host: '127.0.0.1', port: api.port('strict'), ca: [...stored.certPem.split(/(?=-----BEGIN)/)], cert: peer.chain.join(''), key: keyPem, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] },
            () => {
              resolve(s.getPeerCertificate().serialNumber);
              s.end();
            },
          );
          s.on('error', reject);
        });

      let ok = 0;
      const failed: number[] = [];
      const serials = new Set<string>();
      const deadline = Date.now() + 40_000;
      const worker = async (path: string): Promise<void> => {
        for (let i = 0; i < 4000 && Date.now() < deadline && (rotations(api) < 3 || rotations(web) < 3); i++) {
          const st = await one(path + i);
          if (st === 200) ok++;
          else failed.push(st);
        }
      };
      const prober = async (): Promise<void> => {
        while (Date.now() < deadline && (rotations(api) < 3 || rotations(web) < 3)) {
          const serial = await directSerial();
          serials.add(serial);
          // The server presents the certificate it holds now (a rotation may land between the handshake and this check).
          const now = api.sidecar.identity!.current()!.serial;
          expect([now, ...serials]).to.include(serial);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await Promise.all([worker('/a/'), worker('/b/'), worker('/churn/c/'), worker('/churn/d/'), prober()]);
      agent.destroy();
      expect(failed, `failed requests (of ${ok + failed.length})`).to.deep.equal([]);
      expect(rotations(api), 'server sidecar rotations').to.be.at.least(3);
      expect(rotations(web), 'client sidecar rotations').to.be.at.least(3);
      expect(serials.size, 'new connections saw several server certificates').to.be.at.least(2);
      expect(ok).to.be.greaterThan(50);
    });
  });
});
