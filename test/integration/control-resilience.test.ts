import { expect } from 'chai';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '../../src/config/snapshot.js';
import { TypeStatus_State } from '../../src/gen/outrigger/control/v1/operator_pb.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { waitFor } from '../support/wait.js';
import { client, outrigger, startCpSidecar, startTestControlPlane, tempDir, TOKEN } from '../support/control-harness.js';
import { backendOf } from '../support/backend-of.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];

describe('control plane: NACK, restarts, persisted config, history', function () {
  this.timeout(30000);
  let a: Started<unknown>, b: Started<unknown>;
  before(async () => {
    a = await startH1Echo('a');
    b = await startH1Echo('b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('a listener on a port in use is NACKed: old config keeps serving, status shows ERROR with the message', async () => {
    const cp = await startTestControlPlane();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const api = client(cp.address);
    await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
    const sc = await startCpSidecar({ address: cp.address, nodeId: 'nack-1' });
    try {
      const port = sc.port();
      await api.apply({ documents: J(listener('main', { address: { host: '127.0.0.1', port: busyPort } })) });
      await waitFor(async () => (await api.status({})).sidecars[0]?.types.some((t) => t.state === TypeStatus_State.ERROR) ?? false, 'ERROR state');
      const st = (await api.status({})).sidecars[0]!.types.find((t) => t.state === TypeStatus_State.ERROR)!;
      expect(st.error).to.match(/EADDRINUSE|address already in use/i);
      expect(await backendOf(port)).to.equal('a');
      const text = await sc.sidecar.registry.metrics();
      expect(text).to.match(/outrigger_xds_nacks_total\{kind="Listener"\} 1/);
      const cli = await outrigger(['status', '--control-plane', cp.address], { OUTRIGGER_TOKEN: TOKEN });
      expect(cli.code).to.equal(0);
      expect(cli.stdout).to.contain('ERROR');
    } finally {
      busy.close();
      await sc.close();
      await cp.close();
    }
  });

  it('restart mid-stream: the sidecar keeps serving, reconnects and resyncs', async () => {
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
    const sc = await startCpSidecar({ address: cp.address, nodeId: 'restart-1' });
    const port = sc.port();
    await cp.close();
    expect(await backendOf(port)).to.equal('a');
    // A change made while the sidecar is disconnected (same store dir, same port).
    const cp2 = await startTestControlPlane({ dir: cp.dir, port: cp.port });
    try {
      await client(cp2.address).apply({ documents: J(cluster('web', [b.port])) });
      await waitFor(async () => (await backendOf(port)) === 'b', 'resync to b', 10000);
      expect(sc.logs.some((l) => l.msg === 'control stream down; keeping the last good config')).to.equal(true);
    } finally {
      await sc.close();
      await cp2.close();
    }
  });

  it('a sidecar started while the control plane is down serves its persisted config', async () => {
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
    const first = await startCpSidecar({ address: cp.address, nodeId: 'persist-1' });
    const stateDir = first.stateDir;
    await waitFor(async () => {
      try {
        return (await import('node:fs')).existsSync(join(stateDir, 'last-good.yaml'));
      } catch {
        return false;
      }
    }, 'persisted');
    await first.close();
    await cp.close();
    const sc = await startCpSidecar({ address: cp.address, nodeId: 'persist-1' }, { stateDir });
    try {
      expect(await backendOf(sc.port())).to.equal('a');
      expect(sc.logs.some((l) => l.msg === 'control plane not available; serving the persisted last good config')).to.equal(true);
    } finally {
      await sc.close();
    }
  });

  it('history and rollback; get -o yaml re-applies unchanged', async () => {
    const cp = await startTestControlPlane();
    const env = { OUTRIGGER_CONTROL_PLANE: cp.address, OUTRIGGER_TOKEN: TOKEN };
    const api = client(cp.address);
    try {
      await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
      await api.apply({ documents: J(cluster('web', [b.port])) });
      const hist = await api.history({ kind: 'Cluster', name: 'web' });
      expect(hist.revisions.map((r) => Number(r.revision))).to.deep.equal([1, 2]);
      expect(hist.revisions[0]!.who).to.match(/^token:/);
      const rb = await outrigger(['rollback', 'cluster', 'web', '--to', '1'], env);
      expect(rb.code, rb.stderr).to.equal(0);
      const got = await api.get({ kind: 'Cluster', name: 'web' });
      expect(JSON.stringify(got.resource!.document)).to.contain(String(a.port));
      expect((await api.history({ kind: 'Cluster', name: 'web' })).revisions.map((r) => r.action)).to.deep.equal(['APPLY', 'APPLY', 'ROLLBACK']);
      const yaml = await outrigger(['get', 'clusters', '-o', 'yaml'], env);
      expect(yaml.code, yaml.stderr).to.equal(0);
      const dir = await tempDir();
      await writeFile(join(dir, 'got.yaml'), yaml.stdout);
      const again = await outrigger(['apply', '-f', join(dir, 'got.yaml')], env);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout).to.contain('Cluster/web unchanged');
      const bad = await outrigger(['apply', '-f', join(dir, 'got.yaml')], { OUTRIGGER_CONTROL_PLANE: cp.address });
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.contain('UNAUTHENTICATED');
      expect(cp.logs.filter((l) => l.audit === true).map((l) => l.op)).to.deep.equal(['apply', 'apply', 'rollback']);
      expect(JSON.stringify(cp.logs)).not.to.contain(TOKEN);
    } finally {
      await cp.close();
    }
  });
});
