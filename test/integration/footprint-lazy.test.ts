import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/redis-server.js';

/**
 * Issue 14 (idle RSS): a sidecar loads the libraries of filters, stores and
 * exporters only when its config uses them. The real CLI runs as a child
 * process with a preload that records every module it loads (ES modules as
 * they load, CommonJS from require.cache at exit); the demo config must load
 * none of these, and a config that uses them must load them, which shows the
 * recording sees libraries loaded lazily (core/lazy-library.ts).
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RECORDER = join(ROOT, 'test/support/loaded-modules/record.mjs');

/** Libraries the demo config does not use, by the path fragment of their files. */
const LAZY = {
  cel: '/node_modules/@bufbuild/cel/',
  jose: '/node_modules/jose/',
  ioredis: '/node_modules/ioredis/',
  otelSdk: '/node_modules/@opentelemetry/sdk-trace-base/',
  otelResources: '/node_modules/@opentelemetry/resources/',
  otelB3: '/node_modules/@opentelemetry/propagator-b3/',
  kubernetes: '/node_modules/@kubernetes/client-node/',
  nats: '/node_modules/nats/',
  connect: '/node_modules/@connectrpc/connect-node/',
};

/** Runs `outrigger sidecar --config <config>` until ready, stops it, and returns the modules it loaded. */
async function modulesLoadedBy(config: string, dir: string): Promise<string[]> {
  const file = join(dir, `loaded-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(file, '');
  const proc = spawn(
    process.execPath,
    ['--import', RECORDER, 'bin/outrigger.js', 'sidecar', '--config', config, '--admin-port', '0', '--allow-ephemeral-ports', '--drain-timeout', '1s', '--concurrency', '1'],
    {
      cwd: ROOT, // the demo's descriptorFile is relative to the working directory
      env: { ...process.env, LOADED_MODULES_FILE: file, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exit = new Promise<number | string | null>((r) => proc.once('exit', (code, signal) => r(code ?? signal)));
  const lines = createInterface({ input: proc.stdout! });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('sidecar did not start')), 30_000);
    lines.on('line', (l) => {
      if (!l.includes('"sidecar ready"')) return;
      clearTimeout(t);
      resolve();
    });
    proc.once('exit', (code) => reject(new Error(`sidecar exited early (${code})`)));
  });
  proc.kill('SIGTERM');
  expect(await exit).to.equal(0);
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

const loads = (modules: readonly string[], fragment: string): boolean => modules.some((m) => m.includes(fragment));

describe('footprint: libraries load only when a config uses them (issue 14)', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'outrigger-lazy-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The demo config as shipped, on a free port. */
  async function demoConfig(): Promise<string> {
    const demo = readFileSync(join(ROOT, 'examples/demo/sidecar.yaml'), 'utf8').replace('port: 8080', `port: ${await freePort()}`);
    const path = join(dir, 'demo.yaml');
    writeFileSync(path, demo);
    return path;
  }

  // From the TypeScript sources (through tsx, which is why tsx itself is not checked here: dist/ may be
  // stale in a checkout, the sources are what this suite tests).
  it('the demo config loads none of them', async () => {
    const modules = await modulesLoadedBy(await demoConfig(), dir);
    // The recording works: what the demo does use is there.
    for (const used of ['/node_modules/yaml/', '/node_modules/@bufbuild/protobuf/', '/node_modules/prom-client/']) {
      expect(loads(modules, used), used).to.equal(true);
    }
    const loaded = Object.entries(LAZY)
      .filter(([, fragment]) => loads(modules, fragment))
      .map(([name]) => name);
    expect(loaded).to.deep.equal([]);
  });

  it('a config with a CEL condition and a JWT provider loads @bufbuild/cel and jose, and still not ioredis', async () => {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    const port = await freePort();
    const config = `
apiVersion: outrigger.io/v1
kind: Listener
metadata: {name: main}
spec:
  address: {host: 127.0.0.1, port: ${port}}
  routeConfig: main
  httpFilters:
    - jwtAuthn:
        providers: [{name: local, localJwks: {inline: '${JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'ES256' }] })}'}}]
    - rbac:
        policies:
          tenants:
            permissions: [{any: true}]
            principals: [{any: true}]
            condition: "request.headers['x-tenant'] == 'acme'"
---
apiVersion: outrigger.io/v1
kind: RouteConfiguration
metadata: {name: main}
spec:
  virtualHosts:
    - name: all
      domains: ["*"]
      routes: [{name: ok, match: {prefix: /}, directResponse: {status: 200}}]
`;
    const path = join(dir, 'filters.yaml');
    writeFileSync(path, config);
    const modules = await modulesLoadedBy(path, dir);
    expect({ cel: loads(modules, LAZY.cel), jose: loads(modules, LAZY.jose), ioredis: loads(modules, LAZY.ioredis) }).to.deep.equal({
      cel: true,
      jose: true,
      ioredis: false,
    });
  });
});
