import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What `import()` of a plugin gave: its exports, or why it could not be imported. */
export type LoadedModule = { readonly ok: true; readonly exports: Readonly<Record<string, unknown>> } | { readonly ok: false; readonly error: string };

/** `.ts` / `.mts` / `.cts`: compiled on load by tsx (a dependency), registered on first use. */
const TS_EXT = /\.[cm]?tsx?$/;

/**
 * Imports the ES modules plugins name (HTTP filters, custom health checks;
 * docs/plugins.md), once per content: the composition root owns one.
 *
 * ESM caches a module by URL for the life of the process, so a file is
 * imported with `?v=<hash of its bytes>`: a config reload that finds a file
 * changed imports the new version, one that finds it unchanged reuses the
 * module it has (and so do the filters compiled from it). `prepare` is the
 * async step (reading, hashing, importing) before a config version compiles;
 * `get` is the synchronous lookup compilers use afterwards.
 *
 * Specifiers: absolute paths; `./` or `../` paths, relative to `baseDir`
 * (the loader of a config file has already made paths in that file absolute,
 * see config/plugin-paths.ts, so this is for config pushed by the control
 * plane: the sidecar's --plugin-dir, default its working directory); else a
 * package name, resolved as the sidecar resolves its own imports and never
 * re-imported (packages change with a restart, not a reload).
 */
export class ModuleLoader {
  /** By specifier: the content hash it was last imported at, and the result. */
  private readonly loaded = new Map<string, { readonly hash: string; readonly module: LoadedModule }>();

  constructor(private readonly baseDir: string = process.cwd()) {}

  /** The file a path specifier names (undefined for a package name). */
  fileOf(spec: string): string | undefined {
    if (isAbsolute(spec)) return spec;
    if (spec.startsWith('./') || spec.startsWith('../')) return resolve(this.baseDir, spec);
    return undefined;
  }

  /**
   * Imports every specifier whose file changed since it was last imported
   * (or that was never imported). Never throws: a module that cannot be read
   * or imported is recorded as failed, for the compiler to report.
   */
  async prepare(specs: Iterable<string>): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const spec of new Set(specs)) jobs.push(this.load(spec));
    await Promise.all(jobs);
  }

  /**
   * The specifier of the plugin whose file threw `err`: the top frame of its
   * stack is in a plugin file this loader imported (undefined: not a plugin's,
   * or no stack to tell). Used to keep a plugin's stray background error from
   * ending the process (plugin-fault-guard.ts).
   */
  ownerOf(err: unknown): string | undefined {
    const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : undefined;
    if (stack === undefined) return undefined;
    const top = stack.split('\n').find((l) => l.trimStart().startsWith('at '));
    if (top === undefined) return undefined;
    for (const spec of this.loaded.keys()) {
      const file = this.fileOf(spec);
      if (file === undefined) continue;
      // A file URL (ESM), a path (CommonJS), or — a .ts compiled as CommonJS by tsx — a data: URL naming it as filePath=<encoded>.
      if (top.includes(pathToFileURL(file).href) || top.includes(`(${file}:`) || top.includes(` ${file}:`) || top.includes(`filePath=${encodeURIComponent(file)}`)) return spec;
    }
    return undefined;
  }

  /** The module `prepare` imported for `spec` (undefined: never prepared). */
  get(spec: string): LoadedModule | undefined {
    return this.loaded.get(spec)?.module;
  }

  private async load(spec: string): Promise<void> {
    const file = this.fileOf(spec);
    let hash = 'package';
    if (file !== undefined) {
      try {
        hash = createHash('sha256').update(await readFile(file)).digest('hex').slice(0, 16);
      } catch (err) {
        this.loaded.set(spec, { hash: '', module: { ok: false, error: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` } });
        return;
      }
    }
    const cur = this.loaded.get(spec);
    if (cur !== undefined && cur.hash === hash && cur.module.ok) return;
    let module: LoadedModule;
    try {
      const ns = file === undefined ? await import(spec) : await this.importFile(file, hash);
      module = { ok: true, exports: ns as Record<string, unknown> };
    } catch (err) {
      module = { ok: false, error: `cannot import ${file ?? spec}: ${err instanceof Error ? err.message : String(err)}` };
    }
    this.loaded.set(spec, { hash, module });
  }

  private async importFile(file: string, hash: string): Promise<unknown> {
    const url = `${pathToFileURL(file).href}?v=${hash}`;
    if (!TS_EXT.test(file)) return import(url);
    return (await tsImporter())(url, import.meta.url);
  }
}

/**
 * tsx's namespaced API: its hooks apply to plugin imports (and what they import) only, not to the sidecar's
 * own modules. Registered once per process, on the first .ts plugin, and shared by every ModuleLoader:
 * the hooks are process-wide, each register() stacks another layer on Node's loader chain, and with
 * three layers of one namespace Node 22 runs a CommonJS .ts as ESM ("__filename is not defined in ES
 * module scope"). Both halves, as tsx's own tsImport() does: a .ts outside a "type": "module" package is
 * CommonJS, and from Node 24 (module.registerHooks) it is loaded through the CommonJS loader with
 * `?namespace=` on its path, which only tsx's CommonJS hooks of that namespace resolve ("Cannot find
 * module …?namespace=" without them).
 */
let tsImport: Promise<(url: string, parent: string) => Promise<unknown>> | undefined;
function tsImporter(): Promise<(url: string, parent: string) => Promise<unknown>> {
  tsImport ??= Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]).then(([esm, cjs]) => {
    cjs.register({ namespace: 'outrigger-plugins' });
    const api = esm.register({ namespace: 'outrigger-plugins' });
    return (u, parent) => api.import(u, parent);
  });
  tsImport.catch(() => (tsImport = undefined)); // a failed tsx import is retried by the next .ts plugin
  return tsImport;
}

/**
 * A plugin's export `name`: a named export, else a property of the default
 * export (also when a `.ts` file compiled as CommonJS nests it one level deeper).
 */
export function exportOf(exports: Readonly<Record<string, unknown>>, name: string): unknown {
  if (exports[name] !== undefined) return exports[name];
  let d = exports['default'] as Record<string, unknown> | undefined;
  if (d !== null && typeof d === 'object' && d[name] === undefined && typeof d['default'] === 'object') d = d['default'] as Record<string, unknown>;
  return d !== null && typeof d === 'object' ? d[name] : undefined;
}
