import { expect } from 'chai';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCycles, folderGraph, importGraph, parseImports, reaches } from '../support/import-graph.js';

/**
 * The dependency rules of ARCHITECTURE.md, checked on the import statements
 * (type-only and dynamic ones included): no cycles among our modules nor
 * among our folders, and the layers only import downwards.
 * `npm run check:cycles` (madge, in CI) checks the module cycles a second way.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Folder loops that exist today and are being removed by the data-path redesign (which owns src/proxy/).
 * Each entry is a pair of folders that import each other directly; the folder-loop check ignores the
 * imports between the two (both ways). Empty this list once the redesign is merged: a further check
 * fails on any entry that is no longer a loop.
 */
const KNOWN_FOLDER_LOOPS_BEING_REMOVED: readonly (readonly [string, string])[] = [
  // None left: the request-pipeline redesign removed codec ↔ transcode and src/proxy ↔ transcode.
];

const samePair = (a: readonly [string, string], x: string, y: string): boolean => (a[0] === x && a[1] === y) || (a[0] === y && a[1] === x);

describe('architecture', () => {
  const { graph: g, unresolvable } = importGraph(root, ['src', 'sidecar', 'injector']);
  const folders = folderGraph(g);

  it('reads every kind of import: static, type-only, re-exports, bare and dynamic', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from './b.js';",
      'import {\n  type C,\n  type D,\n} from "./c.js";',
      "import { e, type E } from './e.js';",
      "export { f } from './f.js';",
      "export type { G } from './g.js';",
      "export * from './h.js';",
      "import './i.js';",
      "const j = await import('./j.js');",
      "type K = typeof import('./k.js');",
      "import { readFile } from 'node:fs/promises';",
      'const l = await import(name);',
    ].join('\n');
    const { specs, unresolvable: n } = parseImports(text);
    expect(specs.map((s) => `${s.spec} ${s.kind}`).sort()).to.deep.equal([
      './a.js static',
      './b.js type',
      './c.js type',
      './e.js static',
      './f.js static',
      './g.js type',
      './h.js static',
      './i.js static',
      './j.js dynamic',
      './k.js dynamic',
      'node:fs/promises static',
    ]);
    expect(n).to.equal(1);
  });

  it('can follow every dynamic import (its target is a string literal)', () => {
    // The one exception: the plugin loader imports the user's modules (docs/plugins.md), which are not part of this graph.
    const USER_CODE_LOADERS = ['src/core/module-loader.ts'];
    expect(
      unresolvable.filter((f) => !USER_CODE_LOADERS.includes(f)),
      'dynamic imports with a computed target',
    ).to.deep.equal([]);
  });

  it('has no import cycles', () => {
    // Guard against a parser that silently finds nothing, or a directory no longer scanned.
    expect([...g.values()].flat().length).to.be.greaterThan(50);
    for (const dir of ['src/', 'sidecar/', 'injector/']) expect([...g.keys()].some((f) => f.startsWith(dir)), dir).to.equal(true);
    const cycles = findCycles(new Map([...g].map(([f, edges]) => [f, edges.map((e) => e.to)]))).map((c) => c.join(' → '));
    expect(cycles, `import cycles:\n  ${cycles.join('\n  ')}\n`).to.be.empty;
  });

  it('has no folder loops: no two folders import each other, directly or through other folders', () => {
    const allowed = new Map(
      [...folders].map(([from, to]) => [from, new Map([...to].filter(([t]) => !KNOWN_FOLDER_LOOPS_BEING_REMOVED.some((p) => samePair(p, from, t))))]),
    );
    const loops = findCycles(new Map([...allowed].map(([f, to]) => [f, [...to.keys()]]))).map((c) =>
      c
        .slice(1)
        .map((to, i) => `${c[i]} → ${to} (${allowed.get(c[i]!)!.get(to)})`)
        .join('\n    '),
    );
    expect(loops, `folder loops:\n  ${loops.join('\n  ')}\n`).to.be.empty;
  });

  it('allows only folder loops that still exist', () => {
    const gone = KNOWN_FOLDER_LOOPS_BEING_REMOVED.filter(([a, b]) => !(reaches(folders, a, b) && reaches(folders, b, a)));
    expect(gone.map((p) => p.join(' ↔ ')), 'no longer loops: remove them from KNOWN_FOLDER_LOOPS_BEING_REMOVED').to.deep.equal([]);
  });

  it('keeps the layers: core imports nothing of ours; config never imports proxy, control, admin or sidecar', () => {
    const bad: string[] = [];
    for (const [file, edges] of g) {
      for (const { to: d } of edges) {
        if (d.startsWith('src/gen/')) continue;
        if (file.startsWith('src/core/') && !d.startsWith('src/core/')) bad.push(`${file} → ${d}`);
        if (file.startsWith('src/config/') && /^src\/(proxy|control|admin)\/|^sidecar\//.test(d)) bad.push(`${file} → ${d}`);
        if (file.startsWith('src/proxy/') && /^src\/(control|admin)\/|^sidecar\//.test(d)) bad.push(`${file} → ${d}`);
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('keeps the injector apart: it imports only core, observability, config types and its own modules', () => {
    const bad: string[] = [];
    for (const [file, edges] of g) {
      if (!file.startsWith('injector/')) continue;
      for (const e of edges) {
        const ok = /^(injector|src\/core|src\/observability)\//.test(e.to) || (e.to.startsWith('src/config/') && e.kind === 'type');
        if (!ok) bad.push(`${file} → ${e.to} (${e.kind})`);
      }
    }
    expect(bad).to.deep.equal([]);
  });
});
