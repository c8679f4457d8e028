import { spawn, type ChildProcess } from 'node:child_process';
import type { Tracer } from '../../src/observability/tracer.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Code, ConnectError } from '@connectrpc/connect';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { startControlServer, type ControlServer } from '../../src/control/server/control-server.js';
import { FileStateStore } from '../../src/control/store/file-store.js';
import type { StateStore } from '../../src/control/store/state-store.js';
import type { GeneratedResources } from '../../src/control/server/generated-resources.js';
import { operatorClient } from '../../src/control/client/operator-client.js';
import { startSidecar, type Sidecar, type ControlPlaneOptions, type SidecarOptions } from '../../sidecar/main.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TOKEN = 'test-token-0123456789';

export function collector(lines: Record<string, unknown>[]): pino.Logger {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return pino({ base: undefined, level: 'debug' }, stream);
}

export async function tempDir(prefix = 'outrigger-cp-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** An in-process control plane on 127.0.0.1 (port 0) with a file store. */
export async function startTestControlPlane(
  opts: { dir?: string; store?: StateStore; port?: number; debounceMs?: number; identifier?: string; statusTtlMs?: number; generated?: GeneratedResources; onGeneratedConverged?: (seconds: number) => void; tracer?: Tracer } = {},
): Promise<ControlServer & { logs: Record<string, unknown>[]; dir: string; address: string }> {
  const dir = opts.dir ?? (await tempDir());
  const logs: Record<string, unknown>[] = [];
  const server = await startControlServer({
    store: opts.store ?? (await FileStateStore.open(dir)),
    clock: systemClock(),
    logger: collector(logs),
    port: opts.port ?? 0,
    host: '127.0.0.1',
    auth: { token: TOKEN, mtls: false },
    validate: { allowEphemeralPorts: true },
    debounceMs: opts.debounceMs ?? 20,
    identifier: opts.identifier,
    statusTtlMs: opts.statusTtlMs,
    generated: opts.generated,
    onGeneratedConverged: opts.onGeneratedConverged,
    tracer: opts.tracer,
  });
  return Object.assign(server, { logs, dir, address: `127.0.0.1:${server.port}` });
}

export function client(address: string, token: string = TOKEN): ReturnType<typeof operatorClient> {
  return operatorClient({ address, token: token || undefined });
}

export interface TestCpSidecar {
  readonly sidecar: Sidecar;
  readonly logs: Record<string, unknown>[];
  readonly stateDir: string;
  port(name?: string): number;
  close(): Promise<void>;
}

/** An in-process sidecar subscribed to a control plane. */
export async function startCpSidecar(
  cp: Partial<ControlPlaneOptions> & { address: string; nodeId: string },
  extra: { stateDir?: string; configPath?: string; clock?: Clock; telemetry?: SidecarOptions['telemetry'] } = {},
): Promise<TestCpSidecar> {
  const stateDir = extra.stateDir ?? (await tempDir('outrigger-state-'));
  const logs: Record<string, unknown>[] = [];
  const sidecar = await startSidecar({
    configPath: extra.configPath,
    controlPlane: { initialFetchTimeoutMs: 3000, initialBackoffMs: 50, maxBackoffMs: 500, warmingTimeoutMs: 2000, ...cp },
    adminPort: 0,
    drainTimeoutMs: 500,
    allowEphemeralPorts: true,
    stateDir,
    logger: collector(logs),
    accessLog: collector([]),
    clock: extra.clock,
    telemetry: extra.telemetry,
  });
  return {
    sidecar,
    logs,
    stateDir,
    port(name = 'main') {
      const a = sidecar.addresses().get(name);
      if (!a) throw new Error(`no listener ${name}`);
      return a.port;
    },
    async close() {
      await sidecar.shutdown();
    },
  };
}

/** `outrigger ARGS` as a child process on the sources. */
export function outrigger(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/outrigger.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Starts `outrigger control` as a child process and waits for its ready line (stdout() is its log, JSON lines). */
export async function spawnControlPlane(args: string[]): Promise<{ child: ChildProcess; port: number; stdout: () => string; stderr: () => string }> {
  // Config streams are open unless the test gives workload tokens (identity tests check the authentication).
  const open = args.includes('--workload-token-file') ? [] : ['--allow-unauthenticated-sidecars'];
  const child = spawn(process.execPath, [join(ROOT, 'bin/outrigger.js'), 'control', '--host', '127.0.0.1', '--metrics-port', '0', '--allow-ephemeral-ports', '--debounce', '0.02s', ...open, ...args], {
    cwd: ROOT,
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"msg":"control plane ready","port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`control plane exited ${code}: ${err}`)));
  });
  return { child, port, stdout: () => out, stderr: () => err };
}

/** Starts `outrigger sidecar ARGS` as a child process and waits for its ready line (listener ports by name). */
export async function spawnSidecar(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; listeners: Record<string, { port: number }>; stdout: () => string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/outrigger.js'), 'sidecar', '--admin-port', '0', '--allow-ephemeral-ports', ...args], {
    cwd: ROOT,
    // One process unless a test asks for workers (--concurrency, or OUTRIGGER_CONCURRENCY in env): the tests' timings and ports assume it.
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_CONCURRENCY: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const listeners = await new Promise<Record<string, { port: number }>>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"msg":"sidecar ready"')) continue;
        resolve((JSON.parse(line) as { listeners: Record<string, { port: number }> }).listeners);
      }
    });
    child.on('exit', (code) => reject(new Error(`sidecar exited ${code}: ${err}`)));
  });
  return {
    child,
    listeners,
    stdout: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((r) => {
        child.once('exit', () => r());
        child.kill('SIGTERM');
      });
    },
  };
}

export async function writeToken(dir: string): Promise<string> {
  const f = join(dir, 'token');
  await writeFile(f, TOKEN + '\n');
  return f;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** The gRPC code a call ended with, or 'ok' (for tables of calls that must be refused). */
export async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof ConnectError) return err.code;
    throw err;
  }
}
