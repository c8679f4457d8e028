import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import type { ConfigPipeline } from './config-pipeline.js';
import type { ConfigSource } from './config-source.js';
import { dumpSnapshot } from './dump.js';
import { loadConfig } from './loader.js';
import { formatConfigError, type ConfigSnapshot, type Result } from './snapshot.js';
import type { PublishedConfig } from './store.js';
import type { ValidateOptions } from './validate.js';

const FILE = 'last-good.yaml';

export interface LastGoodOptions {
  /** `--state-dir`. */
  readonly dir: string;
  readonly logger: Logger;
  readonly validateOptions?: ValidateOptions;
  /**
   * Writes a file durably (temp file, fsync, rename, fsync dir). Injected:
   * the writer lives with the control plane's file store, which config does
   * not import.
   */
  readonly writeFileAtomic: (dir: string, name: string, text: string) => Promise<void>;
}

/** The last good config on disk, so a restart can serve it while the control plane is unreachable. */
export class LastGood {
  constructor(private readonly opts: LastGoodOptions) {}

  /** Persists every snapshot `config` publishes (in the background; a failure is logged and the next one tries again). */
  follow(config: PublishedConfig): () => void {
    return config.subscribe((snap) => void this.persist(snap));
  }

  load(): Promise<Result<ConfigSnapshot>> {
    return loadConfig(join(this.opts.dir, FILE), this.opts.validateOptions);
  }

  private async persist(snap: ConfigSnapshot): Promise<void> {
    const { dir, logger } = this.opts;
    try {
      await mkdir(dir, { recursive: true });
      await this.opts.writeFileAtomic(dir, FILE, dumpSnapshot(snap, 'yaml'));
    } catch (err) {
      logger.warn({ err: (err as Error).message, dir }, 'could not persist config');
    }
  }
}

export interface FirstSetOptions {
  readonly pipeline: ConfigPipeline;
  /** The remote source (the xDS client), already started. */
  readonly source: ConfigSource;
  /** Resolves when its first set was published. */
  readonly ready: Promise<void>;
  /** Resolves when it could not connect at all. */
  readonly down: Promise<void>;
  readonly clock: Clock;
  /** How long to wait for the first set before falling back. */
  readonly timeoutMs: number;
  /** Undefined without `--state-dir`: then the sidecar just goes on with what it has. */
  readonly lastGood: LastGood | undefined;
  readonly logger: Logger;
}

/**
 * Boot: waits for the remote source's first set; if it is unreachable (or
 * slow), the persisted last good config stands in for it until it answers
 * (its documents named by the bootstrap are left to the bootstrap).
 */
export async function awaitFirstSet(o: FirstSetOptions): Promise<void> {
  let timer: { cancel(): void } | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = o.clock.setTimer(o.timeoutMs, () => r('timeout'))));
  const first = await Promise.race([o.ready.then(() => 'ready' as const), o.down.then(() => 'down' as const), timeout]);
  timer?.cancel();
  if (first === 'ready' || !o.lastGood) return;
  const persisted = await o.lastGood.load();
  if (!persisted.ok || o.pipeline.hasSet(o.source)) return;
  o.logger.warn({ reason: first, version: persisted.value.version }, 'control plane not available; serving the persisted last good config');
  const verdict = await o.pipeline.standIn(o.source, persisted.value.documents);
  if (verdict === undefined || verdict.ok) return; // undefined: the source answered meanwhile
  const errors = verdict.stage === 'refused' ? [`${FILE}: ${verdict.error.message}`] : verdict.errors.map(formatConfigError);
  o.logger.error({ errors }, 'persisted config not usable');
}
