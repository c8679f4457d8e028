import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock, type Clock } from '../src/core/clock.js';
import { ConfigStore } from '../src/config/store.js';
import { FileConfigSource } from '../src/config/file-source.js';
import { dumpSnapshot } from '../src/config/dump.js';
import { formatConfigError, type ConfigError, type ConfigSnapshot } from '../src/config/snapshot.js';
import { AdminServer } from '../src/admin/admin-server.js';
import { createLogger, type Logger } from '../src/observability/logger.js';
import { ProxyMetrics } from '../src/observability/proxy-metrics.js';
import { ListenerManager } from '../src/proxy/listener/listener-manager.js';
import { H1Pool } from '../src/proxy/upstream/h1-pool.js';
import { H2Pool } from '../src/proxy/upstream/h2-pool.js';
import type { ProxyContext } from '../src/proxy/context.js';

export interface SidecarOptions {
  configPath: string;
  adminPort: number;
  adminHost?: string;
  drainTimeoutMs: number;
  stateDir?: string;
  /** Accept listeners on port 0 (tests). */
  allowEphemeralPorts?: boolean;
  logger?: Logger;
  accessLog?: Logger;
  clock?: Clock;
  registry?: Registry;
  /** Debounce for file changes. */
  reloadDebounceMs?: number;
}

export interface Sidecar {
  readonly adminPort: number;
  readonly registry: Registry;
  readonly store: ConfigStore;
  readonly listeners: ListenerManager;
  /** Bound address of each listener by name. */
  addresses(): Map<string, { host: string; port: number }>;
  /** Graceful: /ready turns 503, listeners drain up to the drain timeout, then everything closes. */
  shutdown(): Promise<void>;
  /** Resolves after shutdown completes. */
  readonly closed: Promise<void>;
}

/**
 * The sidecar's composition root: builds every long-lived collaborator once
 * (clock, logger, registry, pools, listeners, admin) and wires the config
 * flow: file source → validate → ListenerManager.apply → store.
 */
export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const clock = opts.clock ?? systemClock();
  const logger = opts.logger ?? createLogger();
  const accessLog = opts.accessLog ?? createLogger({ async: true });
  const registry = opts.registry ?? new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_process_' });
  const metrics = new ProxyMetrics(registry);
  const configVersion = new Gauge({
    name: 'outrigger_config_info',
    help: 'The active config version (value 1)',
    labelNames: ['version'],
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'outrigger_config_reloads_total',
    help: 'Config loads by result: applied or rejected',
    labelNames: ['result'],
    registers: [registry],
  });
  const lifecycle = { draining: false };
  const ctx: ProxyContext = {
    clock,
    logger,
    accessLog,
    metrics,
    h2: new H2Pool({ clock, logger }),
    h1: new H1Pool(),
    lifecycle,
  };
  const listeners = new ListenerManager(ctx, opts.drainTimeoutMs);
  const store = new ConfigStore();

  // Order: bind/compile first (apply), then publish to the store, so the
  // store never holds a config the data path failed to take.
  const apply = (snap: ConfigSnapshot): Promise<void> => listeners.apply(snap);
  const onApplied = (version: string): void => {
    configVersion.reset();
    configVersion.set({ version }, 1);
    reloads.inc({ result: 'applied' });
    const snap = store.current();
    if (opts.stateDir && snap) void persist(opts.stateDir, snap, logger);
  };
  // FileConfigSource already logs the errors (one line); this only counts.
  const reject = (_errors: readonly ConfigError[]): void => void reloads.inc({ result: 'rejected' });

  const source = new FileConfigSource({
    path: opts.configPath,
    clock,
    logger,
    debounceMs: opts.reloadDebounceMs ?? 100,
    validateOptions: { allowEphemeralPorts: opts.allowEphemeralPorts ?? false },
    store,
    apply,
    onApplied,
    onRejected: reject,
  });
  const first = await source.start();
  if (!first.ok) {
    source.close();
    listeners.close();
    throw new Error(`invalid config:\n${first.errors.map(formatConfigError).join('\n')}`);
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let shuttingDown: Promise<void> | undefined;
  const admin = new AdminServer({
    registry,
    store,
    listeners,
    proxy: ctx,
    logger,
    onQuit: () => void shutdown(),
  });
  const adminPort = await admin.listen(opts.adminPort, opts.adminHost ?? '127.0.0.1');

  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      logger.info({ drainTimeoutMs: opts.drainTimeoutMs }, 'draining');
      source.close();
      await listeners.drain();
      await admin.close();
      accessLog.flush();
      logger.info('drained; exiting');
      resolveClosed();
    })();
    return shuttingDown;
  }

  return {
    adminPort,
    registry,
    store,
    listeners,
    addresses: () => listeners.addresses(),
    shutdown,
    closed,
  };
}

/** Keeps the last good config on disk (write, then rename) so a restart can fall back on it. */
async function persist(dir: string, snap: ConfigSnapshot, logger: Logger): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.last-good.yaml.${process.pid}`);
    await writeFile(tmp, dumpSnapshot(snap, 'yaml'));
    await rename(tmp, join(dir, 'last-good.yaml'));
  } catch (err) {
    logger.warn({ err: (err as Error).message, dir }, 'could not persist config');
  }
}
