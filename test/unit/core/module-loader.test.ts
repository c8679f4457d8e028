import { expect } from 'chai';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportOf, ModuleLoader } from '../../../src/core/module-loader.js';

describe('ModuleLoader (plugin modules)', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), 'outrigger-modules-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  it('resolves ./ paths against its base dir (--plugin-dir), keeps absolute paths, leaves package names to import()', () => {
    const m = new ModuleLoader('/srv/plugins');
    expect(m.fileOf('./a.mjs')).to.equal('/srv/plugins/a.mjs');
    expect(m.fileOf('../b/c.ts')).to.equal('/srv/b/c.ts');
    expect(m.fileOf('/abs/d.js')).to.equal('/abs/d.js');
    expect(m.fileOf('some-package')).to.equal(undefined);
  });

  it('imports by content: unchanged files are reused, changed ones re-imported; .ts compiled; failures recorded, never thrown', async () => {
    const m = new ModuleLoader(dir);
    await writeFile(join(dir, 'p.mjs'), 'export const v = 1; export const id = Math.random();');
    // No package.json in the temp dir: t.ts is CommonJS-scoped, the case that failed on Node 24 with tsx's ESM hooks alone.
    await writeFile(join(dir, 't.ts'), 'const n: number = 41; export default { answer: n + 1 };');
    await m.prepare(['./p.mjs', './t.ts', './missing.mjs', 'no-such-package-outrigger']);
    const p1 = m.get('./p.mjs');
    expect(p1?.ok && p1.exports['v']).to.equal(1);
    const t = m.get('./t.ts');
    expect(t?.ok && exportOf(t.exports, 'answer')).to.equal(42);
    const missing = m.get('./missing.mjs');
    expect(missing?.ok === false && missing.error).to.match(/cannot read .*missing\.mjs: ENOENT/);
    const pkg = m.get('no-such-package-outrigger');
    expect(pkg?.ok === false && pkg.error).to.match(/cannot import no-such-package-outrigger/);
    await m.prepare(['./p.mjs']);
    expect(m.get('./p.mjs')).to.equal(p1, 'unchanged: the same module');
    await writeFile(join(dir, 'p.mjs'), 'export const v = 2; export const id = Math.random();');
    await m.prepare(['./p.mjs']);
    const p2 = m.get('./p.mjs');
    expect(p2?.ok && p2.exports['v']).to.equal(2);
  });

  it('several loaders in one process (tests, validate beside a sidecar) share the .ts hooks: a CommonJS-scoped .ts still loads after ESM-scoped ones', async () => {
    // Each loader registering tsx's hooks again stacked them; from the third layer a CommonJS-scoped .ts
    // was run as ESM ("__filename is not defined in ES module scope"), seen on Node 20, 22 and 24.
    await mkdir(join(dir, 'esm'), { recursive: true });
    await writeFile(join(dir, 'esm', 'package.json'), '{"type": "module"}');
    await writeFile(join(dir, 'esm', 'e.ts'), 'export const kind: string = "esm";');
    for (let i = 0; i < 3; i++) {
      const l = new ModuleLoader(dir);
      await l.prepare(['./esm/e.ts']);
      const e = l.get('./esm/e.ts');
      expect(e?.ok && exportOf(e.exports, 'kind'), e?.ok === false ? e.error : undefined).to.equal('esm');
    }
    await writeFile(join(dir, 'c.ts'), 'export const kind: string = "cjs";');
    const m = new ModuleLoader(dir);
    await m.prepare(['./c.ts']);
    const c = m.get('./c.ts');
    expect(c?.ok && exportOf(c.exports, 'kind'), c?.ok === false ? c.error : undefined).to.equal('cjs');
  });

  it('ownerOf: an error thrown in a plugin file (.mjs or compiled .ts) is that plugin\'s; one with another top frame, or no stack, is nobody\'s', async () => {
    const m = new ModuleLoader(dir);
    await writeFile(join(dir, 'own.mjs'), 'export function fail() { return new Error("mine"); } export function viaCallback(f) { return f(); }');
    await writeFile(join(dir, 'own.ts'), 'export function fail(): Error { return new Error("typed"); }');
    await m.prepare(['./own.mjs', './own.ts']);
    const mjs = m.get('./own.mjs');
    const ts = m.get('./own.ts');
    if (!mjs?.ok || !ts?.ok) throw new Error(`not loaded: ${mjs?.ok === false ? mjs.error : 'own.mjs ok'}; ${ts?.ok === false ? ts.error : 'own.ts ok'}`);
    expect(m.ownerOf((exportOf(mjs.exports, 'fail') as () => Error)())).to.equal('./own.mjs');
    expect(m.ownerOf((exportOf(ts.exports, 'fail') as () => Error)())).to.equal('./own.ts');
    // Created by our code, even when a plugin called it: the top frame decides.
    expect(m.ownerOf((exportOf(mjs.exports, 'viaCallback') as (f: () => Error) => Error)(() => new Error('ours')))).to.equal(undefined);
    expect(m.ownerOf(new Error('ours'))).to.equal(undefined);
    expect(m.ownerOf('a string reason')).to.equal(undefined);
  });
});
