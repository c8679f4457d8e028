import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { systemClock, type Clock, type Timer } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import { formatConfigError, type ConfigError, type ConfigSnapshot, type Result } from './snapshot.js';
import type { ConfigSink, ConfigSource, Verdict } from './config-source.js';
import { loadConfig } from './loader.js';
import type { ValidateOptions } from './validate.js';

export interface FileConfigSourceOptions {
  /** A config file or a directory of them (see loadConfig). */
  readonly path: string;
  readonly logger: Logger;
  /** Drives the debounce and the polling timers. Default: the system clock. */
  readonly clock?: Clock;
  /** Quiet time after the last change event before reloading. Default 100ms. */
  readonly debounceMs?: number;
  /**
   * Also compare file stats every this many ms (0 = off), for file systems
   * where fs.watch reports nothing (some network and overlay mounts).
   */
  readonly pollIntervalMs?: number;
  /** Use fs.watch (default true); off leaves only polling, for mounts where watching is unreliable. */
  readonly watch?: boolean;
  readonly validateOptions?: ValidateOptions;
  /** Called after a new version of the file was accepted (not when the content did not change). */
  readonly onApplied?: (version: string) => void;
  /** Called when a reload was rejected; the previous snapshot keeps serving. Not called for start(). */
  readonly onRejected?: (errors: readonly ConfigError[]) => void;
}

/**
 * Watches a config file or directory and offers every valid change to its
 * sink (a ConfigPipeline), which merges, installs and publishes it; a change
 * the sink refuses counts as rejected like an invalid file.
 *
 * States: new → (start) → idle ⇄ scheduled (debounce timer armed) → loading →
 * idle; any state → (close) → closed. A change seen while loading marks the
 * source dirty, and it reloads once more when the load finishes, so the last
 * write always wins and two loads never overlap.
 *
 * The directory is watched rather than the file: editors and Kubernetes
 * replace files by rename, which would leave a watch on the old inode.
 */
export class FileConfigSource implements ConfigSource {
  readonly name = 'file';
  private readonly clock: Clock;
  private readonly debounceMs: number;
  private watcher: FSWatcher | undefined;
  private debounce: Timer | undefined;
  private pollTimer: Timer | undefined;
  private pollSignature = '';
  private loading: Promise<Result<ConfigSnapshot>> | undefined;
  private dirty = false;
  private started = false;
  private closed = false;
  private version: string | undefined;
  private sink: ConfigSink | undefined;

  constructor(private readonly opts: FileConfigSourceOptions) {
    this.clock = opts.clock ?? systemClock();
    this.debounceMs = opts.debounceMs ?? 100;
  }

  attach(sink: ConfigSink): void {
    this.sink = sink;
  }

  /** The version of the file's last accepted snapshot (the file alone, not the merged config). */
  get currentVersion(): string | undefined {
    return this.version;
  }

  /**
   * Loads and offers the config once, then watches it. On failure nothing
   * is watched and the errors are returned: a bad bootstrap config is fatal.
   */
  async start(): Promise<Result<ConfigSnapshot>> {
    if (this.started) throw new Error('FileConfigSource already started');
    if (!this.sink) throw new Error('FileConfigSource started before it was attached');
    this.started = true;
    // Watch first so a change made during the first load is not missed.
    if (this.opts.watch !== false) await this.startWatching();
    const first = await this.reload();
    if (!first.ok) {
      this.close();
      return first;
    }
    if (this.opts.pollIntervalMs && this.opts.pollIntervalMs > 0 && !this.closed) {
      this.pollSignature = await this.signature();
      this.schedulePoll();
    }
    return first;
  }

  /** Loads now (also usable on SIGHUP); concurrent calls share one load. */
  reload(): Promise<Result<ConfigSnapshot>> {
    if (this.loading) {
      this.dirty = true;
      return this.loading;
    }
    this.loading = this.loadOnce().finally(() => {
      this.loading = undefined;
      if (this.dirty && !this.closed) {
        this.dirty = false;
        this.schedule();
      }
    });
    return this.loading;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.debounce?.cancel();
    this.pollTimer?.cancel();
  }

  private async loadOnce(): Promise<Result<ConfigSnapshot>> {
    const { logger, path } = this.opts;
    const isFirst = this.version === undefined;
    let result = await loadConfig(path, { ...this.opts.validateOptions, anchorPluginPaths: true });
    if (this.closed && !isFirst) return result;
    if (result.ok && result.value.version !== this.version) {
      const snap = result.value;
      const verdict = await this.sink!({ ok: true, documents: snap.documents });
      if (!verdict.ok) result = { ok: false, errors: [{ document: path, path: '', message: `could not apply: ${refusal(verdict)}` }] };
      if (result.ok) {
        this.version = snap.version;
        logger.info({ path, version: snap.version, documents: snap.documents.length }, 'config applied');
        if (verdict.ok && verdict.warnings) logger.warn({ path, version: snap.version, warnings: verdict.warnings.map(formatConfigError) }, 'config warnings');
        this.opts.onApplied?.(snap.version);
      }
    } else if (!result.ok) {
      await this.sink!({ ok: false, errors: result.errors });
    }
    if (!result.ok) {
      // One line with every error, so a log search for the rejection shows all of them.
      logger.error(
        { path, errors: result.errors.map(formatConfigError), keptVersion: this.version ?? null },
        isFirst ? 'config invalid' : 'config rejected; the previous config keeps serving',
      );
      if (!isFirst) this.opts.onRejected?.(result.errors);
    }
    return result;
  }

  /** (Re)arms the debounce timer; bursts of events collapse into one load. */
  private schedule(): void {
    if (this.closed) return;
    this.debounce?.cancel();
    this.debounce = this.clock.setTimer(this.debounceMs, () => {
      this.debounce = undefined;
      void this.reload();
    });
  }

  private async startWatching(): Promise<void> {
    const { path, logger } = this.opts;
    const isDir = await stat(path).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (this.closed) return;
    const dir = isDir ? path : dirname(path);
    const file = isDir ? undefined : basename(path);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (this.relevant(name === null ? null : String(name), file)) this.schedule();
      });
      this.watcher.on('error', (err) => {
        logger.warn({ path, err: err.message }, 'config watch failed; changes are seen only by polling');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      logger.warn({ path, err: (err as Error).message }, 'cannot watch config; changes are seen only by polling');
    }
  }

  /**
   * Which directory events can change the config: the file itself, any
   * config file of a watched directory, and Kubernetes' `..data` symlink swap.
   */
  private relevant(name: string | null, file: string | undefined): boolean {
    if (name === null || name.startsWith('..')) return true;
    if (file !== undefined) return name === file;
    return !name.startsWith('.') && ['.yaml', '.yml', '.json'].includes(extname(name).toLowerCase());
  }

  private schedulePoll(): void {
    this.pollTimer = this.clock.setTimer(this.opts.pollIntervalMs!, () => {
      void this.signature().then((sig) => {
        if (this.closed) return;
        if (sig !== this.pollSignature) {
          this.pollSignature = sig;
          this.schedule();
        }
        this.schedulePoll();
      });
    });
  }

  /** Size, mtime and inode of every config file: cheap, and changes with any write or replace. */
  private async signature(): Promise<string> {
    const { path } = this.opts;
    try {
      const st = await stat(path);
      if (!st.isDirectory()) return `${st.ino}:${st.size}:${st.mtimeMs}`;
      const parts: string[] = [];
      for (const name of (await readdir(path)).sort()) {
        if (!this.relevant(name, undefined) || name.startsWith('..')) continue;
        const f = await stat(join(path, name)).catch(() => undefined);
        if (f) parts.push(`${name}:${f.ino}:${f.size}:${f.mtimeMs}`);
      }
      return parts.join('|');
    } catch (err) {
      return `error:${(err as Error).message}`;
    }
  }
}

/** Why the merged config was refused, as one line. */
function refusal(v: Exclude<Verdict, { ok: true }>): string {
  return v.stage === 'refused' ? v.error.message : v.errors.map(formatConfigError).join('; ');
}
