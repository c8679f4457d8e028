import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { baseDocs, type Obj } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/config');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `outrigger validate` as a user would, through bin/outrigger.js on the sources. */
function outrigger(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin/outrigger.js'), 'validate', ...args],
      { cwd: ROOT, env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('outrigger validate (child process)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-validate-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints a summary and exits 0 for a valid config', async () => {
    const r = await outrigger('-f', join(FIXTURES, 'demo.yaml'));
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(
      /^valid: 5 documents \(1 Listener, 1 RouteConfiguration, 2 Cluster, 1 ClusterLoadAssignment\), version [0-9a-f]{16}\n$/,
    );
    const json = await outrigger('--file', join(FIXTURES, 'demo.json'));
    expect(json.stdout).to.equal(r.stdout);
    const fromDir = await outrigger('-f', join(FIXTURES, 'dir'));
    expect(fromDir.stdout).to.equal(r.stdout);
  });

  it('prints every error on stderr, one per line, and exits 1', async () => {
    const docs = baseDocs();
    ((docs[0]!.spec as Obj).address as Obj).port = 0;
    (((docs[1]!.spec as Obj).virtualHosts as Obj[])[0]!.routes as Obj[])[2] = { match: { prefix: 42 }, route: { cluster: 'web' } };
    const file = join(dir, 'bad.yaml');
    await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
    const r = await outrigger('-f', file);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.equal('');
    expect(r.stderr.split('\n')).to.deep.equal([
      'RouteConfiguration/main: spec.virtualHosts[0].routes[2].match.prefix: expected string, got number',
      'Listener/main: spec.address.port: must be 1..65535, got 0',
      '',
    ]);
  });

  it('accepts port 0 with --allow-ephemeral-ports', async () => {
    const docs = baseDocs();
    ((docs[0]!.spec as Obj).address as Obj).port = 0;
    const file = join(dir, 'ephemeral.yaml');
    await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
    expect((await outrigger('-f', file)).code).to.equal(1);
    const r = await outrigger('-f', file, '--allow-ephemeral-ports');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^valid: 5 documents/);
  });

  it('prints usage for --help and exits 0; exits 2 on bad usage', async () => {
    const help = await outrigger('--help');
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^usage: outrigger validate -f FILE\|DIR/);
    const missing = await outrigger();
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.match(/-f FILE\|DIR is required/);
    const unknown = await outrigger('--nope');
    expect(unknown.code).to.equal(2);
  });

  it('prints warnings with their field paths on stderr and still exits 0', async () => {
    const docs = baseDocs();
    Object.assign(docs[2]!.spec as Obj, { lbPolicy: 'LB_POLICY_RING_HASH' });
    const file = join(dir, 'warn.yaml');
    await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
    const r = await outrigger('-f', file);
    expect(r.code).to.equal(0);
    expect(r.stderr.trimEnd().split('\n')).to.deep.equal([0, 1].map(
      (i) =>
        `warning: RouteConfiguration/main: spec.virtualHosts[0].routes[${i}].route.hashPolicy: cluster "books" balances with LB_POLICY_RING_HASH but this route has no hashPolicy: each request gets a random hash (no stickiness)`,
    ));
    expect(r.stdout).to.match(/^valid: 5 documents .*, version [0-9a-f]{16}, 2 warnings\n$/);
  });
});
