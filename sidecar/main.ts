import type { HeapOverloadOptions } from '../src/proxy/overload/heap-overload.js';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock, type Clock, type Timer } from '../src/core/clock.js';
import type { WorkloadCerts } from '../src/control/client/workload-certs.js';
import { systemRandom, type Random } from '../src/core/random.js';
import { localityFromLabels, type LocalityName } from '../src/core/locality.js';
import type { XdsClient } from '../src/control/client/xds-client.js';
import type { ControlTls } from '../src/control/client/transport.js';
import { writeFileAtomic } from '../src/control/store/file-store.js';
import { ConfigStore, type PublishedConfig } from '../src/config/store.js';
import { ConfigPipeline } from '../src/config/config-pipeline.js';
import { FileConfigSource } from '../src/config/file-source.js';
import { LastGood, awaitFirstSet } from '../src/config/last-good.js';
import { formatConfigError } from '../src/config/snapshot.js';
import { AdminServer } from '../src/admin/admin-server.js';
import { StatusServer, type AppProbeSpec } from '../src/admin/status-server.js';
import { createLogger, type Logger } from '../src/observability/logger.js';
import type { TelemetryOptions } from '../src/observability/telemetry-setup.js';
import type { ListenerManager } from '../src/proxy/listener/listener-manager.js';
import type { AddonStatus } from '../src/proxy/upstream/original-dst-addon.js';
import type { FilterConfigSource, FilterRegistry } from '../src/proxy/filters/filter-chain.js';
import { ClusterDiscovery } from '../src/discovery/runner/cluster-discovery.js';
import { DiscoveryMetrics } from '../src/discovery/runner/discovery-metrics.js';
import type { DiscoveryConnections } from '../src/discovery/runner/providers.js';
import { buildDataPath } from './data-path.js';
import { registerDroppedLines } from '../src/observability/line-writer.js';
import type { WorkerFleet } from './workers/fleet.js';

export interface ControlPlaneOptions {
  /** HOST:PORT (h2c, or TLS when `tls` is given) or https://HOST:PORT */
  address: string;
  /** TLS toward the control plane (PEM contents): `ca` verifies its certificate. */
  tls?: ControlTls;
  nodeId: string;
  nodeCluster?: string;
  nodeLabels?: Record<string, string>;
  /** The admin address advertised to the control plane (node metadata "admin"); default: see advertisedAdmin. */
  adminAdvertise?: string;
  /** How long to wait at boot for the control plane before serving the persisted config (default 5s). */
  initialFetchTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  warmingTimeoutMs?: number;
  /**
   * Workload identity (docs/security.md): request an X.509-SVID from the
   * control plane with the token in this file (projected service-account
   * token or bootstrap token), rotate it, and use it for mesh mTLS.
   */
  identity?: { tokenFile: string; requestedTtlMs?: number };
}

export interface SidecarOptions {
  /** Static (bootstrap) resources; combined with the control plane's when both are given. */
  configPath?: string;
  controlPlane?: ControlPlaneOptions;
  /** Randomness of the balancers, health-check jitter and xDS backoff; default Math.random. */
  random?: Random;
  /**
   * Where this sidecar runs (`--locality`): zone-aware routing keeps requests
   * there, and the control plane is told (Node.locality). Default: from the
   * topology labels of `controlPlane.nodeLabels`, else unknown.
   */
  locality?: LocalityName;
  adminPort: number;
  adminHost?: string;
  drainTimeoutMs: number;
  stateDir?: string;
  /**
   * Where relative plugin module paths in config that came from the control
   * plane are resolved (those of a config file are relative to that file).
   * Default: the working directory.
   */
  pluginDir?: string;
  /** Keep a plugin's stray background error from ending the process (the CLI's own process sets it; plugin-fault-guard.ts). */
  guardPluginFaults?: boolean;
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
  /** Heap-based load shedding (--max-heap-fraction); the heap reader is injected by tests. */
  overload?: Omit<HeapOverloadOptions, 'clock' | 'logger' | 'events'>;
  /** HTTP filter factories and where their entries come from (src/proxy/filters); default: the built-in filters and the config's httpFilters. */
  filters?: { registry: FilterRegistry; config: FilterConfigSource };
  /** Security events of the filters (`--audit-log`); default: counted in metrics only. */
  auditLog?: Logger;
  /**
   * `--concurrency N` > 1 (sidecar/workers/): this process is the primary and
   * the workers serve; snapshots are applied by handing them to every worker,
   * and the admin API reads the workers. Undefined: this process serves.
   */
  workers?: WorkerFleet;
  /** Istio-compatible metrics, the live window and the tap (docs/observability.md); default: both metric sets, unknown workload. */
  telemetry?: Omit<TelemetryOptions, 'clock' | 'registry'>;
  /** Connection settings of the discovery providers (docs/discovery.md); the environment fills in the rest. */
  discovery?: DiscoveryConnections;
}

export interface Sidecar {
  readonly adminPort: number;
  /** Bound status port, when enabled. */
  readonly statusPort: number | undefined;
  readonly registry: Registry;
  /** The one published config (written only by the config pipeline). */
  readonly store: PublishedConfig;
  readonly listeners: ListenerManager;
  /** Discovered clusters' watches and their providers' status. */
  readonly discovery: ClusterDiscovery;
  /** The workload certificate manager (with controlPlane.identity). */
  readonly identity: WorkloadCerts | undefined;
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
 * flow: sources (file, xDS) → ConfigPipeline (merge → validate →
 * ListenerManager.apply → store) → the store's subscribers.
 */
export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const clock = opts.clock ?? systemClock();
  const logger = opts.logger ?? createLogger();
  const accessLog = opts.accessLog ?? createLogger({ async: true });
  const registry = opts.registry ?? new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_' }); // → outrigger_process_*, outrigger_nodejs_*
  registerDroppedLines(accessLog, registry);
  // The access and audit logs are buffered (64 KiB / 4 KiB before a write): at low traffic a line would
  // wait indefinitely, so they are flushed every second.
  const logFlush = everySecond(clock, () => {
    accessLog.flush();
    opts.auditLog?.flush();
  });
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
  const idOpts = opts.controlPlane?.identity;
  // The control-plane clients (connect-node, @peculiar/x509) are imported only by sidecars that use them.
  const certs = idOpts
    ? new (await import('../src/control/client/workload-certs.js')).WorkloadCerts({
        address: opts.controlPlane!.address,
        tls: opts.controlPlane!.tls,
        nodeId: opts.controlPlane!.nodeId,
        tokenFile: idOpts.tokenFile,
        requestedTtlMs: idOpts.requestedTtlMs,
        clock,
        random: opts.random ?? systemRandom(),
        logger,
        registry,
        initialBackoffMs: opts.controlPlane!.initialBackoffMs,
        maxBackoffMs: opts.controlPlane!.maxBackoffMs,
      })
    : undefined;
  // Where this sidecar runs: --locality, else the topology labels of --node-labels-file (zone-aware routing, Node.locality).
  const locality = opts.locality ?? (opts.controlPlane?.nodeLabels ? localityFromLabels(opts.controlPlane.nodeLabels) : undefined);
  if (locality) logger.info({ locality: locality.key }, 'locality');
  // With --concurrency N > 1 this data path stays idle (no listener is bound here): the workers serve.
  const dataPath = await buildDataPath({ clock, logger, accessLog, registry, identity: certs, locality, sidecar: opts });
  const { ctx, listeners, telemetry, overload } = dataPath;
  overload.start();
  const workers = opts.workers;
  if (certs && workers) certs.onChange((svid) => workers.setSvid(svid));
  const store = new ConfigStore();
  if (!opts.configPath && !opts.controlPlane) throw new Error('a config path or a control plane is required');

  const validateOptions = { allowEphemeralPorts: opts.allowEphemeralPorts ?? false };
  // Discovered clusters (DNS, Kubernetes, Consul, NATS): their endpoint sets join every merged
  // config as ClusterLoadAssignments (derive); a new set re-derives (refresh, coalesced).
  let refreshQueued = false;
  const discovery = new ClusterDiscovery({
    clock,
    logger,
    random: ((r) => () => r.next())(opts.random ?? systemRandom()),
    metrics: new DiscoveryMetrics(registry),
    connections: opts.discovery ?? {},
    onChange: () => {
      if (refreshQueued) return;
      refreshQueued = true;
      setImmediate(() => {
        refreshQueued = false;
        void pipeline.refresh().then((v) => {
          if (v?.ok) discovery.applied();
          else if (v) logger.error({ verdict: v }, 'discovered endpoints refused');
        });
      });
    },
  });
  // Sources → pipeline (merge, validate, apply to the data path, then publish to the store).
  const pipeline = new ConfigPipeline({
    store,
    validateOptions,
    derive: (merged) => discovery.derive(merged),
    apply: async (snap) => {
      try {
        await (workers ? workers.apply(snap) : listeners.apply(snap));
        return { ok: true };
      } catch (err) {
        return { ok: false, error: err as Error };
      }
    },
  });
  // Everything below reacts to what was published, never to a source directly.
  store.subscribe((snap) => discovery.sync(snap.clusters));
  store.subscribe((snap) => {
    configVersion.reset();
    configVersion.set({ version: snap.version }, 1);
    reloads.inc({ result: 'applied' });
  });
  const lastGood = opts.stateDir ? new LastGood({ dir: opts.stateDir, logger, validateOptions, writeFileAtomic }) : undefined;
  lastGood?.follow(store);

  let source: FileConfigSource | undefined;
  if (opts.configPath) {
    source = new FileConfigSource({
      path: opts.configPath,
      clock,
      logger,
      debounceMs: opts.reloadDebounceMs ?? 100,
      validateOptions,
      // FileConfigSource already logs the errors (one line); this only counts.
      onRejected: () => void reloads.inc({ result: 'rejected' }),
    });
    pipeline.add(source);
    const first = await source.start();
    if (!first.ok) {
      source.close();
      overload.stop();
      listeners.close();
      throw new Error(`invalid config:\n${first.errors.map(formatConfigError).join('\n')}`);
    }
  }

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let shuttingDown: Promise<void> | undefined;
  // The admin API is up before the control plane is asked (as Envoy's): its port is then known
  // and advertised in the node metadata, and /ready, /config_dump show the initial fetch.
  const admin = new AdminServer({
    registry,
    store,
    listeners,
    proxy: ctx,
    telemetry,
    logger,
    workers: workers?.admin,
    purgeCache: dataPath.purgeCache,
    onQuit: () => void shutdown(),
  });
  const adminHost = opts.adminHost ?? '127.0.0.1';
  const adminPort = await admin.listen(opts.adminPort, adminHost);

  let xds: XdsClient | undefined;
  if (opts.controlPlane) {
    const cp = opts.controlPlane;
    const bootstrap = source;
    const { XdsClient } = await import('../src/control/client/xds-client.js');
    xds = new XdsClient({
      address: cp.address,
      tls: cp.tls,
      node: { id: cp.nodeId, cluster: cp.nodeCluster, labels: cp.nodeLabels, locality, admin: cp.adminAdvertise ?? advertisedAdmin(adminHost, adminPort) },
      clock,
      random: opts.random ?? systemRandom(),
      logger,
      registry,
      initialBackoffMs: cp.initialBackoffMs,
      maxBackoffMs: cp.maxBackoffMs,
      warmingTimeoutMs: cp.warmingTimeoutMs,
      tokenFile: cp.identity?.tokenFile,
      identity: certs,
      bootstrap: () => (bootstrap ? pipeline.documentsOf(bootstrap) : []),
    });
    pipeline.add(xds); // added last: the control plane's resources win a name clash with --config's
    const client = xds;
    store.subscribe(() => client.refreshSubscriptions()); // a reloaded bootstrap may name other routes or EDS clusters
    const down = new Promise<void>((r) => client.onFirstFailure(r));
    certs?.start();
    client.start();
    try {
      await awaitFirstSet({ pipeline, source: client, ready: client.ready, down, clock, timeoutMs: cp.initialFetchTimeoutMs ?? 5000, lastGood, logger });
    } catch (err) {
      await admin.close();
      throw err;
    }
    if (certs) {
      // Mesh listeners refuse mTLS until a certificate is held: wait for the first one as long as for the config.
      let timer: Timer | undefined;
      const gotIt = await Promise.race([
        certs.first.then(() => true),
        new Promise<boolean>((r) => (timer = clock.setTimer(cp.initialFetchTimeoutMs ?? 5000, () => r(false)))),
      ]);
      timer?.cancel();
      if (!gotIt) logger.error('no workload certificate yet: mesh mTLS is refused until one arrives (retrying)');
    }
  }

  // Status port for the kubelet (injected pods only): same readiness rule as the admin /ready.
  let status: StatusServer | undefined;
  let statusPort: number | undefined;
  if (opts.statusPort !== undefined) {
    status = new StatusServer({
      ready: () => (workers ? workers.admin.ready().ok : !listeners.isDraining && listeners.current() !== undefined),
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
      await discovery.close();
      certs?.close();
      overload.stop();
      await (workers ? workers.drain() : listeners.drain());
      await admin.close();
      await status?.close();
      logFlush.cancel();
      opts.auditLog?.flush();
      await new Promise<void>((r) => accessLog.flush(() => r()));
      dataPath.closeFilters();
      // The last spans, once; a collector that does not answer holds the exit at most 2 s.
      const tracer = dataPath.telemetry.tracer;
      if (tracer !== undefined) await new Promise<void>((r) => {
        const t = clock.setTimer(2000, r);
        tracer.shutdown().catch(() => undefined).finally(() => (t.cancel(), r()));
      });
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
    discovery,
    identity: certs,
    addresses: () => (workers ? workers.addresses() : listeners.addresses()),
    shutdown,
    closed,
  };
}

/**
 * The admin address the control plane lists for this sidecar: the bound
 * host, or for a wildcard bind the pod IP the injector gives ($POD_IP).
 */
export function advertisedAdmin(host: string, port: number, env: NodeJS.ProcessEnv = process.env): string {
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const h = wildcard ? (env['POD_IP'] ?? host) : host;
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

/** Runs fn every second on the injected clock until cancelled (its timers never keep the process alive). */
function everySecond(clock: Clock, fn: () => void): { cancel(): void } {
  let t = clock.setTimer(1000, tick);
  let stopped = false;
  function tick(): void {
    if (stopped) return;
    fn();
    t = clock.setTimer(1000, tick);
  }
  return {
    cancel() {
      stopped = true;
      t.cancel();
    },
  };
}
