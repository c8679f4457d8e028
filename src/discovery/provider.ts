import type { Logger } from '../observability/logger.js';
import type { EndpointSet } from './endpoint-set.js';

export type ProviderKind = 'static' | 'dns' | 'kubernetes' | 'consul' | 'nats';

/** A watch on one service; closing it stops its source traffic when no other watch needs it. */
export interface ServiceWatch {
  close(): void;
}

/**
 * The one provider shape: a provider watches its source and emits the full,
 * versioned endpoint set (EndpointSet) of each service it was asked for. The
 * same providers run in the control plane and in a standalone sidecar; their
 * sets become ClusterLoadAssignments (endpoint-set.ts). A source that fails
 * emits nothing: the last good set keeps serving, the failure is counted and
 * logged once per state change (ProviderHealth), and recovery is automatic.
 */
export interface DiscoveryProvider<Target> {
  readonly kind: ProviderKind;
  /** Starts watching `target`; `emit` gets every new set (the first as soon as the source answers). */
  watch(target: Target, emit: (set: EndpointSet) => void): ServiceWatch;
  status(): ProviderStatus;
  close(): Promise<void>;
}

/** What `outrigger status` and the admin API show per provider. */
export interface ProviderStatus {
  readonly kind: ProviderKind;
  /** Whether the source answers now. */
  readonly connected: boolean;
  /** Wall-clock ms of the last event from the source (undefined: none yet). */
  readonly lastEventMs: number | undefined;
  /** Services watched now. */
  readonly services: number;
  /** Failures counted since start. */
  readonly errors: number;
  readonly lastError?: string;
}

/** What providers report to whoever counts (metrics) besides their sets. */
export interface ProviderEvents {
  /** A source event that was read (a set emitted or not); `event`: what it was (add, update, delete, sync, answer, connect, heartbeat, goodbye, resolve). */
  onEvent?(kind: ProviderKind, event: string): void;
  /** A failure (connect, resolve, watch, decode). */
  onError?(kind: ProviderKind): void;
}

/**
 * A provider's (or one watch's) connection state: counts every failure but
 * logs only transitions (ok → failing, failing → ok), so a source that stays
 * down does not fill the log.
 */
export class ProviderHealth {
  connected = false;
  lastEventMs: number | undefined = undefined;
  errors = 0;
  lastError: string | undefined = undefined;
  private failing = false;

  constructor(
    readonly kind: ProviderKind,
    private readonly what: string,
    private readonly logger: Logger,
    private readonly nowMs: () => number,
    private readonly events: ProviderEvents = {},
  ) {}

  /** The source answered: `event` says with what (the events metric's label). */
  ok(event: string): void {
    this.connected = true;
    this.lastEventMs = this.nowMs();
    this.events.onEvent?.(this.kind, event);
    if (this.failing) {
      this.failing = false;
      this.logger.info({ provider: this.kind, source: this.what }, 'discovery source recovered');
    }
  }

  /**
   * A message the source delivered but that could not be used (a malformed announcement): counted
   * and metered like any failure, but the connection is fine, so the state and the log stay as they are.
   */
  rejected(why: string): void {
    this.errors++;
    this.lastError = why;
    this.events.onError?.(this.kind);
  }

  fail(err: unknown): void {
    this.connected = false;
    this.errors++;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.events.onError?.(this.kind);
    if (!this.failing) {
      this.failing = true;
      this.logger.warn({ provider: this.kind, source: this.what, err: this.lastError }, 'discovery source failing; keeping the last good endpoints');
    }
  }
}

/** Exponential backoff with full jitter (AWS style), capped. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(1, Math.round(ceiling / 2 + (this.random() * ceiling) / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
