import { create, fromJsonString, toJsonString, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Clock, Timer } from '../../core/clock.js';
import { SidecarStatusSchema, StatusResponseSchema, type SidecarStatus, type StatusResponse } from '../../gen/outrigger/control/v1/operator_pb.js';
import type { Logger } from '../../observability/logger.js';
import type { ReplicaStatusStore } from '../store/state-store.js';
import type { HostedStream } from './stream-host.js';

/**
 * A sidecar that reconnected to another replica is still in the entry its
 * old replica last published until that entry expires (a killed replica
 * cannot remove it). Of the streams of one node and stream kind, an entry
 * from another replica is dropped when a newer connection of that node is
 * listed; this replica's live streams are always kept.
 */
function withoutMovedAway(sidecars: readonly SidecarStatus[], own: string): SidecarStatus[] {
  const newest = new Map<string, bigint>();
  const since = (s: SidecarStatus): bigint => (s.connectedSince ? s.connectedSince.seconds * 1_000_000_000n + BigInt(s.connectedSince.nanos) : 0n);
  for (const s of sidecars) {
    const k = `${s.nodeId}\n${s.stream}`;
    const t = since(s);
    if ((newest.get(k) ?? -1n) < t) newest.set(k, t);
  }
  return sidecars.filter((s) => s.controlPlane === own || since(s) >= newest.get(`${s.nodeId}\n${s.stream}`)!);
}

/** What Status reports for one open stream (the replica holding it included). */
export function sidecarStatusOf(s: HostedStream, controlPlane: string): SidecarStatus {
  return create(SidecarStatusSchema, {
    nodeId: s.node!.id,
    nodeCluster: s.node!.cluster,
    sidecarVersion: s.node!.userAgentVersionType.case === 'userAgentVersion' ? s.node!.userAgentVersionType.value : '',
    connectedSince: timestampFromMs(s.connectedAtMs),
    stream: s.kind,
    types: s.status(),
    controlPlane,
    adminAddress: adminAddressOf(s.node!.metadata),
    locality: s.node!.locality ? `${s.node!.locality.region}/${s.node!.locality.zone}/${s.node!.locality.subZone}` : '',
  });
}

/** The node metadata's "admin" (HOST:PORT), when the sidecar advertises one. */
function adminAddressOf(metadata: JsonObject | undefined): string {
  const v = metadata?.['admin'];
  return typeof v === 'string' ? v : '';
}

export interface StatusBoardOptions {
  /** This replica's id (SidecarStatus.control_plane, and its entry's key in the store). */
  readonly identifier: string;
  /** This replica's sidecars now. */
  readonly local: () => SidecarStatus[];
  /** Shared by the replicas (redis); undefined for a single replica (file store): Status is local only. */
  readonly store?: ReplicaStatusStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long a published entry outlives its replica's last write (default 15 s); rewritten every ttl/3. */
  readonly ttlMs?: number;
  /** After a change, this replica's entry is rewritten within this (default 250 ms, at most ttl/3); changes in between coalesce. */
  readonly changeDelayMs?: number;
  /** Reading the other replicas' entries for Status gives up after this (default 2 s). */
  readonly readTimeoutMs?: number;
}

export const DEFAULT_STATUS_TTL_MS = 15_000;

/**
 * Status across replicas. With a shared store every replica publishes its
 * sidecars' status as one entry with a TTL: at start, on a heartbeat (every
 * ttl/3) and shortly after a change (stream opened or closed, push, ACK,
 * NACK; coalesced); it removes the entry on clean shutdown, and a killed
 * replica's entry expires. Status merges this replica's live streams with
 * every other replica's entry. Timers run on the injected Clock.
 *
 * States: running (writes serialised, at most one in flight plus one
 * pending) → closed (timers cancelled, last write awaited, entry removed).
 */
export class StatusBoard {
  private readonly ttlMs: number;
  private readonly heartbeatMs: number;
  private readonly changeDelayMs: number;
  private heartbeat: Timer | undefined;
  private soon: Timer | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private failing = false;
  private closed = false;

  constructor(private readonly opts: StatusBoardOptions) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_STATUS_TTL_MS;
    this.heartbeatMs = this.ttlMs / 3;
    this.changeDelayMs = Math.min(opts.changeDelayMs ?? 250, this.heartbeatMs);
  }

  /** Publishes this replica's entry now and starts the heartbeat (nothing without a shared store). */
  start(): void {
    if (this.opts.store) this.publish();
  }

  /** Something in a stream's status changed: publish soon (cheap to call on every ACK). */
  changed(): void {
    if (!this.opts.store || this.closed || this.soon) return;
    this.soon = this.opts.clock.setTimer(this.changeDelayMs, () => {
      this.soon = undefined;
      this.publish();
    });
  }

  private publish(): void {
    const store = this.opts.store;
    if (!store || this.closed) return;
    this.soon?.cancel();
    this.soon = undefined;
    this.heartbeat?.cancel();
    this.heartbeat = this.opts.clock.setTimer(this.heartbeatMs, () => this.publish());
    if (this.writing) {
      // One write at a time; the next one takes whatever is current when it starts.
      this.again = true;
      return;
    }
    const text = toJsonString(StatusResponseSchema, create(StatusResponseSchema, { sidecars: this.opts.local() }));
    this.writing = store.putReplicaStatus(this.opts.identifier, text, this.ttlMs).then(
      () => {
        if (this.failing) this.opts.logger.info({ replica: this.opts.identifier }, 'replica status published again');
        this.failing = false;
      },
      (err: Error) => {
        // Retried on the next heartbeat; logged once per outage.
        if (!this.failing) this.opts.logger.warn({ replica: this.opts.identifier, err: err.message }, 'could not publish replica status; retrying on the heartbeat');
        this.failing = true;
      },
    );
    void this.writing.then(() => {
      this.writing = undefined;
      if (this.again) {
        this.again = false;
        this.publish();
      }
    });
  }

  /**
   * Every sidecar of every live replica: this replica's as they are now,
   * the others' as last published (sorted by node id, then replica). When
   * the store cannot be read, this replica's alone, with `error` set.
   */
  async status(): Promise<Pick<StatusResponse, 'sidecars' | 'controlPlanes' | 'error'>> {
    const own = this.opts.identifier;
    const sidecars = this.opts.local();
    const controlPlanes = [own];
    let error = '';
    if (this.opts.store) {
      try {
        const entries = await this.readWithTimeout(this.opts.store);
        const others = [...entries.keys()].filter((id) => id !== own).sort();
        for (const id of others) {
          try {
            const res = fromJsonString(StatusResponseSchema, entries.get(id)!, { ignoreUnknownFields: true });
            for (const s of res.sidecars) sidecars.push(s.controlPlane === '' ? { ...s, controlPlane: id } : s);
            controlPlanes.push(id);
          } catch (err) {
            this.opts.logger.warn({ replica: id, err: (err as Error).message }, 'unreadable replica status entry; skipped');
          }
        }
      } catch (err) {
        error = `status of the other replicas unavailable (${(err as Error).message}); only this replica's sidecars are listed`;
      }
    }
    const listed = withoutMovedAway(sidecars, own);
    listed.sort((a, b) => cmp(a.nodeId, b.nodeId) || cmp(a.controlPlane, b.controlPlane) || cmp(a.stream, b.stream));
    return { sidecars: listed, controlPlanes, error };
  }

  private readWithTimeout(store: ReplicaStatusStore): Promise<Map<string, string>> {
    const ms = this.opts.readTimeoutMs ?? 2000;
    return new Promise((resolve, reject) => {
      const t = this.opts.clock.setTimer(ms, () => reject(new Error(`no answer from the store in ${ms} ms`)));
      store.replicaStatuses().then(
        (m) => {
          t.cancel();
          resolve(m);
        },
        (err: unknown) => {
          t.cancel();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  /** Stops publishing and removes this replica's entry (clean shutdown); a failure leaves it to expire. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.heartbeat?.cancel();
    this.soon?.cancel();
    const store = this.opts.store;
    if (!store) return;
    // A write still in flight must not re-create the entry after the removal; a hung store gets readTimeoutMs.
    if (this.writing) {
      let timer: Timer | undefined;
      const waited = new Promise<'timeout'>((r) => (timer = this.opts.clock.setTimer(this.opts.readTimeoutMs ?? 2000, () => r('timeout'))));
      while (this.writing) if ((await Promise.race([this.writing.then(() => 'done' as const), waited])) === 'timeout') break;
      timer?.cancel();
    }
    await store.removeReplicaStatus(this.opts.identifier).catch((err: Error) => {
      this.opts.logger.warn({ replica: this.opts.identifier, err: err.message }, 'could not remove replica status; it expires with its TTL');
    });
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
