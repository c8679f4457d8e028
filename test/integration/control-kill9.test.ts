import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '../../src/config/snapshot.js';
import { FileStateStore } from '../../src/control/store/file-store.js';
import type { StoreState } from '../../src/control/store/store-state.js';
import { cluster, type Doc } from '../support/config-docs.js';
import { client, removeDir, spawnControlPlane, tempDir, writeToken } from '../support/control-harness.js';
import { deferred } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];

/** A deterministic PRNG (mulberry32) so a failure can be replayed with the printed seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('control plane: kill -9 during a stream of applies (file store)', function () {
  this.timeout(30000);

  it('never leaves a torn store, and every acknowledged apply is present after a restart', async () => {
    const dir = await tempDir('outrigger-kill9-');
    const tokenFile = await writeToken(dir);
    const storeDir = join(dir, 'store');
    const seed = Number(process.env.KILL9_SEED ?? Date.now() % 100000);
    const random = rng(seed);
    const acked = new Set<string>();
    let seq = 0;
    try {
      for (let round = 0; round < 4; round++) {
        const cp = await spawnControlPlane(['--store', `file:${storeDir}`, '--token-file', tokenFile, '--port', '0']);
        const api = client(`127.0.0.1:${cp.port}`);
        // Everything acknowledged before this round is still there (the previous kill lost nothing).
        const listed = await api.list({ kind: 'Cluster' });
        const names = new Set(listed.resources.map((r) => (r.document as { metadata: { name: string } }).metadata.name));
        for (const n of acked) expect(names.has(n), `seed ${seed}: acknowledged ${n} lost`).to.equal(true);
        // Three writers applying as fast as they can; SIGKILL at a random moment: right after a random
        // number (1-10) of this round's applies were acknowledged, while the other writers' are in flight.
        let killed = false;
        const killAt = acked.size + 1 + Math.floor(random() * 10);
        const due = deferred();
        const writer = async (): Promise<void> => {
          while (!killed) {
            const name = `c${++seq}`;
            // A few hundred bytes of padding per resource so the state file grows and writes take time.
            const doc = cluster(name, [10000 + (seq % 50000)], 'UPSTREAM_PROTOCOL_UNSPECIFIED', { connectTimeout: '1s' });
            try {
              await api.apply({ documents: J(doc) });
              acked.add(name);
              if (acked.size >= killAt) due.resolve();
            } catch {
              return; // the process is gone; this apply was never acknowledged
            }
          }
        };
        const writers = [writer(), writer(), writer()];
        await Promise.race([due.promise, Promise.all(writers)]); // (all writers gone: the process died by itself)
        cp.child.kill('SIGKILL');
        killed = true;
        await new Promise<void>((r) => (cp.child.exitCode !== null || cp.child.signalCode !== null ? r() : cp.child.once('exit', () => r())));
        await Promise.all(writers);
        // The file on disk parses and holds a whole revision.
        const text = await readFile(join(storeDir, 'state.json'), 'utf8');
        const state = JSON.parse(text) as StoreState;
        expect(state.revision, `seed ${seed}`).to.equal(state.history.length);
        const onDisk = new Set(state.resources.map((e) => e.doc.metadata.name));
        for (const n of acked) expect(onDisk.has(n), `seed ${seed}: acknowledged ${n} missing after kill ${round}`).to.equal(true);
      }
      expect(acked.size, 'some applies were acknowledged').to.be.greaterThan(8);
      console.log(`      (kill -9 x4, seed ${seed}: ${acked.size} applies acknowledged, ${seq} attempted)`);
      // The store opens cleanly and leaves no temp files of interrupted writes behind.
      const store = await FileStateStore.open(storeDir);
      const state = await store.load();
      expect(state.resources.length).to.be.at.least(acked.size);
      expect((await readdir(storeDir)).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
    } finally {
      await removeDir(dir);
    }
  });
});
