import type { ConfigSource, SourceUpdate, Verdict } from './config-source.js';
import { buildSnapshot } from './loader.js';
import type { ConfigSnapshot, ResourceDocument } from './snapshot.js';
import type { ConfigStore } from './store.js';
import type { ValidateOptions } from './validate.js';

/** What the data path made of a snapshot: taken, or refused with what went wrong (e.g. EADDRINUSE). */
export type ApplyResult = { readonly ok: true } | { readonly ok: false; readonly error: Error };

export interface ConfigPipelineOptions {
  /** The one published snapshot; this pipeline is its only writer. */
  readonly store: ConfigStore;
  /** Installs a snapshot in the data path (compiles its state, binds new listeners); may refuse it. */
  readonly apply: (snapshot: ConfigSnapshot) => Promise<ApplyResult>;
  readonly validateOptions?: ValidateOptions;
  /**
   * Documents derived from the merged set before it is validated: the
   * sidecar's discovery adds the ClusterLoadAssignments of the clusters it
   * discovers (their endpoints are not any source's; they follow whichever
   * clusters the merged set has). Default: none.
   */
  readonly derive?: (merged: readonly ResourceDocument[]) => readonly ResourceDocument[];
}

/**
 * Merges the sets of every source into one config: validated as a whole
 * (the same buildSnapshot as everywhere), installed, then published.
 *
 * Sources are ranked by the order they were added: a later source's
 * document wins a kind+name clash (the control plane over `--config`, as
 * Envoy's dynamic resources over static ones). A source's set counts only
 * once accepted; a refused set leaves its previous one in the merge.
 * Updates are handled one at a time, so two sources never race to install.
 */
export class ConfigPipeline {
  private readonly sources: ConfigSource[] = [];
  /** Each source's last accepted set: what the running config was merged from. */
  private readonly sets = new Map<ConfigSource, readonly ResourceDocument[]>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ConfigPipelineOptions) {}

  /** Adds a source, ranked above those added before it, and attaches it to this pipeline. */
  add(source: ConfigSource): void {
    this.sources.push(source);
    source.attach((update) => this.serially(() => this.offer(source, update)));
  }

  /** The documents `source` contributes to the running config ([] before its first accepted set). */
  documentsOf(source: ConfigSource): readonly ResourceDocument[] {
    return this.sets.get(source) ?? [];
  }

  /** Whether `source` has had a set accepted (or stood in for). */
  hasSet(source: ConfigSource): boolean {
    return this.sets.has(source);
  }

  /**
   * Installs `documents` on behalf of `source` while it has delivered
   * nothing (the persisted last good config standing in for a control plane
   * that is down); its first real set replaces them. Documents another
   * source provides now are left to that source. Undefined when the source
   * has delivered meanwhile.
   */
  standIn(source: ConfigSource, documents: readonly ResourceDocument[]): Promise<Verdict | undefined> {
    return this.serially(async () => {
      if (this.sets.has(source)) return undefined;
      const others = new Set<string>();
      for (const [s, docs] of this.sets) if (s !== source) for (const d of docs) others.add(keyOf(d));
      return this.install(
        source,
        documents.filter((d) => !others.has(keyOf(d))),
      );
    });
  }

  /**
   * Installs the current merge again with what `derive` gives now (e.g. a
   * discovered endpoint set changed). Undefined when no source has a set yet.
   */
  refresh(): Promise<Verdict | undefined> {
    return this.serially(async () => {
      const first = this.sources.find((s) => this.sets.has(s));
      if (!first) return undefined;
      return this.install(first, this.documentsOf(first));
    });
  }

  private async offer(source: ConfigSource, update: SourceUpdate): Promise<Verdict> {
    // A source's own refusal (a file that does not parse) changes nothing; the source has logged it.
    if (!update.ok) return { ok: false, stage: 'source', errors: update.errors };
    return this.install(source, update.documents);
  }

  private async install(source: ConfigSource, documents: readonly ResourceDocument[]): Promise<Verdict> {
    const { store } = this.opts;
    const byKey = new Map<string, ResourceDocument>();
    for (const s of this.sources) for (const d of s === source ? documents : this.documentsOf(s)) byKey.set(keyOf(d), d);
    if (this.opts.derive) for (const d of this.opts.derive([...byKey.values()])) byKey.set(keyOf(d), d);
    const built = buildSnapshot(
      [...byKey.values()].map((value, index) => ({ value, source: { index } })),
      this.opts.validateOptions,
    );
    if (!built.ok) return { ok: false, stage: 'invalid', errors: built.errors };
    const snap = built.value;
    const warnings = snap.warnings !== undefined ? { warnings: snap.warnings } : {};
    if (store.current()?.version === snap.version) {
      this.sets.set(source, documents);
      return { ok: true, version: snap.version, ...warnings };
    }
    // Step 1, apply: the data path takes the snapshot first (compiles its
    // state, binds new or moved listeners) and may refuse it (a bind
    // failure), in which case nothing is published and the source is told
    // why (the xDS client NACKs, naming the listener).
    let applied: ApplyResult;
    try {
      applied = await this.opts.apply(snap);
    } catch (err) {
      applied = { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
    }
    if (!applied.ok) return { ok: false, stage: 'refused', error: applied.error };
    // Step 2, publish: only a config the data path runs reaches the store,
    // and with it the admin API, the persisted last good copy, the xDS
    // client's subscriptions and the metrics (its subscribers).
    this.sets.set(source, documents);
    store.swap(snap);
    return { ok: true, version: snap.version, ...warnings };
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => {});
    return p;
  }
}

const keyOf = (d: ResourceDocument): string => `${d.kind}/${d.metadata.name}`;
