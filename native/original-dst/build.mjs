#!/usr/bin/env node
// Builds the SO_ORIGINAL_DST addon with node-gyp against the headers of the
// running Node (never downloaded). Run by the root package.json `install`
// script, so `npm ci` builds it; `npm run build:native` rebuilds it.
//
// Without it the sidecar still runs (ORIGINAL_DST clusters route HTTP by
// Host/:authority and refuse opaque TCP; docs/injector.md), so a failed build
// only warns — unless CI or OUTRIGGER_REQUIRE_NATIVE=1 asks for it to fail.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const required = process.env.OUTRIGGER_REQUIRE_NATIVE === '1' || (process.env.CI ?? '') !== '' && process.env.CI !== 'false';

function fail(msg) {
  process.stderr.write(`native/original-dst: ${msg}\n`);
  if (required) {
    process.stderr.write('native/original-dst: the addon is required here (CI or OUTRIGGER_REQUIRE_NATIVE=1)\n');
    process.exit(1);
  }
  process.stderr.write('native/original-dst: continuing without it (opaque TCP passthrough disabled; see docs/injector.md)\n');
  process.exit(0);
}

if (process.platform !== 'linux') {
  process.stdout.write(`native/original-dst: skipped on ${process.platform} (SO_ORIGINAL_DST is Linux only)\n`);
  process.exit(0);
}

// node-gyp: npm puts its bundled copy on PATH for lifecycle scripts
// (npm_config_node_gyp); outside npm, use the one next to this Node's npm.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) fail('node-gyp not found (it ships with npm)');

// Headers: the nodedir npm is configured with, else the prefix of this Node
// (Debian's nodejs and the official images both ship include/node).
let nodedir = process.env.npm_config_nodedir;
if (!nodedir) {
  const prefix = join(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include/node/node_api.h'))) nodedir = prefix;
}
if (!nodedir || !existsSync(join(nodedir, 'include/node/node_api.h'))) {
  fail(`Node headers not found${nodedir ? ` under ${nodedir}` : ''} (set npm's nodedir; headers are never downloaded)`);
}

const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: dir, stdio: 'inherit' });
if (r.status !== 0) fail(`node-gyp rebuild failed (exit ${r.status ?? r.signal}); it needs python3, make and a C compiler`);
process.stdout.write(`native/original-dst: built ${join(dir, 'build/Release/original_dst.node')}\n`);
