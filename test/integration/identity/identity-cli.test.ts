import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cluster, listener, prefixRoute, routes, toYaml } from '../../support/config-docs.js';
import { outrigger, removeDir, spawnControlPlane, spawnSidecar, tempDir, TOKEN, writeToken } from '../../support/control-harness.js';

/**
 * The identity flags end to end on real processes: `outrigger control` as the
 * CA with a bootstrap-token file, `outrigger sidecar --bootstrap-token-file`,
 * then `outrigger identity` (the sidecar's /certs) and `outrigger status`
 * (each sidecar's certificate expiry).
 */
describe('identity: CLI (control --workload-token-file, sidecar --bootstrap-token-file, identity, status)', function () {
  this.timeout(60_000);
  let dir: string;
  let stops: (() => Promise<void>)[] = [];

  before(async () => {
    dir = await tempDir('outrigger-id-cli-');
  });
  after(async () => {
    for (const s of stops.reverse()) await s();
    stops = [];
    await removeDir(dir);
  });

  it('issues the sidecar its SVID and shows it', async () => {
    const tokens = join(dir, 'workloads');
    await writeFile(tokens, '# token namespace/serviceaccount\nboot-123 shop/web\n');
    const opToken = await writeToken(dir);
    const cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--port', '0', '--token-file', opToken, '--workload-token-file', tokens, '--trust-domain', 'example.org', '--cert-ttl', '1h']);
    stops.push(async () => {
      cp.child.kill('SIGTERM');
      await new Promise((r) => cp.child.once('exit', r));
    });
    const cfg = join(dir, 'config.yaml');
    await writeFile(cfg, toYaml([listener('main', { peerAuthentication: 'PEER_AUTHENTICATION_STRICT' }), routes('main', [prefixRoute('/', 'app')]), cluster('app', [1])]));
    const boot = join(dir, 'boot-token');
    await writeFile(boot, 'boot-123\n');
    const sc = await spawnSidecar(['--config', cfg, '--control-plane', `127.0.0.1:${cp.port}`, '--node-id', 'web-0.shop', '--bootstrap-token-file', boot]);
    stops.push(() => sc.stop());
    const ready = JSON.parse(sc.stdout().split('\n').find((l) => l.includes('"msg":"sidecar ready"'))!) as { adminPort: number };

    const json = await outrigger(['identity', '--sidecar', `127.0.0.1:${ready.adminPort}`, '-o', 'json']);
    expect(json.code, json.stderr).to.equal(0);
    const c = JSON.parse(json.stdout) as { spiffeId: string; expiresInSeconds: number; bundle: unknown[] };
    expect(c.spiffeId).to.equal('spiffe://example.org/ns/shop/sa/web');
    expect(c.expiresInSeconds).to.be.within(3000, 3600);
    expect(c.bundle).to.have.length(1);
    const text = await outrigger(['identity', '--sidecar', `127.0.0.1:${ready.adminPort}`]);
    expect(text.stdout).to.match(/SPIFFE ID: +spiffe:\/\/example\.org\/ns\/shop\/sa\/web/);

    const status = await outrigger(['status', '-o', 'json'], { OUTRIGGER_CONTROL_PLANE: `127.0.0.1:${cp.port}`, OUTRIGGER_TOKEN: TOKEN });
    expect(status.code, status.stderr).to.equal(0);
    const rows = (JSON.parse(status.stdout) as { sidecars: { nodeId: string; spiffeId?: string; certificateExpiry?: string }[] }).sidecars;
    const me = rows.find((r) => r.nodeId === 'web-0.shop');
    expect(me?.spiffeId).to.equal(c.spiffeId);
    expect(Date.parse(me!.certificateExpiry!)).to.be.greaterThan(Date.now() + 3000_000);
    // The issuance is in the control plane's audit trail, without the token.
    expect(cp.stdout()).to.include('"op":"issue"');
    expect(cp.stdout()).not.to.include('boot-123');
  });
});
