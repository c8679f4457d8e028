import { expect } from 'chai';
import { watch } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { stringify } from 'yaml';
import { FileConfigSource, type FileConfigSourceOptions } from '../../../src/config/file-source.js';
import { ConfigStore } from '../../../src/config/store.js';
import { ConfigPipeline, type ConfigPipelineOptions } from '../../../src/config/config-pipeline.js';
import type { ConfigError } from '../../../src/config/snapshot.js';
import { baseDocs, type Obj } from './helpers.js';
import { FakeClock } from '../../support/fake-clock.js';
import { waitFor } from '../../support/wait.js';

function yamlOf(docs: Obj[]): string {
  return docs.map((d) => stringify(d)).join('---\n');
}

function withPort(port: number): Obj[] {
  const docs = baseDocs();
  ((docs[0]!.spec as Obj).address as Obj).port = port;
  return docs;
}

describe('FileConfigSource', () => {
  let dir: string;
  let file: string;
  let logs: Record<string, unknown>[];
  let source: FileConfigSource | undefined;
  let store: ConfigStore;
  let applied: string[];
  let rejected: ConfigError[][];
  let n = 0;

  /** Replaces the file atomically, as editors and the test harness do. */
  async function replace(path: string, text: string): Promise<void> {
    const tmp = join(dir, `.tmp-${n++}`);
    await writeFile(tmp, text);
    await rename(tmp, path);
  }

  /** The source on a pipeline publishing to `store` (the sidecar's wiring, without listeners). */
  function create(opts: Partial<FileConfigSourceOptions> & { apply?: () => void } = {}): FileConfigSource {
    const { apply, ...sourceOpts } = opts;
    const logger = pino(
      { base: undefined },
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
          cb();
        },
      }),
    );
    source = new FileConfigSource({
      path: file,
      logger,
      debounceMs: 10,
      onApplied: (v) => applied.push(v),
      onRejected: (e) => rejected.push([...e]),
      ...sourceOpts,
    });
    const applyToDataPath: ConfigPipelineOptions['apply'] = async () => {
      try {
        apply?.();
        return { ok: true };
      } catch (err) {
        return { ok: false, error: err as Error };
      }
    };
    new ConfigPipeline({ store, validateOptions: sourceOpts.validateOptions, apply: applyToDataPath }).add(source);
    return source;
  }

  const port = (): number | undefined => store.current()?.listeners.get('main')?.address?.port;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-watch-'));
    file = join(dir, 'config.yaml');
    logs = [];
    store = new ConfigStore();
    applied = [];
    rejected = [];
  });
  afterEach(async () => {
    source?.close();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('loads on start, then swaps in each valid change', async () => {
    await writeFile(file, yamlOf(withPort(8080)));
    const first = await create().start();
    expect(first.ok).to.equal(true);
    expect(port()).to.equal(8080);
    expect(applied).to.deep.equal([store.current()!.version]);

    await replace(file, yamlOf(withPort(8081)));
    await waitFor(() => port() === 8081, 'the change to be applied');
    expect(applied).to.have.length(2);
    expect(applied[1]).to.equal(store.current()!.version);

    // In-place writes (no rename) are seen too.
    await writeFile(file, yamlOf(withPort(8082)));
    await waitFor(() => port() === 8082, 'the in-place write to be applied');
    expect(rejected).to.deep.equal([]);
  });

  it('keeps the previous snapshot on an invalid change and reports every error once', async () => {
    await writeFile(file, yamlOf(withPort(8080)));
    await create().start();
    const good = store.current()!.version;

    const bad = withPort(0);
    (((bad[1]!.spec as Obj).virtualHosts as Obj[])[0]!.routes as Obj[])[2] = { match: { prefix: '/' }, route: { cluster: 'bookz' } };
    await replace(file, yamlOf(bad));
    await waitFor(() => rejected.length > 0, 'onRejected');
    expect(store.current()!.version).to.equal(good);
    expect(rejected[0]!.map((e) => `${e.document}: ${e.path}: ${e.message}`)).to.deep.equal([
      'Listener/main: spec.address.port: must be 1..65535, got 0',
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].route.cluster: unknown cluster "bookz"',
    ]);
    const line = logs.find((l) => l.msg === 'config rejected; the previous config keeps serving');
    expect(line?.errors).to.have.length(2);
    expect(line?.keptVersion).to.equal(good);

    // A syntax error is rejected the same way; then a fix is applied.
    await replace(file, 'kind: [oops\n');
    await waitFor(() => rejected.length > 1, 'second onRejected');
    expect(store.current()!.version).to.equal(good);
    await replace(file, yamlOf(withPort(9000)));
    await waitFor(() => port() === 9000, 'the fix to be applied');
  });

  it('returns the errors of a bad first config and does not watch', async () => {
    await writeFile(file, yamlOf(withPort(0)));
    const first = await create().start();
    expect(first.ok).to.equal(false);
    expect(store.current()).to.equal(undefined);
    expect(rejected).to.deep.equal([]);
    expect(logs.some((l) => l.msg === 'config invalid')).to.equal(true);
  });

  it('accepts port 0 with allowEphemeralPorts', async () => {
    await writeFile(file, yamlOf(withPort(0)));
    expect((await create({ validateOptions: { allowEphemeralPorts: true } }).start()).ok).to.equal(true);
  });

  it('watches a directory: a new file is picked up', async () => {
    const [l, rc, c1, c2, cla] = baseDocs();
    await writeFile(join(dir, 'a.yaml'), yamlOf([l!, rc!, c1!, c2!, cla!]));
    file = dir;
    await create().start();
    expect(store.current()!.clusters.size).to.equal(2);
    const extra = { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'more' }, spec: (c1 as Obj).spec };
    await writeFile(join(dir, 'b.json'), JSON.stringify(extra));
    await waitFor(() => store.current()!.clusters.size === 3, 'the new file to be loaded');
  });

  it('debounces on the injected clock: bursts of writes become one load', async () => {
    const clock = new FakeClock();
    await writeFile(file, yamlOf(withPort(8080)));
    await create({ clock, debounceMs: 100 }).start();
    for (const p of [8081, 8082, 8083]) await replace(file, yamlOf(withPort(p)));
    await waitFor(() => clock.pending > 0, 'the debounce timer');
    expect(port()).to.equal(8080);
    clock.advance(50);
    expect(port()).to.equal(8080);
    clock.advance(50);
    await waitFor(() => port() === 8083, 'the debounced load');
    expect(applied).to.have.length(2);
  });

  it('polls when watching is off', async () => {
    const clock = new FakeClock();
    await writeFile(file, yamlOf(withPort(8080)));
    await create({ clock, watch: false, pollIntervalMs: 1000, debounceMs: 0 }).start();
    await writeFile(file, yamlOf(withPort(8181)));
    clock.advance(1000); // the poll notices the new stat signature, arms the debounce and the next poll
    await waitFor(() => clock.pending === 2, 'the poll to notice');
    clock.advance(0);
    await waitFor(() => port() === 8181, 'the polled change');
  });

  it('counts a failing apply as a rejection and keeps the old version', async () => {
    await writeFile(file, yamlOf(withPort(8080)));
    let fail = false;
    await create({
      apply: () => {
        if (fail) throw new Error('EADDRINUSE');
      },
    }).start();
    const good = store.current()!.version;
    fail = true;
    await replace(file, yamlOf(withPort(8081)));
    await waitFor(() => rejected.length > 0, 'onRejected');
    expect(rejected[0]![0]!.message).to.equal('could not apply: EADDRINUSE');
    expect(store.current()!.version).to.equal(good);
    expect(source!.currentVersion).to.equal(good);
  });

  it('stops watching on close', async () => {
    await writeFile(file, yamlOf(withPort(8080)));
    const clock = new FakeClock();
    await create({ clock }).start();
    source!.close();
    // A watcher of our own on the same directory is the marker: libuv hands one inotify event to every
    // watcher of the directory in the same turn, so once ours has it (and the turn is over) a live
    // watcher of the source would have armed its debounce.
    const marker = watch(dir, { persistent: false });
    try {
      const seen = new Promise<void>((r) => marker.on('change', (_e, name) => String(name) === 'config.yaml' && r()));
      await replace(file, yamlOf(withPort(8081)));
      await seen;
      await new Promise((r) => setImmediate(r)); // the rest of this turn's watcher callbacks
    } finally {
      marker.close();
    }
    expect(clock.pending, 'timers armed after close').to.equal(0);
    clock.advance(60_000);
    expect(port()).to.equal(8080);
  });
});
