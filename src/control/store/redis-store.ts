import { Redis } from 'ioredis';
import { EMPTY_STATE, type StoreState } from '../server/resource-state.js';
import type { StateStore } from './state-store.js';

const STATE_KEY = 'outrigger:control:state';
const REVISION_KEY = 'outrigger:control:revision';
const CHANNEL = 'outrigger:control:changes';

/**
 * `redis://HOST:PORT`: state shared by control-plane replicas. Two keys (the
 * revision and the whole state) written in one MULTI under WATCH, so
 * concurrent writers on different replicas serialise by revision; a publish
 * on a channel tells the other replicas to reload. After a reconnect the
 * subscriber reports a change, so replicas resync everything they may have
 * missed. Durability of an acknowledged commit needs the server's AOF
 * (`appendonly yes`, `appendfsync everysec` or `always`).
 */
export class RedisStateStore implements StateStore {
  private readonly callbacks: (() => void)[] = [];
  private ready = false;

  private constructor(
    private readonly url: string,
    private readonly client: Redis,
    private readonly sub: Redis,
  ) {
    sub.on('message', (channel: string) => {
      if (channel === CHANNEL) this.emit();
    });
    // The first 'ready' is the initial connect; later ones are reconnects: resync.
    sub.on('ready', () => {
      if (this.ready) this.emit();
      this.ready = true;
    });
  }

  static async open(url: string): Promise<RedisStateStore> {
    const opts = { maxRetriesPerRequest: 2, lazyConnect: true, retryStrategy: (n: number) => Math.min(50 * 2 ** n, 2000) };
    const client = new Redis(url, opts);
    const sub = new Redis(url, opts);
    client.on('error', () => {});
    sub.on('error', () => {});
    await client.connect();
    await sub.connect();
    const store = new RedisStateStore(url, client, sub);
    await sub.subscribe(CHANNEL);
    return store;
  }

  get description(): string {
    return this.url.replace(/\/\/[^@]*@/, '//***@');
  }

  async load(): Promise<StoreState> {
    const text = await this.client.get(STATE_KEY);
    return text ? (JSON.parse(text) as StoreState) : EMPTY_STATE;
  }

  async commit(next: StoreState, expectedRevision: number): Promise<boolean> {
    await this.client.watch(REVISION_KEY);
    const cur = Number((await this.client.get(REVISION_KEY)) ?? '0');
    if (cur !== expectedRevision) {
      await this.client.unwatch();
      return false;
    }
    const res = await this.client.multi().set(STATE_KEY, JSON.stringify(next)).set(REVISION_KEY, String(next.revision)).exec();
    if (res === null) return false;
    await this.client.publish(CHANNEL, String(next.revision));
    return true;
  }

  onExternalChange(cb: () => void): void {
    this.callbacks.push(cb);
  }

  private emit(): void {
    for (const cb of this.callbacks) cb();
  }

  async close(): Promise<void> {
    this.sub.disconnect();
    this.client.disconnect();
  }
}
