import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dependency rules of ARCHITECTURE.md, checked on the import statements:
 * no cycles among our modules, and the layers only import downwards.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"](\.[^'"]+)['"]/g;

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  const files = ['src', 'sidecar'].flatMap((d) => sources(join(root, d))).filter((f) => !f.includes('/src/gen/'));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      // Type-only imports create no runtime edge but still express a layer dependency; keep them.
      deps.push(relative(root, resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'))));
    }
    g.set(relative(root, f), deps);
  }
  return g;
}

describe('architecture', () => {
  const g = graph();

  it('has no import cycles', () => {
    // Guard against a parser that silently finds nothing.
    expect([...g.values()].flat().length).to.be.greaterThan(50);
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (n: string, stack: string[]): void => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'visiting') {
        cycles.push([...stack.slice(stack.indexOf(n)), n].join(' → '));
        return;
      }
      state.set(n, 'visiting');
      for (const d of g.get(n) ?? []) visit(d, [...stack, n]);
      state.set(n, 'done');
    };
    for (const n of g.keys()) visit(n, []);
    expect(cycles).to.deep.equal([]);
  });

  it('keeps the layers: core imports nothing of ours; config never imports proxy, control, admin or sidecar', () => {
    const bad: string[] = [];
    for (const [file, deps] of g) {
      for (const d of deps) {
        if (d.startsWith('src/gen/')) continue;
        if (file.startsWith('src/core/') && !d.startsWith('src/core/')) bad.push(`${file} → ${d}`);
        if (file.startsWith('src/config/') && /^src\/(proxy|control|admin)\/|^sidecar\//.test(d)) bad.push(`${file} → ${d}`);
        if (file.startsWith('src/proxy/') && /^src\/(control|admin)\/|^sidecar\//.test(d)) bad.push(`${file} → ${d}`);
      }
    }
    expect(bad).to.deep.equal([]);
  });
});
