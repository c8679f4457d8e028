import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock, type Clock } from '../src/core/clock.js';
import { systemRandom, type Random } from '../src/core/random.js';
import { buildSnapshot, loadConfig } from '../src/config/loader.js';
import type { ResourceDocument } from '../src/config/snapshot.js';
import { XdsClient } from '../src/control/client/xds-client.js';
import type { ControlTls } from '../src/control/client/transport.js';
import { writeFileAtomic } from '../src/control/store/file-store.js';
import { ConfigStore } from '../src/config/store.js';
import { FileConfigSource } from '../src/config/file-source.js';
import { dumpSnapshot } from '../src/config/dump.js';
import { formatConfigError, type ConfigError, type ConfigSnapshot } from '../src/config/snapshot.js';
import { AdminServer } from '../src/admin/admin-server.js';
import { StatusServer, type AppProbeSpec } from '../src/admin/status-server.js';
import { createLogger, type Logger } from '../src/observability/logger.js';
import { ProxyMetrics } from '../src/observability/proxy-metrics.js';
import { ListenerManager } from '../src/proxy/listener/listener-manager.js';
import { H1Pool } from '../src/proxy/upstream/h1-pool.js';
import { H2Pool } from '../src/proxy/upstream/h2-pool.js';
import type { ProxyContext } from '../src/proxy/context.js';
import { OriginalDestinations } from '../src/proxy/upstream/original-dst.js';
import { originalDstAddon, type AddonStatus } from '../src/proxy/upstream/original-dst-addon.js';
import type { FilterConfigSource, FilterRegistry } from '../src/proxy/filters/filter-chain.js';

export interface ControlPlaneOptions {
  /** HOST:PORT (h2c, or TLS when `tls` is given) or https://HOST:PORT */
  address: string;
  /** TLS toward the control plane (PEM contents): `ca` verifies its certificate. */
  tls?: ControlTls;
  nodeId: string;
  nodeCluster?: string;
  nodeLabels?: Record<string, string>;
  /** How long to wait at boot for the control plane before serving the persisted config (default 5s). */
  initialFetchTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  warmingTimeoutMs?: number;
}

export interface SidecarOptions {
  /** Static (bootstrap) resources; combined with the control plane's when both are given. */
  configPath?: string;
  controlPlane?: ControlPlaneOptions;
  random?: Random;
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
  /**
   * In a pod (set by the injector): the status port on the pod IP serving
   * /ready and the rewritten app probes /app-health/<container>/<probe>.
   * Off when undefined.
   */
  statusPort?: number;
  statusHost?: string;
  appProbes?: Record<string, AppProbeSpec>;
  /** The SO_ORIGINAL_DST addon; default: loaded from native/original-dst (tests pass a missing one). */
  originalDstAddon?: AddonStatus;
  /** HTTP filter factories and where their entries come from (src/proxy/filters); default: none. */
  filters?: { registry: FilterRegistry; config: FilterConfigSource };
}

export interface Sidecar {
  readonly adminPort: number;
  /** Bound status port, when enabled. */
  readonly statusPort: number | undefined;
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
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_' }); // → outrigger_process_*, outrigger_nodejs_*
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
  const h2 = new H2Pool({ clock, logger });
  const h1 = new H1Pool();
  const ctx: ProxyContext = {
    clock,
    logger,
    accessLog,
    metrics,
    h2,
    h1,
    // The SO_ORIGINAL_DST addon is loaded once here; without it ORIGINAL_DST clusters degrade (docs/injector.md).
    originalDst: new OriginalDestinations({ clock, logger, h1, h2, addon: opts.originalDstAddon ?? originalDstAddon() }),
    lifecycle,
  };
  const listeners = new ListenerManager(ctx, opts.drainTimeoutMs, { filters: opts.filters?.registry, filterConfig: opts.filters?.config });
  const store = new ConfigStore();
  if (!opts.configPath && !opts.controlPlane) throw new Error('a config path or a control plane is required');

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

  // Bootstrap documents from --config and resources from the control plane
  // meet here: the control plane's win on a name clash, and the merged set is
  // validated as one snapshot (the same buildSnapshot as everywhere).
  let bootstrap: readonly ResourceDocument[] = [];
  let dynamic: readonly ResourceDocument[] | undefined;
  let xds: XdsClient | undefined; // set below; a bootstrap reload refreshes its subscriptions
  const validateOptions = { allowEphemeralPorts: opts.allowEphemeralPorts ?? false };
  const applyMerged = async (): Promise<ConfigError[] | undefined> => {
    const byKey = new Map<string, ResourceDocument>();
    for (const d of [...bootstrap, ...(dynamic ?? [])]) byKey.set(`${d.kind}/${d.metadata.name}`, d);
    const built = buildSnapshot([...byKey.values()].map((value, index) => ({ value, source: { index } })), validateOptions);
    if (!built.ok) return built.errors;
    if (store.current()?.version === built.value.version) return undefined;
    await apply(built.value);
    store.swap(built.value);
    onApplied(built.value.version);
    return undefined;
  };

  let source: FileConfigSource | undefined;
  if (opts.configPath) {
    source = new FileConfigSource({
      path: opts.configPath,
      clock,
      logger,
      debounceMs: opts.reloadDebounceMs ?? 100,
      validateOptions,
      store: opts.controlPlane ? undefined : store,
      apply: opts.controlPlane
        ? async (snap) => {
            const prev = bootstrap;
            bootstrap = snap.documents;
            const errors = await applyMerged().catch((err: Error) => {
              bootstrap = prev;
              throw err;
            });
            if (errors) {
              bootstrap = prev;
              throw new Error(errors.map(formatConfigError).join('; '));
            }
            xds?.refreshSubscriptions();
          }
        : apply,
      onApplied: opts.controlPlane ? undefined : onApplied,
      onRejected: reject,
    });
    const first = await source.start();
    if (!first.ok) {
      source.close();
      listeners.close();
      throw new Error(`invalid config:\n${first.errors.map(formatConfigError).join('\n')}`);
    }
  }

  if (opts.controlPlane) {
    const cp = opts.controlPlane;
    xds = new XdsClient({
      address: cp.address,
      tls: cp.tls,
      node: { id: cp.nodeId, cluster: cp.nodeCluster, labels: cp.nodeLabels },
      clock,
      random: opts.random ?? systemRandom(),
      logger,
      registry,
      initialBackoffMs: cp.initialBackoffMs,
      maxBackoffMs: cp.maxBackoffMs,
      warmingTimeoutMs: cp.warmingTimeoutMs,
      bootstrap: () => bootstrap,
      apply: async (docs) => {
        const prev = dynamic;
        dynamic = docs;
        try {
          const errors = await applyMerged();
          if (errors) dynamic = prev;
          return errors;
        } catch (err) {
          dynamic = prev;
          throw err;
        }
      },
    });
    // Boot: wait for the control plane; if it is unreachable (or slow), serve
    // the last good config persisted under --state-dir until it answers.
    const failed = new Promise<void>((r) => xds!.onFirstFailure(r));
    const timeout = new Promise<void>((r) => clock.setTimer(cp.initialFetchTimeoutMs ?? 5000, r));
    xds.start();
    const first = await Promise.race([xds.ready.then(() => 'ready' as const), failed.then(() => 'down' as const), timeout.then(() => 'timeout' as const)]);
    if (first !== 'ready' && opts.stateDir && dynamic === undefined) {
      const persisted = await loadConfig(join(opts.stateDir, 'last-good.yaml'), validateOptions);
      if (persisted.ok && dynamic === undefined) {
        logger.warn({ reason: first, version: persisted.value.version }, 'control plane not available; serving the persisted last good config');
        dynamic = persisted.value.documents.filter((d) => !bootstrap.some((b) => b.kind === d.kind && b.metadata.name === d.metadata.name));
        const errors = await applyMerged().catch((err: Error) => [{ document: 'last-good.yaml', path: '', message: err.message }]);
        if (errors) logger.error({ errors: errors.map(formatConfigError) }, 'persisted config not usable');
      }
    }
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
  // Status port for the kubelet (injected pods only): same readiness rule as the admin /ready.
  let status: StatusServer | undefined;
  let statusPort: number | undefined;
  if (opts.statusPort !== undefined) {
    status = new StatusServer({
      ready: () => !listeners.isDraining && listeners.current() !== undefined,
      appProbes: opts.appProbes ?? {},
      logger,
    });
    statusPort = await status.listen(opts.statusPort, opts.statusHost);
  }

  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      logger.info({ drainTimeoutMs: opts.drainTimeoutMs }, 'draining');
      source?.close();
      xds?.close();
      await listeners.drain();
      await admin.close();
      await status?.close();
      accessLog.flush();
      logger.info('drained; exiting');
      resolveClosed();
    })();
    return shuttingDown;
  }

  return {
    adminPort,
    statusPort,
    registry,
    store,
    listeners,
    addresses: () => listeners.addresses(),
    shutdown,
    closed,
  };
}

/** Keeps the last good config on disk (temp file, fsync, rename, fsync dir) so a restart can fall back on it. */
async function persist(dir: string, snap: ConfigSnapshot, logger: Logger): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(dir, 'last-good.yaml', dumpSnapshot(snap, 'yaml'));
  } catch (err) {
    logger.warn({ err: (err as Error).message, dir }, 'could not persist config');
  }
}
