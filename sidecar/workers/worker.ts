import { createSecureContext } from 'node:tls';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import type { Svid, SvidSource } from '../../src/core/svid.js';
import { buildSnapshot } from '../../src/config/loader.js';
import { formatConfigError } from '../../src/config/snapshot.js';
import { createLogger } from '../../src/observability/logger.js';
import { registerDroppedLines } from '../../src/observability/line-writer.js';
import type { TapSubscription } from '../../src/observability/tap.js';
import { describeClusters, describeListeners, describeRoutes } from '../../src/admin/data-path-views.js';
import { buildDataPath } from '../data-path.js';
import type { SidecarOptions } from '../main.js';
import { sharedRateLimits } from './rate-limit-share.js';
import { WORKER_COUNT_ENV, WORKER_INDEX_ENV, type AdminQuery, type FromWorker, type SvidData, type ToWorker } from './messages.js';

/** The primary's workload certificate, as a worker holds it (new connections read `current()`). */
class RelayedSvid implements SvidSource {
  private svid: Svid | undefined;
  current(): Svid | undefined {
    return this.svid;
  }
  set(d: SvidData): void {
    this.svid = { ...d, secureContext: createSecureContext({ cert: d.certChainPem, key: d.keyPem, ca: [...d.bundlePem] }) };
  }
}

export type WorkerOptions = Pick<SidecarOptions, 'drainTimeoutMs' | 'overload' | 'auditLog' | 'telemetry' | 'random' | 'locality' | 'allowEphemeralPorts' | 'pluginDir'>;

/**
 * One worker of `--concurrency N` (a node:cluster child): the data path
 * only. Its config comes from the primary, already validated; it compiles
 * and applies each snapshot as the single process does (listeners bind
 * through the primary's shared sockets), answers the primary's admin
 * queries, and drains when told. Resolves when the worker has drained.
 */
export async function runWorker(opts: WorkerOptions): Promise<void> {
  // The callback keeps a send on a closed channel (the primary gone) from becoming an 'error' event; 'disconnect' drains.
  const send = (m: FromWorker): void => void process.send!(m, undefined, undefined, () => {});
  const index = Number(process.env[WORKER_INDEX_ENV] ?? 0);
  const count = Number(process.env[WORKER_COUNT_ENV] ?? 1);
  const clock = systemClock();
  const logger = createLogger().child({ worker: process.pid });
  // Every access-log line names the worker (its pid) that served the request.
  const accessLog = createLogger({ async: true }).child({ worker: process.pid });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_' });
  registerDroppedLines(accessLog, registry);
  const identity = new RelayedSvid();
  const dp = await buildDataPath({
    clock,
    logger,
    accessLog,
    registry,
    identity,
    locality: opts.locality,
    filterConfig: (c) => sharedRateLimits(c, { index, count }),
    sidecar: opts,
  });
  dp.overload.start();
  const validateOptions = { allowEphemeralPorts: opts.allowEphemeralPorts ?? false };

  let applying: Promise<unknown> = Promise.resolve();
  let tap: TapSubscription | undefined;
  let drained!: () => void;
  const done = new Promise<void>((r) => (drained = r));
  let draining = false;

  const drain = async (): Promise<void> => {
    if (draining) return;
    draining = true;
    tap?.close();
    dp.overload.stop();
    await dp.listeners.drain();
    dp.closeFilters();
    opts.auditLog?.flush();
    // The worker exits right after: its last access lines must be written first.
    await new Promise<void>((r) => accessLog.flush(() => r()));
    drained();
  };

  const apply = async (seq: number, documents: Parameters<typeof buildSnapshot>[0][number]['value'][]): Promise<void> => {
    const built = buildSnapshot(documents.map((value, i) => ({ value, source: { index: i } })), validateOptions);
    if (!built.ok) return send({ t: 'refused', seq, error: built.errors.map(formatConfigError).join('; ') });
    try {
      await dp.listeners.apply(built.value);
    } catch (err) {
      return send({ t: 'refused', seq, error: (err as Error).message });
    }
    send({ t: 'applied', seq, version: built.value.version, addresses: Object.fromEntries(dp.listeners.addresses()) });
  };

  const answer = (q: AdminQuery): unknown | Promise<unknown> => {
    switch (q.what) {
      case 'metrics':
        return registry.getMetricsAsJSON();
      case 'clusters':
        return describeClusters(dp.listeners, dp.ctx);
      case 'routes':
        return describeRoutes(dp.listeners);
      case 'listeners':
        return describeListeners(dp.listeners);
      case 'live':
        return dp.telemetry.live?.counts(q.by) ?? [];
      case 'purge':
        return dp.purgeCache ? dp.purgeCache(q.prefix) : 0;
    }
  };

  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'config':
        // One at a time, in order, as the single process's pipeline applies.
        applying = applying.then(() => (draining ? undefined : apply(m.seq, [...m.documents])));
        return;
      case 'svid':
        return identity.set(m.svid);
      case 'query':
        void Promise.resolve(answer(m.q)).then(
          (body) => send({ t: 'answer', id: m.id, body }),
          (err: Error) => send({ t: 'answer', id: m.id, body: { error: err.message } }),
        );
        return;
      case 'tapOn':
        tap ??= dp.telemetry.tap?.subscribe({}, {
          // false: the channel is backed up; the subscription buffers (bounded), then drops, as for a slow /tap client.
          write: (event) => process.send!({ t: 'tapEvent', event } satisfies FromWorker, undefined, undefined, () => tap?.drain()),
          end: () => {},
        });
        return;
      case 'tapOff':
        tap?.close();
        tap = undefined;
        return;
      case 'drain':
        void drain();
        return;
    }
  });
  // Signals are the primary's to handle (a terminal's Ctrl-C reaches the whole process group):
  // a worker drains when the primary says so, or when the primary is gone.
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  process.once('disconnect', () => void drain());
  send({ t: 'hello' });
  await done;
}
