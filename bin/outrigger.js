#!/usr/bin/env node
// Launcher for the `outrigger` CLI. `npm ci` builds dist/ through `prepare`;
// in a checkout without a build (development) it runs the TypeScript sources
// through tsx instead.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = `${root}dist/src/cli/main.js`;
let entry;
if (existsSync(built) && !process.env.OUTRIGGER_FROM_SOURCE) {
  entry = pathToFileURL(built).href;
} else {
  const { register } = await import('tsx/esm/api');
  register();
  entry = pathToFileURL(`${root}src/cli/main.ts`).href;
}
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
