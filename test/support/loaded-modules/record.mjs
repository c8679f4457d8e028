// Preloaded (`node --import`) into a sidecar child process by test/integration/footprint-lazy.test.ts:
// records every module the process loads into the file LOADED_MODULES_FILE names, one path or URL a line.
// ES modules are recorded by a loader hook (hooks.mjs, on the loader thread) as they load; CommonJS ones,
// including libraries loaded with require() (src/core/lazy-library.ts), from require.cache at exit.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.LOADED_MODULES_FILE;
if (!out) throw new Error('LOADED_MODULES_FILE is not set');
register(new URL('./hooks.mjs', import.meta.url), { data: { out } });
const require = createRequire(import.meta.url);
process.on('exit', () => appendFileSync(out, Object.keys(require.cache).map((f) => `${f}\n`).join('')));
