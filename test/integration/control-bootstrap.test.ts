import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '../../src/config/snapshot.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, toYaml, type Doc } from '../support/config-docs.js';
import { client, removeDir, startCpSidecar, startTestControlPlane, tempDir } from '../support/control-harness.js';
import { waitFor } from '../support/wait.js';
import { backendOf } from '../support/backend-of.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];

describe('sidecar: --config (bootstrap) combined with --control-plane', function () {
  this.timeout(15000);
  let a: Started<unknown>, b: Started<unknown>, c: Started<unknown>;
  before(async () => {
    [a, b, c] = await Promise.all([startH1Echo('a'), startH1Echo('b'), startH1Echo('c')]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('serves bootstrap and pushed resources together; the control plane wins a name clash; bootstrap reloads keep the merge', async () => {
    const dir = await tempDir('outrigger-boot-');
    const bootFile = join(dir, 'bootstrap.yaml');
    const boot = (port: number): Doc[] => [listener('boot', { routeConfig: 'boot' }), routes('boot', [prefixRoute('/', 'local')]), cluster('local', [port])];
    await writeFile(bootFile, toYaml(boot(a.port)));
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [b.port])) });
    const sc = await startCpSidecar({ address: cp.address, nodeId: 'boot-1' }, { configPath: bootFile });
    try {
      // Both sets are live in one snapshot.
      await waitFor(() => sc.sidecar.addresses().has('main'), 'pushed listener');
      expect(await backendOf(sc.port('boot'))).to.equal('a');
      expect(await backendOf(sc.port('main'))).to.equal('b');
      const dump = JSON.stringify(sc.sidecar.store.current()!.documents.map((d) => `${d.kind}/${d.metadata.name}`).sort());
      expect(dump).to.equal(JSON.stringify(['Cluster/local', 'Cluster/web', 'Listener/boot', 'Listener/main', 'RouteConfiguration/boot', 'RouteConfiguration/main']));

      // A pushed resource with a bootstrap resource's name wins…
      await api.apply({ documents: J(cluster('local', [c.port])) });
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'c', 'control plane wins the clash');
      // …and when it is deleted, the bootstrap one is back.
      await api.delete({ kind: 'Cluster', name: 'local' });
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'a', 'bootstrap cluster back');

      // Changing the bootstrap file re-merges with the pushed resources.
      await writeFile(bootFile, toYaml(boot(c.port)));
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'c', 'bootstrap reload');
      expect(await backendOf(sc.port('main'))).to.equal('b');
      // Pushes after the reload still keep the bootstrap part.
      await api.apply({ documents: J(cluster('web', [a.port])) });
      await waitFor(async () => (await backendOf(sc.port('main'))) === 'a', 'push after reload');
      expect(await backendOf(sc.port('boot'))).to.equal('c');

      // A bootstrap change that would break the merged set is rejected; both parts keep serving.
      await writeFile(bootFile, toYaml([listener('boot', { routeConfig: 'missing' })]));
      await waitFor(async () => /outrigger_config_reloads_total\{result="rejected"\} [1-9]/.test(await sc.sidecar.registry.metrics()), 'rejected reload');
      expect(await backendOf(sc.port('boot'))).to.equal('c');
      expect(await backendOf(sc.port('main'))).to.equal('a');
    } finally {
      await sc.close();
      await cp.close();
      await removeDir(dir);
    }
  });

  it('routes named by a bootstrap listener are subscribed: the control plane can serve them without pushing the listener', async () => {
    const dir = await tempDir('outrigger-boot-');
    const bootFile = join(dir, 'bootstrap.yaml');
    const boot = (rc: string): Doc[] => [listener('boot', { routeConfig: rc }), routes(rc, [prefixRoute('/', 'local')]), cluster('local', [a.port])];
    await writeFile(bootFile, toYaml(boot('outbound')));
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    // The control plane has a route config of the bootstrap listener's name, and a cluster; no listener.
    await api.apply({ documents: J(routes('outbound', [prefixRoute('/', 'web')]), cluster('web', [b.port])) });
    const sc = await startCpSidecar({ address: cp.address, nodeId: 'boot-rds-1' }, { configPath: bootFile });
    try {
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'b', "the pushed 'outbound' routes on the bootstrap listener");
      // Deleting the pushed routes brings the bootstrap ones back.
      await api.delete({ kind: 'RouteConfiguration', name: 'outbound' });
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'a', 'bootstrap routes back');
      // A bootstrap reload naming other routes subscribes to those.
      await api.apply({ documents: J(routes('other', [prefixRoute('/', 'web')])) });
      await writeFile(bootFile, toYaml(boot('other')));
      await waitFor(async () => (await backendOf(sc.port('boot'))) === 'b', "the pushed 'other' routes after the reload");
    } finally {
      await sc.close();
      await cp.close();
      await removeDir(dir);
    }
  });
});
