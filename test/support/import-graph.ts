import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * Our modules' import graph, read from the source text (no dependency): every
 * relative import, including type-only ones (they elide at run time but are
 * still a dependency between modules) and dynamic `import('…')` (a lazy edge
 * still couples the modules). Paths are relative to the repository root,
 * `.js` specifiers mapped to their `.ts` source.
 */

/** `type`: erased at run time (`import type`, `export type … from`, or every named binding `type`). */
export type EdgeKind = 'static' | 'type' | 'dynamic';

export interface ImportEdge {
  readonly to: string;
  readonly kind: EdgeKind;
}

export type ImportGraph = ReadonlyMap<string, readonly ImportEdge[]>;

// An import/export clause never holds `=`, `(`, `;` or a quote before `from`, which keeps a match
// from running across statements.
const FROM = /(?:^|\n)[ \t]*(import|export)\s([^;'"`()=]*?)\bfrom\s*['"]([^'"]+)['"]/g;
const BARE = /(?:^|\n)[ \t]*import\s*['"]([^'"]+)['"]/g;
const DYNAMIC = /\bimport\s*\(\s*(?:['"]([^'"]+)['"]\s*\))?/g;

function typeOnly(clause: string): boolean {
  if (/^\s*type\s/.test(clause)) return true;
  const named = /^\s*\{([^}]*)\}\s*$/.exec(clause);
  if (!named) return false;
  const names = named[1]!.split(',').map((s) => s.trim()).filter(Boolean);
  return names.length > 0 && names.every((n) => n.startsWith('type '));
}

/**
 * The module specifiers one source text imports, relative ones and all others alike, and the dynamic
 * imports whose target is not a string literal (the graph cannot follow them, so callers refuse them).
 */
export function parseImports(text: string): { specs: { spec: string; kind: EdgeKind }[]; unresolvable: number } {
  const specs: { spec: string; kind: EdgeKind }[] = [];
  for (const m of text.matchAll(FROM)) specs.push({ spec: m[3]!, kind: typeOnly(m[2]!) ? 'type' : 'static' });
  for (const m of text.matchAll(BARE)) specs.push({ spec: m[1]!, kind: 'static' });
  let unresolvable = 0;
  for (const m of text.matchAll(DYNAMIC)) {
    if (m[1] === undefined) unresolvable++;
    else specs.push({ spec: m[1], kind: 'dynamic' });
  }
  return { specs, unresolvable };
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The graph of every `.ts` file under `dirs` (generated code under src/gen excluded), plus files with dynamic imports it cannot follow. */
export function importGraph(root: string, dirs: readonly string[]): { graph: ImportGraph; unresolvable: string[] } {
  const graph = new Map<string, ImportEdge[]>();
  const unresolvable: string[] = [];
  const files = dirs.flatMap((d) => sources(join(root, d))).filter((f) => !relative(root, f).startsWith('src/gen/'));
  for (const f of files) {
    const parsed = parseImports(readFileSync(f, 'utf8'));
    const from = relative(root, f);
    if (parsed.unresolvable > 0) unresolvable.push(from);
    const edges = parsed.specs
      .filter((s) => s.spec.startsWith('.'))
      .map((s) => ({ to: relative(root, resolve(dirname(f), s.spec.replace(/\.js$/, '.ts'))), kind: s.kind }));
    graph.set(from, edges);
  }
  return { graph, unresolvable };
}

/** Every cycle a depth-first walk closes, each as its path with the first node repeated at the end. */
export function findCycles(graph: ReadonlyMap<string, Iterable<string>>): string[][] {
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[][] = [];
  const visit = (n: string, stack: string[]): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      cycles.push([...stack.slice(stack.indexOf(n)), n]);
      return;
    }
    state.set(n, 'visiting');
    for (const d of graph.get(n) ?? []) visit(d, [...stack, n]);
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) visit(n, []);
  return cycles;
}

/**
 * The folder a file belongs to, at the grain of ARCHITECTURE.md's layout: `src/<area>/<part>` with
 * everything below it (src/proxy/transcode/connect is part of src/proxy/transcode), `src/<area>` for
 * the area's own loose files (src/proxy/state.ts), and one folder for each other top-level directory.
 */
export function folderOf(file: string): string {
  const parts = dirname(file).split('/');
  return parts.slice(0, parts[0] === 'src' ? 3 : 1).join('/');
}

/** Folder → folder it imports → one file edge that shows it (for messages). */
export function folderGraph(graph: ImportGraph): Map<string, Map<string, string>> {
  const folders = new Map<string, Map<string, string>>();
  for (const [file, edges] of graph) {
    const from = folderOf(file);
    if (!folders.has(from)) folders.set(from, new Map());
    for (const e of edges) {
      const to = folderOf(e.to);
      const out = folders.get(from)!;
      if (to !== from && !out.has(to)) out.set(to, `${file} → ${e.to}`);
    }
  }
  return folders;
}

/** Whether `to` is reachable from `from` (at least one step). */
export function reaches(graph: ReadonlyMap<string, ReadonlyMap<string, unknown>>, from: string, to: string): boolean {
  const seen = new Set<string>();
  const queue = [...(graph.get(from)?.keys() ?? [])];
  while (queue.length > 0) {
    const n = queue.shift()!;
    if (n === to) return true;
    if (seen.has(n)) continue;
    seen.add(n);
    queue.push(...(graph.get(n)?.keys() ?? []));
  }
  return false;
}
