import type { Registry } from 'prom-client';
import type { Clock, Timer } from '../../core/clock.js';
import type { Kind } from '../../config/kinds.js';
import { formatConfigError, type ConfigError, type ResourceDocument } from '../../config/snapshot.js';
import type { ValidateOptions } from '../../config/validate.js';
import type { Logger } from '../../observability/logger.js';
import type { StateStore } from '../store/state-store.js';
import type { StoreState } from '../store/store-state.js';
import { ControlMetrics } from './control-metrics.js';
import { SpanKind } from '@opentelemetry/api';
import type { OpenSpan, Tracer } from '../../observability/tracer.js';
import { NodeViewCache, type NodeView } from './node-view.js';
import type { GeneratedNames } from './cluster-overrides.js';
import { GENERATED_LABEL } from '../../discovery/endpoint-set.js';
import { NO_GENERATED, type GeneratedResources, type GeneratedSet } from './generated-resources.js';
import {
  applyDocuments,
  deleteResource,
  findEntry,
  rollbackResource,
  type Change,
  type Failure,
} from './resource-state.js';
import type { HostedStream, StreamHost, StreamTypeStatus } from './stream-host.js';

export interface ControlPlaneOptions {
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly validate?: ValidateOptions;
  /** Quiet period that ends a burst of changes (default 100 ms); a change that finds the plane idle is pushed at once. */
  readonly debounceMs?: number;
  /** A push happens at most this long after the first change of a burst (default 10 s). */
  readonly maxDelayMs?: number;
  readonly identifier?: string;
  /** Called when a stream's Status may have changed (opened, closed, sent, ACK, NACK): the StatusBoard's hook. */
  readonly onStatusChange?: () => void;
  /** Resources served beside the stored ones but never stored (discovery providers); default none. */
  readonly generated?: GeneratedResources;
  /** Told, per push that carried a generated change, the seconds from its source change to the last sidecar's ACK (discovery's push metric). */
  readonly onGeneratedConverged?: (seconds: number) => void;
  /** OpenTelemetry tracing (`outrigger control --trace-*`): an operator change → the push it caused → its stream batches. */
  readonly tracer?: Tracer;
}

export type Outcome = Change | Failure;

/** A push whose ACKs are being counted for the convergence histogram. */
interface Convergence {
  readonly changedAtMs: number;
  readonly waiting: Set<HostedStream>;
  /** Every stream of the push has been refreshed (a push runs in batches). */
  complete: boolean;
  /** Streams that got a response in this push. */
  pushed: number;
  /** The source time of the generated change this push carries (undefined: it carries none). */
  readonly generatedAtMs: number | undefined;
}

/**
 * Streams refreshed per turn of the event loop during a push: between
 * batches the HTTP/2 sessions flush, so the first sidecars get (and ACK)
 * the change while later ones are still being prepared, instead of every
 * write waiting behind one long synchronous loop.
 */
export const PUSH_BATCH = 64;

/**
 * The control plane's core: the current state (from the store), per-node
 * views, the open discovery streams and the push debounce. Mutations are
 * serialised (one at a time per replica); replicas serialise through the
 * store's revision check and retry on conflict.
 */
export class ControlPlane implements StreamHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly identifier: string;
  readonly metrics: ControlMetrics;
  private state: StoreState;
  /** The generated resources as of their last change (not part of `state`: never stored, never audited). */
  private generated: GeneratedSet = NO_GENERATED;
  private unsubscribeGenerated: (() => void) | undefined;
  private namesOf: { epoch: number; names: GeneratedNames } | undefined;
  private readonly cache: NodeViewCache;
  private readonly streams = new Set<HostedStream>();
  /** The traced operator change whose push is pending (tracing on). */
  private pushCause: OpenSpan | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private debounce: Timer | undefined;
  private burstStartMs: number | undefined;
  /** When the last push started (monotonic): a change within debounceMs of it joins a burst. */
  private lastPushAtMs: number | undefined;
  /** The pending push is an idle change's (0 ms): later changes of the same turn ride along. */
  private leadingPush = false;
  private convergence: Convergence | undefined;
  /** Bumped by every push; a push still running in batches stops when a newer one starts. */
  private pushGeneration = 0;
  /** The generated epoch the last push carried (a push with a newer one measures discovery's push time). */
  private pushedEpoch = 0;
  /** Responses sent on any stream (pushAll compares it around a refresh). */
  private responsesSent = 0;
  private readonly watchers = new Set<(state: StoreState, prev: StoreState) => void>();
  private nextStreamId = 1;
  private closing = false;
  private resyncRetry: Timer | undefined;

  private constructor(
    private readonly opts: ControlPlaneOptions,
    initial: StoreState,
  ) {
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.identifier = opts.identifier ?? `outrigger-control-${process.pid}`;
    this.metrics = new ControlMetrics(opts.registry);
    this.state = initial;
    this.cache = new NodeViewCache(opts.validate ?? {}, (node, errors) =>
      this.logger.error({ node: node.id, errors: errors.map(formatConfigError) }, 'node view inconsistent; keeping its previous config'),
    );
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const t0 = opts.clock.monotonicMs();
    const state = await opts.store.load();
    const cp = new ControlPlane(opts, state);
    cp.metrics.storeLatency.observe({ op: 'load' }, (opts.clock.monotonicMs() - t0) / 1000);
    opts.store.onExternalChange((reason) => {
      if (reason === 'reconnect') cp.logger.info({ store: opts.store.description }, 'store reconnected; full resync');
      cp.resync();
    });
    if (opts.generated) {
      const source = opts.generated;
      cp.takeGenerated(source);
      cp.unsubscribeGenerated = source.subscribe(() => {
        if (cp.closing) return;
        cp.takeGenerated(source);
        cp.schedulePush();
      });
    }
    return cp;
  }

  /** A new generated set: a new epoch for the views (the stored state, its revision and history are untouched). */
  private takeGenerated(source: GeneratedResources): void {
    this.generated = { epoch: this.generated.epoch + 1, resources: source.current(), changedAtMs: source.changedAtMs?.() ?? this.clock.nowMs() };
  }

  /** Who generated each generated resource now (applies may not write them; overrides name them). */
  private get generatedNames(): GeneratedNames {
    const set = this.generated;
    if (this.namesOf?.epoch !== set.epoch) {
      const docs = new Map(set.resources.map((r) => [`${r.kind}/${r.metadata.name}`, r]));
      this.namesOf = {
        epoch: set.epoch,
        names: {
          generatorOf: (kind, name) => {
            const d = docs.get(`${kind}/${name}`);
            return d ? (d.metadata.labels?.[GENERATED_LABEL] ?? 'discovery') : undefined;
          },
          documentOf: (kind, name) => docs.get(`${kind}/${name}`),
        },
      };
    }
    return this.namesOf.names;
  }

  /** The generated resources served now (read-only: `outrigger get` shows them). */
  get generatedResources(): readonly ResourceDocument[] {
    return this.generated.resources;
  }

  get current(): StoreState {
    return this.state;
  }

  get validateOptions(): ValidateOptions {
    return this.opts.validate ?? {};
  }

  nextId(): number {
    return this.nextStreamId++;
  }

  // ---- operator mutations ----

  apply(documents: readonly unknown[], expected: Record<string, string>, who: string): Promise<Outcome> {
    return this.mutate('apply', who, (s) => applyDocuments(s, { documents, expectedVersions: expected, who, nowMs: this.clock.nowMs(), generated: this.generatedNames }, this.validateOptions));
  }

  delete(kind: string, name: string, expected: string, who: string): Promise<Outcome> {
    return this.mutate('delete', who, (s) => deleteResource(s, kind, name, expected, who, this.clock.nowMs(), this.validateOptions));
  }

  rollback(kind: string, name: string, toRevision: number, who: string): Promise<Outcome> {
    return this.mutate('rollback', who, (s) => rollbackResource(s, kind, name, toRevision, who, this.clock.nowMs(), this.validateOptions, this.generatedNames));
  }

  dryRun(documents: readonly unknown[]): Outcome {
    return applyDocuments(this.state, { documents, who: 'dry-run', nowMs: this.clock.nowMs(), generated: this.generatedNames }, this.validateOptions);
  }

  private mutate(op: string, who: string, fn: (s: StoreState) => Outcome): Promise<Outcome> {
    const traced = async (): Promise<Outcome> => {
      const span = this.opts.tracer?.startSpan(`control ${op}`, SpanKind.SERVER);
      span?.set('outrigger.operation', op).set('enduser.id', who);
      try {
        const out = await run();
        span?.set('outrigger.result', out.ok ? 'ok' : out.code);
        if (out.ok && out.state !== undefined) span?.set('outrigger.revision', out.state.revision);
        // The push this change causes is this span's child (the push is debounced: it starts later).
        if (span !== undefined && out.ok) this.pushCause = span;
        span?.end(!out.ok);
        return out;
      } catch (err) {
        span?.end(true);
        throw err;
      }
    };
    const run = async (): Promise<Outcome> => {
      for (let attempt = 0; ; attempt++) {
        const before = this.state;
        const out = fn(before);
        if (!out.ok || out.state === before) {
          this.metrics.applies.inc({ op, result: out.ok ? 'unchanged' : out.code });
          return out;
        }
        const t0 = this.clock.monotonicMs();
        const committed = await this.opts.store.commit(out.state, before.revision);
        this.metrics.storeLatency.observe({ op: 'commit' }, (this.clock.monotonicMs() - t0) / 1000);
        if (committed) {
          this.audit(op, who, before, out);
          this.metrics.applies.inc({ op, result: 'ok' });
          this.install(out.state);
          return out;
        }
        // Another replica wrote first: reload and try again on its state.
        await this.reload();
        if (attempt >= 5) {
          this.metrics.applies.inc({ op, result: 'conflict' });
          return { ok: false, code: 'conflict', errors: [{ document: '<store>', path: '', message: 'concurrent writers; try again' }] };
        }
      }
    };
    const p = this.chain.then(traced, traced);
    this.chain = p.catch(() => {});
    return p;
  }

  /** One audit line per change: who, what, from which version to which. Documents (and secrets in them) are not logged. */
  private audit(op: string, who: string, before: StoreState, out: Change): void {
    const changes = [
      ...out.changed.map((e) => ({
        resource: `${e.doc.kind}/${e.doc.metadata.name}`,
        from: findEntry(before, e.doc.kind, e.doc.metadata.name)?.version ?? null,
        to: e.version,
      })),
      ...out.removed.map((key) => {
        const [kind, name] = key.split('/') as [string, string];
        return { resource: key, from: findEntry(before, kind, name)?.version ?? null, to: null };
      }),
    ];
    this.logger.info({ audit: true, op, who, fromRevision: before.revision, toRevision: out.state.revision, changes }, `${op} committed`);
  }

  private async reload(): Promise<void> {
    const t0 = this.clock.monotonicMs();
    const s = await this.opts.store.load();
    this.metrics.storeLatency.observe({ op: 'load' }, (this.clock.monotonicMs() - t0) / 1000);
    if (s.revision !== this.state.revision) this.install(s);
  }

  /** Another replica changed the store (or redis reconnected): reload everything; retried until it succeeds. */
  private resync(): void {
    if (this.closing) return;
    const p = this.chain.then(() => this.reload());
    this.chain = p.catch((err: Error) => {
      this.logger.warn({ err: err.message }, 'store resync failed; retrying in 1s');
      this.resyncRetry?.cancel();
      this.resyncRetry = this.clock.setTimer(1000, () => {
        this.resyncRetry = undefined;
        this.resync();
      });
    });
  }

  private install(next: StoreState): void {
    const prev = this.state;
    this.state = next;
    for (const w of this.watchers) w(next, prev);
    this.schedulePush();
  }

  watch(fn: (state: StoreState, prev: StoreState) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  // ---- push ----

  /**
   * Adaptive debounce: a change that finds the plane idle (no push in the
   * last `debounceMs`, none pending) is pushed at once (on a 0 ms timer, so
   * the changes of one turn of the event loop go out together); a change
   * within `debounceMs` of a push, or while one is pending, starts or extends
   * a burst, pushed after `debounceMs` of quiet but no later than
   * `maxDelayMs` after the burst's first change. A lone apply then reaches
   * sidecars without waiting out the quiet period, and a storm (a rollout's
   * EndpointSlice churn) still costs one push per quiet period.
   */
  private schedulePush(): void {
    const now = this.clock.monotonicMs();
    const quiet = this.opts.debounceMs ?? 100;
    if (this.leadingPush) return; // joins the push already due this turn
    if (this.debounce === undefined && (this.lastPushAtMs === undefined || now - this.lastPushAtMs >= quiet)) {
      this.leadingPush = true;
      this.debounce = this.clock.setTimer(0, () => this.pushNow());
      return;
    }
    this.burstStartMs ??= now;
    const max = this.opts.maxDelayMs ?? 10_000;
    const delay = Math.max(0, Math.min(quiet, this.burstStartMs + max - now));
    this.debounce?.cancel();
    this.debounce = this.clock.setTimer(delay, () => this.pushNow());
  }

  private pushNow(): void {
    this.debounce = undefined;
    this.leadingPush = false;
    this.burstStartMs = undefined;
    this.lastPushAtMs = this.clock.monotonicMs();
    this.pushAll();
  }

  /**
   * Pushes the current state to every stream (what the debounce timer
   * calls): the first batch now, the rest in batches of PUSH_BATCH on
   * later turns of the event loop (a newer push supersedes the rest).
   */
  pushAll(): void {
    const generation = ++this.pushGeneration;
    const t0 = this.clock.monotonicMs();
    const generatedAtMs = this.generated.epoch !== this.pushedEpoch ? this.generated.changedAtMs : undefined;
    this.pushedEpoch = this.generated.epoch;
    const conv: Convergence = { changedAtMs: Math.max(this.state.changedAtMs, this.generated.changedAtMs), waiting: new Set(), complete: false, pushed: 0, generatedAtMs };
    this.convergence = conv;
    const streams = [...this.streams];
    let next = 0;
    // Tracing: the push as a child of the operator change that caused it (the latest one of a debounced burst).
    const cause = this.pushCause;
    this.pushCause = undefined;
    const pushSpan = this.opts.tracer === undefined ? undefined : this.opts.tracer.startSpan('control push', SpanKind.INTERNAL, cause);
    pushSpan?.set('outrigger.streams', streams.length).set('outrigger.revision', this.state.revision);
    const sentBeforePush = this.responsesSent;
    const batch = (): void => {
      if (generation !== this.pushGeneration || this.closing) {
        pushSpan?.set('outrigger.superseded', true).end();
        return;
      }
      const batchSpan = pushSpan === undefined ? undefined : this.opts.tracer!.startSpan('control push batch', SpanKind.INTERNAL, pushSpan);
      const first = next;
      const sentBeforeBatch = this.responsesSent;
      const end = Math.min(streams.length, next + PUSH_BATCH);
      for (; next < end; next++) {
        const s = streams[next]!;
        if (!this.streams.has(s)) continue; // closed meanwhile
        const sentBefore = this.responsesSent;
        s.refresh(this.viewFor(s));
        // Waited for only when this push sent it something (not when it is still un-ACKed from an earlier one).
        if (this.responsesSent !== sentBefore && !s.synced) {
          conv.waiting.add(s);
          conv.pushed++;
        }
      }
      batchSpan?.set('outrigger.streams', next - first).set('outrigger.responses', this.responsesSent - sentBeforeBatch).end();
      if (next < streams.length) {
        setImmediate(batch);
        return;
      }
      pushSpan?.set('outrigger.responses', this.responsesSent - sentBeforePush).end();
      conv.complete = true;
      if (conv.waiting.size === 0 && this.convergence === conv) {
        // Every stream pushed to has ACKed already (before the last batch ran).
        if (conv.pushed > 0) this.converged(conv, this.clock.nowMs());
        this.convergence = undefined;
      }
      this.metrics.pushDuration.observe((this.clock.monotonicMs() - t0) / 1000);
    };
    batch();
  }

  viewFor(stream: HostedStream): NodeView | undefined {
    return stream.identity ? this.cache.get(this.state, stream.identity, this.generated) : undefined;
  }

  register(stream: HostedStream): void {
    this.streams.add(stream);
  }

  opened(stream: HostedStream): void {
    if (stream.identity && this.streams.has(stream)) this.cache.retain(stream.identity);
    this.metrics.connected.inc({ stream: stream.kind });
    const ua = stream.node?.userAgentVersionType.case === 'userAgentVersion' ? stream.node.userAgentVersionType.value : '';
    this.logger.info({ stream: stream.id, node: stream.node?.id, cluster: stream.node?.cluster, version: ua, kind: stream.kind, ...(stream.node?.locality ? { locality: stream.node.locality } : {}) }, 'stream opened');
    this.opts.onStatusChange?.();
  }

  closed(stream: HostedStream, err?: Error): void {
    if (!this.streams.delete(stream)) return;
    stream.close();
    if (stream.identity) this.cache.release(stream.identity);
    if (stream.node) this.metrics.connected.dec({ stream: stream.kind });
    this.convergence?.waiting.delete(stream);
    this.logger.info({ stream: stream.id, node: stream.node?.id, err: err?.message }, 'stream closed');
    this.opts.onStatusChange?.();
  }

  sent(_stream: HostedStream, kind: Kind): void {
    this.responsesSent++;
    this.metrics.pushes.inc({ kind });
    this.opts.onStatusChange?.();
  }

  ack(stream: HostedStream, kind: Kind, t: StreamTypeStatus, version: string): void {
    const now = this.clock.nowMs();
    t.versionAcked = version;
    t.lastAckMs = now;
    // Only an ACK of what was sent clears a NACK's error: a later request on the same nonce that still
    // names the old version (a subscription refresh after a NACK) says the sidecar keeps the old config.
    if (version !== t.versionSent) {
      this.opts.onStatusChange?.();
      return;
    }
    t.error = undefined;
    if (t.changeMs > 0) {
      t.pushLatencyMs = Math.max(0, now - t.changeMs);
      this.metrics.pushLatency.observe({ kind }, t.pushLatencyMs / 1000);
    }
    const c = this.convergence;
    if (c && stream.synced && c.waiting.delete(stream) && c.waiting.size === 0 && c.complete) {
      this.converged(c, now);
      this.convergence = undefined;
    }
    this.opts.onStatusChange?.();
  }

  /** Every stream a push sent something has ACKed it. */
  private converged(c: Convergence, now: number): void {
    this.metrics.convergence.observe(Math.max(0, now - c.changedAtMs) / 1000);
    if (c.generatedAtMs !== undefined) this.opts.onGeneratedConverged?.(Math.max(0, now - c.generatedAtMs) / 1000);
  }

  nack(stream: HostedStream, kind: Kind, t: StreamTypeStatus, message: string): void {
    t.error = message || 'rejected';
    this.metrics.nacks.inc({ kind });
    this.logger.info({ stream: stream.id, node: stream.node?.id, kind, version: t.versionSent, error: t.error }, 'NACK');
    this.opts.onStatusChange?.();
  }

  /** How many nodes have a cached last good view (each has an open stream). */
  get cachedNodeViews(): number {
    return this.cache.size;
  }

  statusOf(): HostedStream[] {
    return [...this.streams].filter((s) => s.node);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unsubscribeGenerated?.();
    this.resyncRetry?.cancel();
    this.debounce?.cancel();
    for (const s of [...this.streams]) this.closed(s);
    await this.chain.catch(() => {});
    await this.opts.store.close();
  }
}

export function errorsText(errors: readonly ConfigError[]): string {
  return errors.map(formatConfigError).join('\n');
}
