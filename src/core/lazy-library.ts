import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const requireModule = createRequire(import.meta.url);

/**
 * A library the sidecar loads the first time a config needs it, not at start
 * (issue 14: idle RSS). `@bufbuild/cel`, `jose` and `ioredis` together were
 * ~30 MiB of an idle sidecar whose config used none of them.
 *
 * Synchronous on purpose: config validation (a CEL condition's syntax) and
 * filter compilation are synchronous, and stay so. The specifier is resolved
 * as `import` would resolve it (the ESM build of a dual package), then loaded
 * with `require()`, which loads ES modules since Node 20.19 (the engines
 * floor) into the same module cache as `import`: a later dynamic import of
 * the library gets this instance, not a second copy. The first call pays the load
 * (tens of ms), at config load, never per request: callers keep what they
 * got in the objects they compile.
 */
export function lazyLibrary<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= requireModule(resolveAsImport(specifier)) as T);
}

/**
 * The file `import` would load. Where this module runs transpiled to
 * CommonJS (tsx under mocha, for some test files) there is no
 * `import.meta.resolve`: there the package's `require` entry is loaded.
 */
function resolveAsImport(specifier: string): string {
  return typeof import.meta.resolve === 'function' ? fileURLToPath(import.meta.resolve(specifier)) : specifier;
}
