import type { LiveDimension, LiveRow } from '../observability/live-stats.js';
import type { TapFilter, TapSink } from '../observability/tap.js';

/** The window behind `/stats/live`: one process's LiveStats, or the sum of the workers' windows. */
export interface LiveSource {
  readonly windowMs: number;
  snapshot(by: LiveDimension): LiveRow[] | Promise<LiveRow[]>;
}

/** The tap behind `/tap`: one process's TapHub, or the primary's, fed by every worker. */
export interface TapSource {
  subscribe(filter: TapFilter, sink: TapSink): { drain(): void; close(): void };
}

/**
 * What the admin API of a `--concurrency N` primary reads instead of its own
 * (idle) data path: the workers' state, merged (sidecar/workers/fleet.ts).
 */
export interface WorkerAdmin {
  /** Every worker runs and has applied the published version, and none drains. */
  ready(): { ok: boolean; why: string };
  /** `/workers`: each worker's slot, pid, applied version and restarts. */
  workers(): unknown;
  /** The Prometheus text of the workers' registries aggregated with the primary's. */
  metrics(): Promise<string>;
  clusters(): Promise<unknown>;
  /** POST /cache/purge in every worker; the entries deleted, summed. */
  purgeCache(prefix: string): Promise<number>;
  routes(): Promise<unknown>;
  listeners(): Promise<unknown>;
  readonly live: LiveSource | undefined;
  readonly tap: TapSource | undefined;
}
