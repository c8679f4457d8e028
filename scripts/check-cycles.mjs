#!/usr/bin/env node
// Fails on any import cycle among our modules, type-only and dynamic import()
// edges included: madge resolves each import the way TypeScript does (our
// tsconfig.json), a second reader beside the regex-based graph of
// test/unit/architecture.test.ts. Run by .ci/run after the typecheck, and as
// `npm run check:cycles`. Equivalent to
//   madge --circular --extensions ts --ts-config tsconfig.json src sidecar injector
// plus a check that the graph was really read: a tool that resolves nothing
// finds no cycle.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROOTS = ['src', 'sidecar', 'injector'];

let madge;
try {
  madge = createRequire(join(root, 'package.json'))('madge');
} catch (err) {
  if (err?.code !== 'MODULE_NOT_FOUND') throw err;
  // A check that cannot run must not pass.
  process.stderr.write('check-cycles: madge is not installed (a devDependency: madge@8.0.0); run `npm ci`\n');
  process.exit(1);
}

process.chdir(root);
const res = await madge(ROOTS, {
  fileExtensions: ['ts'],
  tsConfig: 'tsconfig.json',
  // madge's defaults, spelled out: skipping either would hide the cycles this check is for.
  detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: false } },
});

const tree = res.obj();
const files = Object.keys(tree);
const edges = Object.values(tree).reduce((n, deps) => n + deps.length, 0);
// Relative imports madge could not resolve (npm packages and node: builtins are left out on purpose).
const unresolved = res.warnings().skipped.filter((s) => s.startsWith('.'));
const cycles = res.circular();

let failed = false;
if (files.length < 50 || edges < 100) {
  process.stderr.write(`check-cycles: read only ${files.length} files and ${edges} imports: is the tsconfig resolution broken?\n`);
  failed = true;
}
if (unresolved.length > 0) {
  process.stderr.write(`check-cycles: relative imports madge could not resolve:\n  ${unresolved.join('\n  ')}\n`);
  failed = true;
}
if (cycles.length > 0) {
  process.stderr.write(`check-cycles: ${cycles.length} import cycle(s):\n`);
  for (const c of cycles) process.stderr.write(`  ${[...c, c[0]].join(' → ')}\n`);
  failed = true;
}
if (failed) process.exit(1);
process.stdout.write(`check-cycles: no import cycles (${files.length} files, ${edges} imports)\n`);
