import { expect } from 'chai';
import { mkdtemp, rm, writeFile, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config/loader.js';
import { dumpSnapshot } from '../../../src/config/dump.js';
import { parseDocuments } from '../../../src/config/documents.js';
import { buildSnapshot } from '../../../src/config/loader.js';
import { formatConfigError, type ConfigSnapshot, type Result } from '../../../src/config/snapshot.js';
import { seededRandom, type Random } from '../../../src/core/random.js';
import { baseDocs, doc, snapshotOf, type Obj } from './helpers.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/config/', import.meta.url));

function ok(r: Result<ConfigSnapshot>): ConfigSnapshot {
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

describe('config loader', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-loader-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads the demo config; YAML, JSON and a directory of files give the same version', async () => {
    const yaml = ok(await loadConfig(join(FIXTURES, 'demo.yaml')));
    const json = ok(await loadConfig(join(FIXTURES, 'demo.json')));
    const fromDir = ok(await loadConfig(join(FIXTURES, 'dir')));
    expect(yaml.version).to.match(/^[0-9a-f]{16}$/);
    expect(json.version).to.equal(yaml.version);
    expect(fromDir.version).to.equal(yaml.version);
    expect([...yaml.listeners.keys()]).to.deep.equal(['main']);
    expect([...yaml.routeConfigs.keys()]).to.deep.equal(['main']);
    expect([...yaml.clusters.keys()]).to.deep.equal(['assets', 'bookstore']);
    expect([...yaml.loadAssignments.keys()]).to.deep.equal(['assets']);
    expect(yaml.listeners.get('main')!.name).to.equal('main');
  });

  it('normalises documents: sorted by kind order then name, defaults omitted, no spec.name', () => {
    const snap = snapshotOf([...baseDocs()].reverse());
    expect(snap.documents.map((d) => `${d.kind}/${d.metadata.name}`)).to.deep.equal([
      'Cluster/books',
      'Cluster/web',
      'ClusterLoadAssignment/web',
      'Listener/main',
      'RouteConfiguration/main',
    ]);
    expect(snap.documents[3]!.spec).to.deep.equal({ address: { host: '127.0.0.1', port: 8080 }, routeConfig: 'main' });
    expect(snapshotOf(baseDocs()).version).to.equal(snap.version);
  });

  it('changes the version with content, labels included', () => {
    const base = snapshotOf(baseDocs()).version;
    const labelled = baseDocs();
    (labelled[0]!.metadata as Obj).labels = { team: 'a' };
    expect(snapshotOf(labelled).version).to.not.equal(base);
    const moved = baseDocs();
    ((moved[0]!.spec as Obj).address as Obj).port = 8081;
    expect(snapshotOf(moved).version).to.not.equal(base);
  });

  it('reads only *.yaml, *.yml and *.json of a directory, skipping dot files, following symlinks', async () => {
    const [l, rc, c1, c2, cla] = baseDocs();
    await writeFile(join(dir, 'a.yaml'), stringify(l));
    await writeFile(join(dir, 'b.yml'), stringify(rc));
    await writeFile(join(dir, 'c.json'), JSON.stringify([c1, c2]));
    await mkdir(join(dir, '..data'));
    await writeFile(join(dir, '..data', 'd.yaml'), stringify(cla));
    await symlink(join(dir, '..data', 'd.yaml'), join(dir, 'd.yaml'));
    await writeFile(join(dir, 'notes.txt'), 'not: [config');
    await writeFile(join(dir, '.swap.yaml'), 'not: [config');
    await mkdir(join(dir, 'sub.yaml'));
    expect(ok(await loadConfig(dir)).version).to.equal(snapshotOf(baseDocs()).version);
  });

  it('collects syntax errors of every file', async () => {
    await writeFile(join(dir, 'a.yaml'), 'a: [1\n');
    await writeFile(join(dir, 'b.json'), '{"a": }');
    const r = await loadConfig(dir);
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.errors.map((e) => e.document)).to.deep.equal([join(dir, 'a.yaml'), join(dir, 'b.json')]);
  });

  it('rejects a missing path and a config without documents', async () => {
    const missing = await loadConfig(join(dir, 'nope.yaml'));
    expect(!missing.ok && missing.errors[0]!.message).to.match(/^cannot read: ENOENT/);
    await writeFile(join(dir, 'empty.yaml'), '---\n# nothing yet\n');
    const empty = await loadConfig(join(dir, 'empty.yaml'));
    expect(!empty.ok && empty.errors.map(formatConfigError)).to.deep.equal([`${join(dir, 'empty.yaml')}: no resource documents found`]);
  });

  it('dump → load keeps the version (JSON and YAML)', async () => {
    const snap = ok(await loadConfig(join(FIXTURES, 'demo.yaml')));
    for (const format of ['json', 'yaml'] as const) {
      const file = join(dir, `dump.${format}`);
      const text = dumpSnapshot(snap, format);
      await writeFile(file, text);
      const again = ok(await loadConfig(file));
      expect(again.version, format).to.equal(snap.version);
      expect(dumpSnapshot(again, format)).to.equal(text);
    }
    expect(dumpSnapshot(snap, 'yaml').split('\n')[0]).to.equal(`# version: ${snap.version}`);
    expect(JSON.parse(dumpSnapshot(snap, 'json')).version).to.equal(snap.version);
  });

  it('property: dump → load round-trips random valid configs, in any document order', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const random = seededRandom(seed);
      const docs = randomConfig(random);
      const snap = snapshotOf(docs);
      for (const format of ['json', 'yaml'] as const) {
        const parsed = parseDocuments(dumpSnapshot(snap, format), { format });
        if (!parsed.ok) throw new Error(`seed ${seed} ${format}: ${parsed.errors.map(formatConfigError).join('; ')}`);
        const again = buildSnapshot(parsed.value);
        if (!again.ok) throw new Error(`seed ${seed} ${format}: ${again.errors.map(formatConfigError).join('; ')}`);
        expect(again.value.version, `seed ${seed} ${format}`).to.equal(snap.version);
      }
      expect(snapshotOf(shuffle(docs, random)).version, `seed ${seed} shuffled`).to.equal(snap.version);
    }
  });
});

/** Strings that YAML would misread if the dumper did not quote them. */
const TRICKY = ['true', 'no', 'null', '~', '123', '0x1F', '1e3', '- a', 'a: b', '#x', "it's", 'a\nb', ' lead', '*', '{x}', '', 'ü'];

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

function shuffle<T>(items: readonly T[], random: Random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function randomConfig(random: Random): Obj[] {
  const docs: Obj[] = [];
  const clusters: string[] = [];
  const nClusters = 1 + random.int(4);
  for (let i = 0; i < nClusters; i++) {
    const name = `c${i}`;
    clusters.push(name);
    const endpoints = Array.from({ length: 1 + random.int(3) }, (_, k) => ({
      address: { host: pick(random, ['127.0.0.1', '::1', 'db.local']), port: 1 + random.int(65535) },
      ...(random.next() < 0.5 ? { weight: 1 + random.int(10) } : {}),
      ...(random.next() < 0.3 ? { locality: { zone: `z${k}` } } : {}),
    }));
    const timeouts = random.next() < 0.5 ? { connectTimeout: `${random.int(10)}.${random.int(1000)}s` } : {};
    const labels = random.next() < 0.5 ? { labels: { k: pick(random, TRICKY), 'app.io/x': pick(random, TRICKY) } } : {};
    if (random.next() < 0.5) {
      docs.push(doc('Cluster', name, { type: 'DISCOVERY_TYPE_STATIC', endpoints, ...timeouts }, labels));
    } else {
      docs.push(doc('Cluster', name, { type: 'DISCOVERY_TYPE_EDS', protocol: 'UPSTREAM_PROTOCOL_HTTP2', ...timeouts }, labels));
      docs.push(doc('ClusterLoadAssignment', name, { endpoints: random.next() < 0.2 ? [] : endpoints }));
    }
  }
  const matches = [
    () => ({ prefix: pick(random, ['/', '/api/', '/a b/']) }),
    () => ({ path: '/exact', methods: ['GET', 'POST'] }),
    () => ({ template: '/v1/{name=shelves/*}/books/**' }),
    () => ({ regex: '^/r/[0-9]+$', headers: [{ name: 'x-v', exact: pick(random, TRICKY) }, { name: 'x-p', present: true, invert: true }] }),
    () => ({ grpc: { service: 'pkg.Svc', method: random.next() < 0.5 ? 'Get' : '' } }),
  ];
  const routes = Array.from({ length: 1 + random.int(6) }, (_, i) => {
    const match = pick(random, matches)();
    const action =
      random.next() < 0.2
        ? { directResponse: { status: 200 + random.int(400), body: pick(random, TRICKY) } }
        : { route: { cluster: pick(random, clusters), ...(random.next() < 0.3 ? { timeout: '2.5s', hostRewrite: 'up.local' } : {}) } };
    return { name: `r${i}`, match, ...action };
  });
  docs.push(doc('RouteConfiguration', 'main', { virtualHosts: [{ name: 'vh', domains: ['*'], routes }] }));
  docs.push(
    doc('Listener', 'main', {
      address: { host: '127.0.0.1', port: 1 + random.int(65535) },
      routeConfig: 'main',
      ...(random.next() < 0.5 ? { limits: { maxRequestBodyBytes: String(random.int(1e9)) }, trustedHops: random.int(3) } : {}),
      ...(random.next() < 0.5 ? { accessLog: { sensitiveHeaders: ['x-token'] }, idleTimeout: '300s' } : {}),
    }),
  );
  return docs;
}
