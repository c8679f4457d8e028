import cluster, { type Worker } from 'node:cluster';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock, Timer } from '../../src/core/clock.js';
import type { Svid } from '../../src/core/svid.js';
import type { ConfigSnapshot } from '../../src/config/snapshot.js';
import type { Logger } from '../../src/observability/logger.js';
import { liveRows, sumLiveCounts, type LiveDimension } from '../../src/observability/live-stats.js';
import { TapHub, type TapFilter, type TapSink } from '../../src/observability/tap.js';
import type { WorkerAdmin } from '../../src/admin/worker-admin.js';
import { aggregateMetrics, mergeClusters, type MetricsJson, type WorkerAnswer } from './merge.js';
import { WORKER_COUNT_ENV, WORKER_INDEX_ENV, type AdminQuery, type FromWorker, type LiveAnswer, type SvidData, type ToWorker } from './messages.js';

export interface WorkerFleetOptions {
  /** How many workers (≥ 2; one is the plain single process). */
  readonly count: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The primary's registry: its own metrics join the workers' in /metrics. */
  readonly registry: Registry;
  readonly drainTimeoutMs: number;
  /** The live window's length (`/stats/live` window_s); default 60 s. */
  readonly liveWindowMs?: number;
  /** Restart backoff after a worker dies: doubles from initial up to max; reset by a worker that lived `stableMs`. */
  readonly restart?: { readonly initialMs?: number; readonly maxMs?: number; readonly stableMs?: number };
  /** How long an admin query waits for a worker's answer. */
  readonly queryTimeoutMs?: number;
}

/** The primary's record of one worker slot; a restart keeps the slot. */
class Slot {
  worker: Worker | undefined;
  /** The config version this slot's worker applied (undefined: none yet). */
  version: string | undefined;
  hello = false;
  startedMs = 0;
  attempt = 0;
  restarts = 0;
  restartTimer: Timer | undefined;
  constructor(readonly index: number) {}
}

interface PendingApply {
  readonly waiting: Set<Slot>;
  error: string | undefined;
  resolve(): void;
  reject(e: Error): void;
}

/**
 * The primary's side of `--concurrency N` (node:cluster): forks the
 * workers, hands each validated snapshot to every one of them and waits for
 * them to apply it, restarts a worker that dies (backoff; the others keep
 * serving: they hold their own copies of the shared listening sockets),
 * answers the admin API from their state, and drains them on shutdown. The
 * config pipeline, the xDS stream, discovery and the workload certificate
 * stay in the primary: one of each per sidecar.
 */
export class WorkerFleet {
  private readonly slots: Slot[];
  private current: { seq: number; version: string; documents: ConfigSnapshot['documents'] } | undefined;
  private seq = 0;
  private readonly pendingApplies = new Map<number, PendingApply>();
  private queryId = 0;
  private readonly queries = new Map<number, { slot: Slot; resolve(body: unknown): void; timer: Timer }>();
  private svid: SvidData | undefined;
  private bound: Record<string, { host: string; port: number }> = {};
  private draining = false;
  private readonly tapHub = new TapHub();
  private tapping = false;
  private readonly restarts: Counter;
  readonly admin: WorkerAdmin;

  constructor(private readonly opts: WorkerFleetOptions) {
    this.slots = Array.from({ length: opts.count }, (_, i) => new Slot(i));
    this.restarts = new Counter({ name: 'outrigger_worker_restarts_total', help: 'Workers restarted after they exited unexpectedly (--concurrency)', registers: [opts.registry] });
    const slots = this.slots;
    new Gauge({
      name: 'outrigger_workers',
      help: 'Workers by state: running (applied the current config) or starting (--concurrency)',
      labelNames: ['state'],
      registers: [opts.registry],
      collect() {
        this.reset();
        let running = 0;
        for (const s of slots) if (s.worker && s.version !== undefined) running++;
        this.set({ state: 'running' }, running);
        this.set({ state: 'starting' }, slots.length - running);
      },
    });
    this.admin = this.buildAdmin();
  }

  /**
   * Forks every worker. SCHED_NONE: each worker accepts on the shared
   * listening socket itself and the kernel hands a new connection to
   * whichever is waiting, instead of the primary accepting every connection
   * and passing it over IPC (SCHED_RR, node's default on Linux): that would
   * put the primary on every connection's path and make it a bottleneck and
   * a single point of failure. Set before the first fork, as node requires.
   */
  start(): void {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.on('exit', (w, code, signal) => this.onExit(w, code, signal));
    for (const s of this.slots) this.fork(s);
  }

  /** Hands a validated snapshot to every worker; resolves when all running workers applied it, throws what one refused. */
  apply(snap: ConfigSnapshot): Promise<void> {
    const seq = ++this.seq;
    this.current = { seq, version: snap.version, documents: snap.documents };
    return new Promise<void>((resolve, reject) => {
      const p: PendingApply = { waiting: new Set(), error: undefined, resolve, reject };
      for (const s of this.slots) if (s.worker) p.waiting.add(s);
      if (p.waiting.size === 0) return resolve();
      this.pendingApplies.set(seq, p);
      for (const s of this.slots) if (s.hello) this.sendConfig(s);
    });
  }

  /** A new workload certificate: every worker takes it for new connections. */
  setSvid(svid: Svid): void {
    const { secureContext: _drop, ...data } = svid;
    this.svid = data;
    for (const s of this.slots) if (s.hello) this.send(s, { t: 'svid', svid: data });
  }

  /** The listeners' bound addresses (as the last worker to apply reported them). */
  addresses(): Map<string, { host: string; port: number }> {
    return new Map(Object.entries(this.bound));
  }

  /** SIGTERM across all: every worker drains (up to the drain timeout) and exits; resolves when all are gone. */
  async drain(): Promise<void> {
    this.draining = true;
    for (const s of this.slots) s.restartTimer?.cancel();
    const alive = this.slots.filter((s) => s.worker && !s.worker.isDead());
    const gone = Promise.all(alive.map((s) => new Promise<void>((r) => (s.worker!.isDead() ? r() : s.worker!.once('exit', () => r())))));
    for (const s of alive) this.send(s, { t: 'drain' });
    let timer: Timer | undefined;
    // A worker that does not exit within the drain timeout (plus a margin to flush its logs) is killed.
    const late = new Promise<'late'>((r) => (timer = this.opts.clock.setTimer(this.opts.drainTimeoutMs + 2000, () => r('late'))));
    const r = await Promise.race([gone, late]);
    timer?.cancel();
    if (r === 'late') for (const s of alive) if (s.worker && !s.worker.isDead()) s.worker.process.kill('SIGKILL');
  }

  private fork(s: Slot): void {
    s.hello = false;
    s.version = undefined;
    s.startedMs = this.opts.clock.monotonicMs();
    const w = cluster.fork({ [WORKER_INDEX_ENV]: String(s.index), [WORKER_COUNT_ENV]: String(this.opts.count) });
    s.worker = w;
    w.on('message', (m: FromWorker) => this.onMessage(s, w, m));
  }

  private onMessage(s: Slot, w: Worker, m: FromWorker): void {
    if (s.worker !== w) return;
    switch (m.t) {
      case 'hello':
        s.hello = true;
        // A new worker (first start or restart) gets the certificate and the current config before it listens.
        if (this.svid) this.send(s, { t: 'svid', svid: this.svid });
        if (this.current) this.sendConfig(s);
        if (this.tapping) this.send(s, { t: 'tapOn' });
        return;
      case 'applied':
        s.version = m.version;
        this.bound = m.addresses;
        if (this.current && m.seq === this.current.seq && m.version !== this.current.version) {
          this.opts.logger.error({ worker: s.index, expected: this.current.version, got: m.version }, 'worker compiled another config version');
        }
        return this.settle(m.seq, s, undefined);
      case 'refused':
        return this.settle(m.seq, s, m.error);
      case 'answer': {
        const q = this.queries.get(m.id);
        if (!q) return;
        this.queries.delete(m.id);
        q.timer.cancel();
        return q.resolve(m.body);
      }
      case 'tapEvent': {
        // Events name the worker that served the request (its pid), as its access-log lines do.
        const event = { ...m.event, worker: w.process.pid };
        this.tapHub.publish(event.route, event.path, () => event);
        if (this.tapHub.subscribers === 0) this.setTapping(false);
        return;
      }
    }
  }

  private sendConfig(s: Slot): void {
    const c = this.current!;
    this.send(s, { t: 'config', seq: c.seq, version: c.version, documents: c.documents });
  }

  private settle(seq: number, s: Slot, error: string | undefined): void {
    // Any apply still waiting for this worker is answered by this one: a worker applies in order.
    for (const [n, p] of this.pendingApplies) {
      if (n > seq || !p.waiting.delete(s)) continue;
      if (error !== undefined && n === seq) p.error ??= error;
      this.finish(n, p);
    }
  }

  private finish(n: number, p: PendingApply): void {
    if (p.waiting.size > 0) return;
    this.pendingApplies.delete(n);
    if (p.error === undefined) p.resolve();
    else p.reject(new Error(p.error));
  }

  private onExit(w: Worker, code: number | null, signal: string | null): void {
    const s = this.slots.find((x) => x.worker === w);
    if (!s) return;
    s.worker = undefined;
    s.hello = false;
    s.version = undefined;
    // Nothing waits for a dead worker: its replacement starts from the current config.
    for (const [n, p] of this.pendingApplies) if (p.waiting.delete(s)) this.finish(n, p);
    for (const [id, q] of this.queries) {
      if (q.slot !== s) continue;
      this.queries.delete(id);
      q.timer.cancel();
      q.resolve(undefined);
    }
    if (this.draining) return;
    const r = this.opts.restart ?? {};
    const lived = this.opts.clock.monotonicMs() - s.startedMs;
    if (lived >= (r.stableMs ?? 30_000)) s.attempt = 0;
    const delay = Math.min(r.maxMs ?? 10_000, (r.initialMs ?? 100) * 2 ** s.attempt++);
    this.restarts.inc();
    s.restarts++;
    this.opts.logger.error({ worker: s.index, pid: w.process.pid, code, signal, restartInMs: delay }, 'worker exited; restarting it');
    s.restartTimer = this.opts.clock.setTimer(delay, () => {
      s.restartTimer = undefined;
      if (!this.draining) this.fork(s);
    });
  }

  private send(s: Slot, m: ToWorker): void {
    const w = s.worker;
    if (!w || !w.isConnected()) return;
    // A worker that died between the check and the write: its exit handler takes over.
    w.send(m, undefined, () => {});
  }

  /** Asks every worker that has applied a config; answers of workers that die meanwhile are left out. */
  private async queryAll<T>(q: AdminQuery): Promise<WorkerAnswer<T>[]> {
    const live = this.slots.filter((s) => s.hello && s.worker);
    const answers = await Promise.all(
      live.map(
        (s) =>
          new Promise<WorkerAnswer<T> | undefined>((resolve) => {
            const id = ++this.queryId;
            const pid = s.worker!.process.pid ?? 0;
            const timer = this.opts.clock.setTimer(this.opts.queryTimeoutMs ?? 5000, () => {
              this.queries.delete(id);
              resolve(undefined);
            });
            this.queries.set(id, { slot: s, timer, resolve: (body) => resolve(body === undefined ? undefined : { worker: s.index, pid, body: body as T }) });
            this.send(s, { t: 'query', id, q });
          }),
      ),
    );
    return answers.filter((a): a is WorkerAnswer<T> => a !== undefined);
  }

  private setTapping(on: boolean): void {
    if (this.tapping === on) return;
    this.tapping = on;
    for (const s of this.slots) if (s.hello) this.send(s, { t: on ? 'tapOn' : 'tapOff' });
  }

  private buildAdmin(): WorkerAdmin {
    const windowMs = this.opts.liveWindowMs ?? 60_000;
    return {
      ready: () => {
        if (this.draining) return { ok: false, why: 'draining' };
        const v = this.current?.version;
        if (v === undefined) return { ok: false, why: 'no config yet' };
        const behind = this.slots.filter((s) => !s.worker || s.version !== v).length;
        return behind === 0 ? { ok: true, why: '' } : { ok: false, why: `${behind} of ${this.slots.length} workers not running version ${v}` };
      },
      workers: () => ({
        version: this.current?.version,
        workers: this.slots.map((s) => ({
          worker: s.index,
          pid: s.worker?.process.pid ?? null,
          state: !s.worker ? 'restarting' : s.version === undefined ? 'starting' : 'running',
          version: s.version ?? null,
          restarts: s.restarts,
        })),
      }),
      metrics: async () => {
        const answers = await this.queryAll<MetricsJson>({ what: 'metrics' });
        return aggregateMetrics([...answers.map((a) => a.body), await this.opts.registry.getMetricsAsJSON()]);
      },
      // Each worker has its own in-memory cache: a purge goes to all, the count is their sum.
      purgeCache: async (prefix: string) => (await this.queryAll<number>({ what: 'purge', prefix })).reduce((n, a) => n + (typeof a.body === 'number' ? a.body : 0), 0),
      clusters: async () => mergeClusters(await this.queryAll({ what: 'clusters' })),
      // Every worker compiled the same version: one worker's view is the sidecar's.
      routes: async () => (await this.queryAll({ what: 'routes' }))[0]?.body ?? {},
      listeners: async () => (await this.queryAll({ what: 'listeners' }))[0]?.body ?? {},
      live: {
        windowMs,
        snapshot: async (by: LiveDimension) => liveRows(sumLiveCounts((await this.queryAll<LiveAnswer>({ what: 'live', by })).map((a) => a.body)), windowMs),
      },
      tap: {
        subscribe: (filter: TapFilter, sink: TapSink) => {
          const sub = this.tapHub.subscribe(filter, sink);
          this.setTapping(true);
          return {
            drain: () => sub.drain(),
            close: () => {
              sub.close();
              if (this.tapHub.subscribers === 0) this.setTapping(false);
            },
          };
        },
      },
    };
  }
}
