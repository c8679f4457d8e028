import { Redis } from 'ioredis';
import type { CaStore, ChangeReason, ReplicaStatusStore, StateStore } from './state-store.js';
import { EMPTY_STATE, type StoreState } from './store-state.js';

const STATE_KEY = 'outrigger:control:state';
const REVISION_KEY = 'outrigger:control:revision';
const CHANNEL = 'outrigger:control:changes';
/** The set of replica ids that published a status entry, and the prefix of each entry's key (`…status:<id>`, with a TTL). */
const REPLICAS_KEY = 'outrigger:control:replicas';
const STATUS_PREFIX = 'outrigger:control:status:';
/** The self-generated CA (certificate and key), written once with SET NX. */
const CA_KEY = 'outrigger:control:ca';
const REPLACE_CA = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0`;
/** The keys and channel, for tools and tests that look at redis directly. */
export const REDIS_KEYS = { state: STATE_KEY, revision: REVISION_KEY, channel: CHANNEL, replicas: REPLICAS_KEY, statusPrefix: STATUS_PREFIX, ca: CA_KEY } as const;

/**
 * Compare-and-set of the revision and the state, and the publish, as one
 * script: atomic on the server whatever else this connection sends. (WATCH
 * + MULTI was not: WATCH belongs to the connection, and any EXEC on it — a
 * status write between our WATCH and our MULTI — drops the watch, so two
 * replicas could both commit on the same revision: a lost update.)
 * KEYS: revision, state; ARGV: expected revision, new revision, state JSON, channel.
 */
const COMMIT = `
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1`;

/**
 * Reads every replica's entry and drops the ids whose entry has expired from
 * the set, atomically (a script), so a replica re-publishing at the same
 * moment cannot lose its id. Returns [id, text, id, text, …].
 */
const READ_STATUSES = `
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out`;

/**
 * `redis://HOST:PORT`: state shared by control-plane replicas. Two keys (the
 * revision and the whole state) written by one compare-and-set script, so
 * concurrent writers on different replicas serialise by revision; a publish
 * on a channel tells the other replicas to reload. After a reconnect the
 * subscriber reports a change, so replicas resync everything they may have
 * missed. Durability of an acknowledged commit needs the server's AOF
 * (`appendonly yes`, `appendfsync everysec` or `always`). Each replica also
 * keeps a status entry with a TTL (ReplicaStatusStore) so Status on any
 * replica lists the sidecars of all of them.
 */
export class RedisStateStore implements StateStore, ReplicaStatusStore, CaStore {
  private readonly callbacks: ((reason: ChangeReason) => void)[] = [];
  private closed = false;

  private constructor(
    private readonly url: string,
    private readonly client: Redis,
    private readonly sub: Redis,
  ) {
    sub.on('message', (channel: string) => {
      if (channel === CHANNEL) this.emit('change');
    });
    // Attached after the initial connect, so every 'ready' from here on is a
    // reconnect (of the subscriber: publishes may have been missed while it
    // was down). Subscribe again explicitly — and only then resync — so no
    // change can slip between the reload and the subscription.
    sub.on('ready', () => {
      if (this.closed) return;
      sub.subscribe(CHANNEL).then(
        () => this.emit('reconnect'),
        () => this.emit('reconnect'),
      );
    });
  }

  static async open(url: string): Promise<RedisStateStore> {
    const opts = {
      maxRetriesPerRequest: 2,
      lazyConnect: true,
      retryStrategy: (n: number) => Math.min(50 * 2 ** n, 2000),
      // Explicit resubscription on 'ready' (above) instead.
      autoResubscribe: false,
    };
    const client = new Redis(url, { ...opts, connectionName: 'outrigger-control' });
    const sub = new Redis(url, { ...opts, connectionName: 'outrigger-control-sub' });
    client.on('error', () => {});
    sub.on('error', () => {});
    await client.connect();
    await sub.connect();
    await sub.subscribe(CHANNEL);
    return new RedisStateStore(url, client, sub);
  }

  get description(): string {
    return this.url.replace(/\/\/[^@]*@/, '//***@');
  }

  async load(): Promise<StoreState> {
    const text = await this.client.get(STATE_KEY);
    return text ? (JSON.parse(text) as StoreState) : EMPTY_STATE;
  }

  async commit(next: StoreState, expectedRevision: number): Promise<boolean> {
    const ok = await this.client.eval(COMMIT, 2, REVISION_KEY, STATE_KEY, String(expectedRevision), String(next.revision), JSON.stringify(next), CHANNEL);
    return ok === 1;
  }

  get replicaStatus(): ReplicaStatusStore {
    return this;
  }

  get ca(): CaStore {
    return this;
  }

  async loadCa(): Promise<string | undefined> {
    return (await this.client.get(CA_KEY)) ?? undefined;
  }

  /** Compare-and-set in one Lua script: replicas rotating at once cannot both win. */
  async replaceCa(expected: string, next: string): Promise<boolean> {
    const ok = await this.client.eval(REPLACE_CA, 1, CA_KEY, expected, next);
    return ok === 1;
  }

  /** SET NX: the first replica's CA wins; every replica then reads that one. */
  async initCa(candidate: string): Promise<string> {
    await this.client.set(CA_KEY, candidate, 'NX');
    const stored = await this.client.get(CA_KEY);
    if (stored === null) throw new Error('redis: the CA key vanished right after it was written');
    return stored;
  }

  async putReplicaStatus(replica: string, text: string, ttlMs: number): Promise<void> {
    execOk(
      await this.client
        .multi()
        .set(STATUS_PREFIX + replica, text, 'PX', Math.max(1, Math.round(ttlMs)))
        .sadd(REPLICAS_KEY, replica)
        .exec(),
    );
  }

  async replicaStatuses(): Promise<Map<string, string>> {
    const flat = (await this.client.eval(READ_STATUSES, 1, REPLICAS_KEY, STATUS_PREFIX)) as string[];
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
    return out;
  }

  async removeReplicaStatus(replica: string): Promise<void> {
    execOk(await this.client.multi().del(STATUS_PREFIX + replica).srem(REPLICAS_KEY, replica).exec());
  }

  onExternalChange(cb: (reason: ChangeReason) => void): void {
    this.callbacks.push(cb);
  }

  private emit(reason: ChangeReason): void {
    for (const cb of this.callbacks) cb(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sub.disconnect();
    this.client.disconnect();
  }
}

/** A MULTI's replies carry per-command errors instead of rejecting: surface the first. */
function execOk(res: [Error | null, unknown][] | null): void {
  if (res === null) throw new Error('redis transaction aborted');
  for (const [err] of res) if (err) throw err;
}
