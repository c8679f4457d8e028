import { expect } from 'chai';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigPipeline, type ApplyResult } from '../../../src/config/config-pipeline.js';
import type { ConfigSink, ConfigSource, Verdict } from '../../../src/config/config-source.js';
import { LastGood, awaitFirstSet } from '../../../src/config/last-good.js';
import type { ConfigSnapshot, ResourceDocument } from '../../../src/config/snapshot.js';
import { ConfigStore } from '../../../src/config/store.js';
import { writeFileAtomic } from '../../../src/control/store/file-store.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../../support/config-docs.js';
import { FakeClock } from '../../support/fake-clock.js';
import { waitFor } from '../../support/wait.js';

/** A source whose sets the test emits by hand. */
class HandSource implements ConfigSource {
  private sink: ConfigSink | undefined;
  constructor(readonly name: string) {}
  attach(sink: ConfigSink): void {
    this.sink = sink;
  }
  close(): void {}
  emit(docs: Doc[]): Promise<Verdict> {
    return this.sink!({ ok: true, documents: docs as unknown as ResourceDocument[] });
  }
  refuse(message: string): Promise<Verdict> {
    return this.sink!({ ok: false, errors: [{ document: 'config.yaml', path: '', message }] });
  }
}

/** Listener `main` → routes `main` → cluster `web` on `port`. */
const web = (port: number): Doc[] => [listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [port])];

const portOf = (snap: ConfigSnapshot | undefined, name = 'web'): number | undefined => snap?.clusters.get(name)?.endpoints[0]?.address?.port;

function quietLogger(lines: Record<string, unknown>[] = []): pino.Logger {
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return pino({ base: undefined }, out);
}

describe('ConfigPipeline', () => {
  let store: ConfigStore;
  /** What the data path was given, with what the store held at that moment. */
  let applied: { version: string; published: string | undefined }[];
  let refuse: Error | undefined;
  let pipeline: ConfigPipeline;
  let file: HandSource;
  let xds: HandSource;

  beforeEach(() => {
    store = new ConfigStore();
    applied = [];
    refuse = undefined;
    pipeline = new ConfigPipeline({
      store,
      validateOptions: { allowEphemeralPorts: true },
      apply: async (snap): Promise<ApplyResult> => {
        applied.push({ version: snap.version, published: store.current()?.version });
        return refuse ? { ok: false, error: refuse } : { ok: true };
      },
    });
    file = new HandSource('file');
    xds = new HandSource('xds');
    pipeline.add(file);
    pipeline.add(xds); // ranked above file
  });

  it('applies before it publishes, and publishes only what was applied', async () => {
    const v = await file.emit(web(1000));
    expect(v.ok).to.equal(true);
    const version = store.current()!.version;
    // The data path saw the snapshot while the store still held nothing.
    expect(applied).to.deep.equal([{ version, published: undefined }]);
    expect(v).to.deep.equal({ ok: true, version });
  });

  it('merges the sources; the later-added one wins a name clash, and losing it brings the other back', async () => {
    await file.emit(web(1000));
    await xds.emit([cluster('web', [2000]), cluster('extra', [3000])]);
    expect(portOf(store.current())).to.equal(2000);
    expect(portOf(store.current(), 'extra')).to.equal(3000);
    expect(pipeline.documentsOf(file).map((d) => d.metadata.name)).to.deep.equal(['main', 'main', 'web']);
    // The file reloads: the merge keeps the pushed resources and their precedence.
    await file.emit(web(1001));
    expect(portOf(store.current())).to.equal(2000);
    await xds.emit([cluster('extra', [3000])]);
    expect(portOf(store.current())).to.equal(1001);
  });

  it('an inconsistent merged set is refused with its errors; the running config and the merge are unchanged', async () => {
    await file.emit(web(1000));
    const before = store.current();
    const v = await xds.emit([routes('main', [prefixRoute('/', 'nowhere')])]);
    expect(v.ok).to.equal(false);
    if (!v.ok && v.stage === 'invalid') expect(v.errors.map((e) => `${e.document}: ${e.path}`)).to.deep.equal(['RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.cluster']);
    else expect.fail(`expected an invalid verdict, got ${JSON.stringify(v)}`);
    expect(store.current()).to.equal(before);
    expect(pipeline.hasSet(xds)).to.equal(false);
    expect(applied).to.have.length(1);
  });

  it('a set the data path refuses is not published, and the source gets the error to report', async () => {
    await file.emit(web(1000));
    const before = store.current();
    refuse = Object.assign(new Error('listen EADDRINUSE'), { port: 1234 });
    const v = await file.emit(web(1001));
    expect(v).to.deep.equal({ ok: false, stage: 'refused', error: refuse });
    expect(store.current()).to.equal(before);
    expect(pipeline.documentsOf(file).find((d) => d.kind === 'Cluster')?.spec).to.deep.include({ endpoints: [{ address: { host: '127.0.0.1', port: 1000 } }] });
    // A later set merges with the last accepted one, not the refused one.
    refuse = undefined;
    await xds.emit([cluster('extra', [3000])]);
    expect(portOf(store.current())).to.equal(1000);
  });

  it('the same content again is accepted without touching the data path', async () => {
    await file.emit(web(1000));
    const swaps: string[] = [];
    store.subscribe((s) => swaps.push(s.version));
    // The same resources, now from the other source: same merged config.
    const v = await xds.emit([cluster('web', [1000])]);
    expect(v).to.deep.equal({ ok: true, version: store.current()!.version });
    expect(applied).to.have.length(1);
    expect(swaps).to.deep.equal([]);
    expect(pipeline.hasSet(xds)).to.equal(true);
  });

  it("a source's own refusal changes nothing", async () => {
    await file.emit(web(1000));
    const before = store.current();
    const v = await file.refuse('kind: expected a string');
    expect(v).to.deep.include({ ok: false, stage: 'source' });
    expect(store.current()).to.equal(before);
    expect(applied).to.have.length(1);
  });

  it('handles one update at a time: a second source waits for the first install to finish', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inFlight = 0;
    let overlapped = false;
    const slow = new ConfigPipeline({
      store,
      validateOptions: { allowEphemeralPorts: true },
      apply: async () => {
        overlapped ||= inFlight > 0;
        inFlight++;
        if (applied.length === 0) await gate;
        applied.push({ version: '', published: undefined });
        inFlight--;
        return { ok: true };
      },
    });
    const a = new HandSource('a');
    const b = new HandSource('b');
    slow.add(a);
    slow.add(b);
    const first = a.emit(web(1000));
    const second = b.emit([cluster('extra', [3000])]);
    release();
    await Promise.all([first, second]);
    expect(overlapped).to.equal(false);
    // b's set merged with a's (it ran after a's was accepted).
    expect(portOf(store.current())).to.equal(1000);
    expect(portOf(store.current(), 'extra')).to.equal(3000);
  });

  it('stands in for a source that has delivered nothing, leaving clashing names to the others, until its first set', async () => {
    await file.emit(web(1000));
    const persisted = [...web(9999), cluster('extra', [3000])] as unknown as ResourceDocument[];
    const v = await pipeline.standIn(xds, persisted);
    expect(v?.ok).to.equal(true);
    expect(portOf(store.current())).to.equal(1000); // the file's cluster, not the persisted copy
    expect(portOf(store.current(), 'extra')).to.equal(3000);
    await xds.emit([cluster('other', [4000])]);
    expect(store.current()!.clusters.has('extra')).to.equal(false);
    expect(await pipeline.standIn(xds, persisted)).to.equal(undefined); // it has delivered: no stand-in
  });
});

describe('LastGood and the boot fallback', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-lastgood-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function setup(): { store: ConfigStore; pipeline: ConfigPipeline; file: HandSource; xds: HandSource; lastGood: LastGood; logs: Record<string, unknown>[] } {
    const logs: Record<string, unknown>[] = [];
    const store = new ConfigStore();
    const pipeline = new ConfigPipeline({ store, validateOptions: { allowEphemeralPorts: true }, apply: async () => ({ ok: true }) });
    const file = new HandSource('file');
    const xds = new HandSource('xds');
    pipeline.add(file);
    pipeline.add(xds);
    const lastGood = new LastGood({ dir, logger: quietLogger(logs), validateOptions: { allowEphemeralPorts: true }, writeFileAtomic });
    return { store, pipeline, file, xds, lastGood, logs };
  }

  it('persists every published snapshot; a later boot whose control plane times out serves it', async () => {
    const first = setup();
    first.lastGood.follow(first.store);
    await first.xds.emit(web(1000));
    const version = first.store.current()!.version;
    await waitFor(async () => (await first.lastGood.load()).ok, 'the snapshot to be persisted');
    expect(await readFile(join(dir, 'last-good.yaml'), 'utf8')).to.include('port: 1000');

    // Next boot: the control plane neither answers nor fails; the timeout (on the fake clock) falls back.
    const boot = setup();
    const clock = new FakeClock();
    const never = new Promise<void>(() => {});
    const waiting = awaitFirstSet({ pipeline: boot.pipeline, source: boot.xds, ready: never, down: never, clock, timeoutMs: 5000, lastGood: boot.lastGood, logger: quietLogger(boot.logs) });
    clock.advance(4999);
    expect(boot.store.current()).to.equal(undefined);
    clock.advance(1);
    await waiting;
    expect(boot.store.current()?.version).to.equal(version);
    expect(boot.logs.map((l) => [l.msg, l.reason])).to.deep.include(['control plane not available; serving the persisted last good config', 'timeout']);
    expect(clock.pending).to.equal(0);
  });

  it('does not fall back when the source answers first, and the boot timer is cancelled', async () => {
    const s = setup();
    await writeFileAtomic(dir, 'last-good.yaml', 'not: [valid');
    const clock = new FakeClock();
    await s.xds.emit(web(1000));
    await awaitFirstSet({ pipeline: s.pipeline, source: s.xds, ready: Promise.resolve(), down: new Promise(() => {}), clock, timeoutMs: 5000, lastGood: s.lastGood, logger: quietLogger(s.logs) });
    expect(portOf(s.store.current())).to.equal(1000);
    expect(clock.pending).to.equal(0);
    expect(s.logs).to.deep.equal([]);
  });

  it('a control plane that is down: the persisted set stands in next to the bootstrap, which keeps its own resources', async () => {
    const s = setup();
    await s.file.emit(web(1000));
    const persisted = setup();
    persisted.lastGood.follow(persisted.store);
    await persisted.xds.emit([...web(9999), cluster('extra', [3000])]);
    await waitFor(async () => (await s.lastGood.load()).ok, 'the snapshot to be persisted');
    await awaitFirstSet({ pipeline: s.pipeline, source: s.xds, ready: new Promise(() => {}), down: Promise.resolve(), clock: new FakeClock(), timeoutMs: 5000, lastGood: s.lastGood, logger: quietLogger(s.logs) });
    expect(portOf(s.store.current())).to.equal(1000);
    expect(portOf(s.store.current(), 'extra')).to.equal(3000);
    expect(s.logs.find((l) => l.reason === 'down')).not.to.equal(undefined);
  });
});
