import type { ResourceDocument } from '../../src/config/snapshot.js';
import type { LiveCounts, LiveDimension } from '../../src/observability/live-stats.js';
import type { TapEvent } from '../../src/observability/tap.js';
import type { Svid } from '../../src/core/svid.js';

/*
 * The IPC between a `--concurrency N` primary and its workers (node:cluster's
 * channel, JSON-serialised). Every message has a `t`; requests carry an `id`
 * their answer repeats. Config goes one way only: the primary validated it
 * before handing it over, the worker compiles and applies it.
 */

/** The SVID as it crosses the channel: the PEMs (the worker builds its own TLS context). */
export type SvidData = Omit<Svid, 'secureContext'>;

export type AdminQuery =
  | { readonly what: 'metrics' | 'clusters' | 'routes' | 'listeners' }
  | { readonly what: 'live'; readonly by: LiveDimension }
  /** Answered with the number of entries deleted (0 without cache filters). */
  | { readonly what: 'purge'; readonly prefix: string };

export type ToWorker =
  /** A validated snapshot's documents; the worker answers `applied` or `refused` with the same seq. */
  | { readonly t: 'config'; readonly seq: number; readonly version: string; readonly documents: readonly ResourceDocument[] }
  | { readonly t: 'svid'; readonly svid: SvidData }
  | { readonly t: 'query'; readonly id: number; readonly q: AdminQuery }
  /** Forward every finished exchange as a tap event (the primary's hub filters) until `tapOff`. */
  | { readonly t: 'tapOn' }
  | { readonly t: 'tapOff' }
  /** Stop accepting, finish in-flight requests up to the drain timeout, exit 0. */
  | { readonly t: 'drain' };

export type FromWorker =
  /** The data path is built; config may come. */
  | { readonly t: 'hello' }
  | { readonly t: 'applied'; readonly seq: number; readonly version: string; readonly addresses: Record<string, { host: string; port: number }> }
  | { readonly t: 'refused'; readonly seq: number; readonly error: string }
  | { readonly t: 'answer'; readonly id: number; readonly body: unknown }
  | { readonly t: 'tapEvent'; readonly event: TapEvent };

/** A worker's answer to a `live` query. */
export type LiveAnswer = readonly LiveCounts[];

/** Environment the primary gives each worker: its slot and the worker count. */
export const WORKER_INDEX_ENV = 'OUTRIGGER_WORKER_INDEX';
export const WORKER_COUNT_ENV = 'OUTRIGGER_WORKER_COUNT';
