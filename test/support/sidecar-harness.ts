import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { startSidecar, type Sidecar, type SidecarOptions } from '../../sidecar/main.js';
import { toYaml, type Doc } from './config-docs.js';

export interface TestSidecar {
  readonly sidecar: Sidecar;
  readonly dir: string;
  readonly configPath: string;
  /** Parsed access-log lines. */
  readonly access: Record<string, unknown>[];
  /** Parsed operational log lines. */
  readonly logs: Record<string, unknown>[];
  port(listener?: string): number;
  /** Replaces the config file atomically (write + rename) so the watcher never sees half a file. */
  writeConfig(docs: Doc[] | string): Promise<void>;
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/** A pino logger whose JSON lines land in `lines` (logs under test). */
export function collector(lines: Record<string, unknown>[]): pino.Logger {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return pino({ base: undefined, level: 'debug' }, stream);
}

/** Starts an in-process sidecar on loopback with the given documents (listeners on port 0). */
export async function startTestSidecar(
  docs: Doc[] | string,
  opts: Partial<SidecarOptions> = {},
): Promise<TestSidecar> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-test-'));
  const configPath = join(dir, 'config.yaml');
  await writeFile(configPath, typeof docs === 'string' ? docs : toYaml(docs));
  const access: Record<string, unknown>[] = [];
  const logs: Record<string, unknown>[] = [];
  const sidecar = await startSidecar({
    configPath,
    adminPort: 0,
    drainTimeoutMs: 2000,
    allowEphemeralPorts: true,
    logger: collector(logs),
    accessLog: collector(access),
    reloadDebounceMs: 20,
    ...opts,
  });
  let n = 0;
  return {
    sidecar,
    dir,
    configPath,
    access,
    logs,
    port(name = 'main') {
      const a = sidecar.addresses().get(name);
      if (!a) throw new Error(`no listener ${name}`);
      return a.port;
    },
    async writeConfig(d) {
      const tmp = join(dir, `.tmp-${n++}`);
      await writeFile(tmp, typeof d === 'string' ? d : toYaml(d));
      await rename(tmp, configPath);
    },
    async metrics() {
      return sidecar.registry.metrics();
    },
    async close() {
      await sidecar.shutdown();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
