import { connect, createInbox, Events, type NatsConnection, type Subscription } from 'nats';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointSetTracker, type DiscoveredEndpoint, type EndpointSet } from '../endpoint-set.js';
import { ProviderHealth, type DiscoveryProvider, type ProviderEvents, type ProviderStatus, type ServiceWatch } from '../provider.js';
import { announceSubject, parseAnnouncement, querySubject, type Heartbeat } from './announce-protocol.js';

export interface NatsTarget {
  readonly service: string;
}

export interface NatsProviderOptions {
  readonly servers: readonly string[];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events?: ProviderEvents;
  /** Between reconnect attempts (default 500 ms). */
  readonly reconnectWaitMs?: number;
}

/**
 * Members that announce themselves over NATS (announce-protocol.ts): each
 * heartbeat (re)adds a member until TTL after it, a goodbye removes it at
 * once, and a query on watch start (and after every reconnect) makes the
 * current members answer, so a late watcher knows them at once.
 *
 * While the connection is down no heartbeat can arrive, so expiry is
 * suspended: the last members keep serving; after the reconnect each gets
 * a fresh TTL to be heard again (the query asks them at once).
 */
export class NatsProvider implements DiscoveryProvider<NatsTarget> {
  readonly kind = 'nats' as const;
  private readonly watches = new Set<NatsWatch>();
  readonly health: ProviderHealth;
  private nc: NatsConnection | undefined;
  private readonly connecting: Promise<NatsConnection | undefined>;
  private closed = false;
  connected = false;

  constructor(readonly opts: NatsProviderOptions) {
    this.health = new ProviderHealth('nats', opts.servers.join(','), opts.logger, () => opts.clock.nowMs(), opts.events);
    this.connecting = this.connect();
  }

  private async connect(): Promise<NatsConnection | undefined> {
    try {
      const nc = await connect({
        servers: [...this.opts.servers],
        name: 'outrigger-discovery',
        waitOnFirstConnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: this.opts.reconnectWaitMs ?? 500,
        reconnectJitter: 100,
        pingInterval: 10_000,
      });
      if (this.closed) {
        await nc.close();
        return undefined;
      }
      this.nc = nc;
      this.connected = true;
      this.health.ok('connect');
      void this.follow(nc);
      return nc;
    } catch (err) {
      this.health.fail(err);
      return undefined;
    }
  }

  private async follow(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) {
        this.connected = false;
        this.health.fail(new Error(`disconnected from ${String(s.data)}`));
        for (const w of this.watches) w.suspend();
      } else if (s.type === Events.Reconnect) {
        this.connected = true;
        this.health.ok('reconnect');
        for (const w of this.watches) w.resume();
      }
    }
  }

  watch(target: NatsTarget, emit: (set: EndpointSet) => void): ServiceWatch {
    const w = new NatsWatch(target, emit, this, () => this.watches.delete(w));
    this.watches.add(w);
    void this.connecting.then((nc) => nc && w.start(nc));
    return w;
  }

  status(): ProviderStatus {
    const h = this.health;
    return { kind: 'nats', connected: this.connected, lastEventMs: h.lastEventMs, services: this.watches.size, errors: h.errors, lastError: h.lastError };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    await this.nc?.close().catch(() => undefined);
  }
}

const EMPTY = new Uint8Array(0);

interface Member {
  readonly hb: Heartbeat;
  expiresAtMs: number;
}

class NatsWatch implements ServiceWatch {
  private readonly members = new Map<string, Member>();
  private readonly tracker: EndpointSetTracker;
  private subs: Subscription[] = [];
  private nc: NatsConnection | undefined;
  private inbox = '';
  private timer: Timer | undefined;
  private suspended = false;
  private closed = false;

  constructor(
    private readonly t: NatsTarget,
    emit: (set: EndpointSet) => void,
    private readonly p: NatsProvider,
    private readonly onClose: () => void,
  ) {
    this.tracker = new EndpointSetTracker(`nats:${t.service}`, emit, () => p.opts.clock.nowMs());
  }

  start(nc: NatsConnection): void {
    if (this.closed) return;
    this.nc = nc;
    this.inbox = createInbox();
    const onMsg = (err: Error | null, msg: { data: Uint8Array }) => {
      if (!err) this.receive(msg.data);
    };
    this.subs = [nc.subscribe(announceSubject(this.t.service), { callback: onMsg }), nc.subscribe(this.inbox, { callback: onMsg })];
    this.query();
  }

  /** Asks every current member to answer now. */
  private query(): void {
    if (!this.nc || this.closed) return;
    this.nc.publish(querySubject(this.t.service), EMPTY, { reply: this.inbox });
  }

  private receive(data: Uint8Array): void {
    const a = parseAnnouncement(data, this.t.service);
    if (typeof a === 'string') {
      this.p.health.rejected(`ignored a message: ${a}`);
      this.p.opts.logger.debug({ service: this.t.service, why: a }, 'nats discovery: ignored a message');
      return;
    }
    this.p.health.ok(a.kind);
    if (a.kind === 'goodbye') this.members.delete(a.id);
    else this.members.set(a.id, { hb: a, expiresAtMs: this.p.opts.clock.monotonicMs() + a.ttl * 1000 });
    this.publish();
  }

  /** Drops expired members, offers the rest, and arms the timer for the next expiry. */
  private publish(): void {
    if (this.closed) return;
    const now = this.p.opts.clock.monotonicMs();
    let next = Infinity;
    if (!this.suspended) {
      for (const [id, m] of this.members) {
        if (m.expiresAtMs <= now) this.members.delete(id);
        else next = Math.min(next, m.expiresAtMs);
      }
    }
    this.tracker.offer([...this.members.values()].map((m) => toEndpoint(m.hb)));
    this.timer?.cancel();
    this.timer = next === Infinity ? undefined : this.p.opts.clock.setTimer(Math.max(1, next - now), () => this.publish());
  }

  suspend(): void {
    this.suspended = true;
    this.timer?.cancel();
  }

  resume(): void {
    this.suspended = false;
    const now = this.p.opts.clock.monotonicMs();
    for (const m of this.members.values()) m.expiresAtMs = now + m.hb.ttl * 1000;
    this.query();
    this.publish();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    for (const s of this.subs) s.unsubscribe();
    this.onClose();
  }
}

function toEndpoint(hb: Heartbeat): DiscoveredEndpoint {
  return {
    address: hb.address,
    port: hb.port,
    weight: hb.weight ?? 1,
    ...(hb.zone ? { locality: { zone: hb.zone } } : {}),
    healthStatus: 'HEALTHY',
    metadata: { ...(hb.labels ?? {}) },
  };
}
