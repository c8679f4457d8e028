import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ConfigSnapshot } from '../../config/snapshot.js';
import { durationMs } from '../../core/duration.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';
import type { ProxyContext } from '../context.js';
import { ClusterRuntime } from '../upstream/cluster.js';
import { fetchByReflection } from './reflection-client.js';

export const DEFAULT_REFLECTION_REFRESH_MS = 30_000;
/** How long an apply waits for a new reflection source's first answer. */
export const FIRST_FETCH_TIMEOUT_MS = 3_000;
const FILE_DEBOUNCE_MS = 50;

/** Where a live source stands: its latest bytes, or why there are none yet. */
export type SourceState = { readonly bytes: Uint8Array; readonly hash: string } | { readonly error: string };

/** The key of a reflection source: the cluster and the services asked for. */
export function reflectionKey(cluster: string, services: readonly string[]): string {
  return `reflect:${cluster}:${[...services].sort().join(',')}`;
}

export function fileKey(path: string): string {
  return `file:${resolve(path)}`;
}

interface Tracker {
  state: SourceState | undefined;
  stop(): void;
}

/**
 * Descriptor sources that change without a config change (issue 3 point 9):
 * descriptor files (watched) and upstream gRPC server reflection (fetched on
 * an interval). `prepare` is called before each config apply and brings the
 * set of tracked sources in line with the snapshot; whenever a source's
 * content hash changes afterwards, `onChange` is called and the owner
 * rebuilds the ProxyState from the same snapshot (a swap, no restart).
 * Transcoder compilation reads the latest bytes through `get`.
 */
export class DescriptorSources {
  private readonly trackers = new Map<string, Tracker>();
  private closed = false;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly onChange: (key: string) => void,
  ) {}

  get(key: string): SourceState | undefined {
    return this.trackers.get(key)?.state;
  }

  /** Starts tracking the sources a snapshot uses (first reflection fetches awaited, bounded), stops the others. */
  async prepare(snapshot: ConfigSnapshot): Promise<void> {
    const wanted = new Map<string, () => Promise<Tracker>>();
    for (const rc of snapshot.routeConfigs.values()) {
      for (const vh of rc.virtualHosts) {
        for (const r of vh.routes) {
          if (r.action.case !== 'route' || !r.action.value.transcode) continue;
          const t = r.action.value.transcode;
          const src = t.descriptorSource;
          if (src.case === 'descriptorFile') {
            const key = fileKey(src.value);
            if (!wanted.has(key)) wanted.set(key, async () => this.watchFile(key, src.value));
          } else if (src.case === 'reflection') {
            // A weighted split's clusters serve the same services: reflection asks the first.
            const clusterName = r.action.value.cluster || (r.action.value.weightedClusters[0]?.cluster ?? '');
            const c = snapshot.clusters.get(clusterName);
            if (!c) continue;
            const key = reflectionKey(clusterName, src.value.services);
            const runtime = ClusterRuntime.build(c, snapshot.loadAssignments.get(clusterName));
            const every = durationMs(src.value.refreshInterval, 0) || DEFAULT_REFLECTION_REFRESH_MS;
            // A cluster whose endpoints changed gets a fresh tracker (new key material below).
            const ident = `${key}#${runtime.endpoints.map((e) => e.key).join(',')}#${every}`;
            wanted.set(ident, async () => this.reflect(ident, runtime, t, every));
          }
        }
      }
    }
    const starts: Promise<void>[] = [];
    for (const [key, start] of wanted) {
      if (this.trackers.has(key)) continue;
      starts.push(start().then((tr) => void this.trackers.set(key, tr)));
    }
    await Promise.all(starts);
    this.pendingKeys = new Set(wanted.keys());
  }

  /**
   * The snapshot `prepare` saw is now serving: stop tracking the sources
   * only the previous one used. (Not done in `prepare`, so a rejected apply
   * leaves the running config's sources tracked.)
   */
  commit(): void {
    const keep = this.pendingKeys;
    if (!keep) return;
    this.pendingKeys = undefined;
    for (const [key, tr] of this.trackers) {
      if (!keep.has(key)) {
        tr.stop();
        this.trackers.delete(key);
      }
    }
  }

  private pendingKeys: Set<string> | undefined;

  /** The state of a reflection source, by cluster and services (the newest tracker if endpoints changed). */
  reflection(cluster: string, services: readonly string[]): SourceState | undefined {
    const prefix = `${reflectionKey(cluster, services)}#`;
    let out: SourceState | undefined;
    for (const [k, tr] of this.trackers) if (k.startsWith(prefix)) out = tr.state;
    return out;
  }

  private watchFile(key: string, path: string): Tracker {
    const abs = resolve(path);
    const read = (): SourceState => {
      try {
        const bytes = readFileSync(abs);
        return { bytes, hash: hashOf(bytes) };
      } catch (err) {
        return { error: `cannot read descriptor file: ${(err as Error).message}` };
      }
    };
    const tr: Tracker = { state: read(), stop: () => {} };
    let timer: { cancel(): void } | undefined;
    let w: FSWatcher | undefined;
    const check = (): void => {
      timer = undefined;
      if (this.closed) return;
      const next = read();
      if (sameState(tr.state, next)) return;
      tr.state = next;
      this.ctx.logger.info({ file: abs, hash: 'hash' in next ? next.hash : undefined }, 'descriptor file changed');
      this.onChange(key);
    };
    try {
      // Watch the directory: editors and `buf build -o` replace the file (rename), which a file watch loses.
      w = watch(dirname(abs), (_ev, name) => {
        if (name !== null && name !== basename(abs)) return;
        timer?.cancel();
        timer = this.ctx.clock.setTimer(FILE_DEBOUNCE_MS, check);
      });
      w.on('error', () => {});
    } catch (err) {
      this.ctx.logger.warn({ file: abs, err: (err as Error).message }, 'cannot watch descriptor file; changes need a config reload');
    }
    tr.stop = () => {
      timer?.cancel();
      w?.close();
    };
    return tr;
  }

  private async reflect(key: string, cluster: ClusterRuntime, t: Transcode, everyMs: number): Promise<Tracker> {
    const services = t.descriptorSource.case === 'reflection' ? t.descriptorSource.value.services : [];
    const tr: Tracker = { state: undefined, stop: () => {} };
    let timer: { cancel(): void } | undefined;
    let stopped = false;
    const fetch = async (timeoutMs: number): Promise<SourceState> => {
      try {
        const bytes = await fetchByReflection(this.ctx, cluster, services, timeoutMs);
        return { bytes, hash: hashOf(bytes) };
      } catch (err) {
        return { error: `gRPC server reflection of cluster ${cluster.name}: ${(err as Error).message}` };
      }
    };
    const tick = async (): Promise<void> => {
      timer = undefined;
      if (stopped || this.closed) return;
      const next = await fetch(Math.max(everyMs, FIRST_FETCH_TIMEOUT_MS));
      if (stopped || this.closed) return;
      // A failed refresh keeps the descriptors we have: the upstream may be restarting.
      const keep = 'error' in next && tr.state !== undefined && 'bytes' in tr.state;
      if (!keep && !sameState(tr.state, next)) {
        tr.state = next;
        this.ctx.logger.info({ cluster: cluster.name, hash: 'hash' in next ? next.hash : undefined, error: 'error' in next ? next.error : undefined }, 'reflected descriptors changed');
        this.onChange(key);
      } else if ('error' in next) {
        this.ctx.logger.warn({ cluster: cluster.name, error: next.error }, 'descriptor refresh by reflection failed; keeping the last descriptors');
      }
      schedule();
    };
    const schedule = (): void => {
      if (!stopped && !this.closed) timer = this.ctx.clock.setTimer(everyMs, () => void tick());
    };
    tr.state = await fetch(FIRST_FETCH_TIMEOUT_MS);
    if ('error' in tr.state) this.ctx.logger.warn({ cluster: cluster.name, error: tr.state.error }, 'descriptors by reflection not available yet; retrying');
    schedule();
    tr.stop = () => {
      stopped = true;
      timer?.cancel();
    };
    return tr;
  }

  close(): void {
    this.closed = true;
    for (const tr of this.trackers.values()) tr.stop();
    this.trackers.clear();
  }
}

function hashOf(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function sameState(a: SourceState | undefined, b: SourceState): boolean {
  if (!a) return false;
  if ('hash' in a && 'hash' in b) return a.hash === b.hash;
  if ('error' in a && 'error' in b) return a.error === b.error;
  return false;
}
