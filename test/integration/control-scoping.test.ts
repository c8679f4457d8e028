import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '../../src/config/snapshot.js';
import { readNodeLabels } from '../../src/control/client/node-labels.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { backendOf } from '../support/backend-of.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, removeDir, spawnSidecar, startCpSidecar, startTestControlPlane, tempDir } from '../support/control-harness.js';
import { LightSotw, TYPE, kindOf, nodeOf, transportFor } from '../support/xds-light.js';
import { waitFor } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
const selected = (d: Doc, selector: Record<string, unknown>): Doc => ({ ...d, metadata: { ...d.metadata, selector } } as Doc);

/**
 * Scoping on real sidecars: a resource whose metadata.selector selects a
 * node (id glob, labels from --node-labels-file, node cluster) reaches only
 * that sidecar; one without reaches all; a change only some sidecars see is
 * pushed only to them.
 */
describe('control plane: scoping by selector (real sidecars)', function () {
  this.timeout(30000);
  let a: Started<unknown>, b: Started<unknown>, c: Started<unknown>;
  before(async () => {
    [a, b, c] = await Promise.all([startH1Echo('a'), startH1Echo('b'), startH1Echo('c')]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('a selected resource reaches only the sidecars it selects, and a change to it is pushed only to them', async () => {
    const dir = await tempDir('outrigger-scope-');
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    const canarySel = { nodeId: 'canary-*', labels: { track: 'canary' } };
    await api.apply({
      documents: J(
        listener('main'),
        routes('main', [prefixRoute('/', 'web')]),
        cluster('web', [a.port]),
        selected(listener('extra', { routeConfig: 'extra' }), canarySel),
        selected(routes('extra', [prefixRoute('/', 'extra')]), canarySel),
        selected(cluster('extra', [b.port]), canarySel),
        selected(cluster('stable-only', [c.port]), { nodeCluster: 'stable' }),
      ),
    });
    const labels = join(dir, 'labels');
    await writeFile(labels, 'track="canary"\napp="web"\n');
    const canary = await spawnSidecar(['--control-plane', cp.address, '--node-id', 'canary-1', '--node-labels-file', labels, '--state-dir', join(dir, 'state')]);
    // Same labels but an id the glob does not match: not selected (every field must match).
    const lookalike = await startCpSidecar({ address: cp.address, nodeId: 'stable-9', nodeLabels: { track: 'canary' } });
    const stable = await startCpSidecar({ address: cp.address, nodeId: 'stable-1', nodeCluster: 'stable' });
    try {
      expect(Object.keys(canary.listeners).sort()).to.deep.equal(['extra', 'main']);
      expect(await backendOf(canary.listeners.extra!.port)).to.equal('b');
      expect(await backendOf(canary.listeners.main!.port)).to.equal('a');
      for (const sc of [lookalike, stable]) {
        expect([...sc.sidecar.addresses().keys()].sort()).to.deep.equal(['main']);
        expect(await backendOf(sc.port())).to.equal('a');
      }
      const clusters = (sc: typeof stable): string[] => sc.sidecar.store.current()!.documents.filter((d) => d.kind === 'Cluster').map((d) => d.metadata.name).sort();
      expect(clusters(stable)).to.deep.equal(['stable-only', 'web']);
      expect(clusters(lookalike)).to.deep.equal(['web']);

      const sent = async (): Promise<Record<string, string>> => {
        const st = await api.status({});
        return Object.fromEntries(st.sidecars.map((s) => [s.nodeId, s.types.find((t) => t.typeUrl === TYPE('Cluster'))!.versionSent]));
      };
      await waitFor(async () => (await api.status({})).sidecars.length === 3 && (await api.status({})).sidecars.every((s) => s.types.every((t) => t.state === 1)), 'all SYNCED');
      const before = await sent();
      const pushes = async (): Promise<number> => Number(/^outrigger_control_pushes_total\{kind="Cluster"\} (\d+)$/m.exec(await cp.registry.metrics())?.[1] ?? 0);
      const pushesBefore = await pushes();

      // A change to the canary's cluster: the canary moves, nobody else is pushed anything.
      await api.apply({ documents: J(selected(cluster('extra', [c.port]), canarySel)) });
      await waitFor(async () => (await backendOf(canary.listeners.extra!.port)) === 'c', 'canary traffic to c');
      const after = await sent();
      expect(after['canary-1']).not.to.equal(before['canary-1']);
      expect(after['stable-1']).to.equal(before['stable-1']);
      expect(after['stable-9']).to.equal(before['stable-9']);
      expect((await pushes()) - pushesBefore).to.equal(1);

      // A change without a selector reaches all three.
      await api.apply({ documents: J(cluster('web', [b.port])) });
      for (const port of [canary.listeners.main!.port, lookalike.port(), stable.port()]) {
        await waitFor(async () => (await backendOf(port)) === 'b', `traffic to b on ${port}`);
      }
    } finally {
      await canary.stop();
      await lookalike.close();
      await stable.close();
      await cp.close();
      await removeDir(dir);
    }
  });

  it('a node whose own view would be inconsistent keeps its previous config (logged); the nodes it is consistent for move on', async () => {
    const cp = await startTestControlPlane({ debounceMs: 10 });
    const api = client(cp.address);
    const open: LightSotw[] = [];
    try {
      await api.apply({
        documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001]), selected(cluster('only-c', [1002]), { nodeId: 'c-*' })),
      });
      const subs: Record<string, string[]> = { Cluster: ['*'], RouteConfiguration: ['main'] };
      const stream = async (id: string): Promise<LightSotw> => {
        const s = new LightSotw(transportFor(cp.address));
        open.push(s);
        s.send({ node: nodeOf(id), typeUrl: TYPE('Cluster'), resourceNames: subs.Cluster });
        s.send({ typeUrl: TYPE('RouteConfiguration'), resourceNames: subs.RouteConfiguration });
        for (let i = 0; i < 2; i++) {
          const r = await s.next();
          s.ack(r, subs[kindOf(r.typeUrl)]!);
        }
        return s;
      };
      const sc = await stream('c-1');
      const so = await stream('o-1');
      // Valid as a whole (only-c exists), but o-1 does not see only-c.
      await api.apply({ documents: J(routes('main', [prefixRoute('/', 'only-c')])) });
      const r = await sc.next();
      expect(kindOf(r.typeUrl)).to.equal('RouteConfiguration');
      sc.ack(r, subs.RouteConfiguration!);
      // o-1 is sent nothing: its next responses, read below, are those of the change that makes it consistent.
      await waitFor(() => cp.logs.some((l) => l.msg === 'node view inconsistent; keeping its previous config' && l.node === 'o-1'), 'the inconsistent view to be logged');
      // Once only-c reaches everyone, o-1's view is consistent again: clusters, then routes.
      await api.apply({ documents: J(cluster('only-c', [1002])) });
      const got = [await so.next(), await so.next()].map((x) => kindOf(x.typeUrl));
      expect(got).to.deep.equal(['Cluster', 'RouteConfiguration']);
    } finally {
      for (const s of open) s.close();
      await cp.close();
    }
  });

  it('--node-labels-file: downward-API lines or a YAML map', async () => {
    const dir = await tempDir('outrigger-labels-');
    try {
      await writeFile(join(dir, 'downward'), 'app="web"\ntier="gold \\"x\\""\n');
      expect(await readNodeLabels(join(dir, 'downward'))).to.deep.equal({ app: 'web', tier: 'gold "x"' });
      await writeFile(join(dir, 'yaml'), 'app: web\nreplicas: 3\n');
      expect(await readNodeLabels(join(dir, 'yaml'))).to.deep.equal({ app: 'web', replicas: '3' });
      await writeFile(join(dir, 'bad'), '- a\n- b\n');
      const err = await readNodeLabels(join(dir, 'bad')).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/expected key="value" lines or a map of strings/);
    } finally {
      await removeDir(dir);
    }
  });
});
