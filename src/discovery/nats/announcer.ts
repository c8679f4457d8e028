import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection, type Subscription } from 'nats';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { announceSubject, encode, querySubject, type Heartbeat } from './announce-protocol.js';

export interface AnnouncerOptions {
  readonly servers: readonly string[];
  readonly service: string;
  readonly address: string;
  readonly port: number;
  /** Seconds (default 10). Heartbeats go out every TTL/3. */
  readonly ttlSeconds: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly weight?: number;
  readonly zone?: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * One member announcing itself (`outrigger announce`): heartbeats every
 * TTL/3, answers queries with its heartbeat, and says goodbye on stop, so
 * watchers drop it at once rather than a TTL later.
 */
export class Announcer {
  readonly id = randomUUID();
  private nc: NatsConnection | undefined;
  private sub: Subscription | undefined;
  private timer: Timer | undefined;
  private stopped = false;

  constructor(private readonly opts: AnnouncerOptions) {}

  private heartbeat(): Heartbeat {
    const o = this.opts;
    return {
      kind: 'heartbeat',
      service: o.service,
      id: this.id,
      address: o.address,
      port: o.port,
      ttl: o.ttlSeconds,
      ...(o.weight !== undefined ? { weight: o.weight } : {}),
      ...(o.zone ? { zone: o.zone } : {}),
      ...(o.labels && Object.keys(o.labels).length > 0 ? { labels: o.labels } : {}),
    };
  }

  async start(): Promise<void> {
    this.nc = await connect({ servers: [...this.opts.servers], name: `outrigger-announce-${this.opts.service}`, waitOnFirstConnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    const hb = encode(this.heartbeat());
    this.sub = this.nc.subscribe(querySubject(this.opts.service), {
      callback: (err, msg) => {
        if (!err && msg.reply) msg.respond(hb);
      },
    });
    const beat = () => {
      if (this.stopped || !this.nc) return;
      this.nc.publish(announceSubject(this.opts.service), hb);
      this.timer = this.opts.clock.setTimer((this.opts.ttlSeconds * 1000) / 3, beat);
    };
    beat();
    await this.nc.flush();
    this.opts.logger.info({ service: this.opts.service, address: this.opts.address, port: this.opts.port, id: this.id }, 'announcing');
  }

  /** Says goodbye (flushed to the server) and disconnects. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    const nc = this.nc;
    if (!nc) return;
    this.sub?.unsubscribe();
    nc.publish(announceSubject(this.opts.service), encode({ kind: 'goodbye', service: this.opts.service, id: this.id }));
    await nc.flush().catch(() => undefined);
    await nc.close().catch(() => undefined);
    this.opts.logger.info({ service: this.opts.service, id: this.id }, 'goodbye sent');
  }
}
