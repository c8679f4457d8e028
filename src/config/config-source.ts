import type { ConfigError, ResourceDocument } from './snapshot.js';

/**
 * What a source emits: a complete set of resource documents (it replaces the
 * source's previous set as a whole), or why its latest change was refused
 * (e.g. a config file that does not parse); a refusal changes nothing.
 */
export type SourceUpdate = { readonly ok: true; readonly documents: readonly ResourceDocument[] } | { readonly ok: false; readonly errors: readonly ConfigError[] };

/**
 * What became of an update, told back to its source (the xDS client turns it
 * into an ACK or a NACK, the file source into a log line):
 * - `published`: the merged set is the running config (or already was);
 * - `invalid`: merged with the other sources' sets it is not a consistent
 *   config (xDS: maybe the rest of a push is still on its way);
 * - `refused`: the data path could not take it (e.g. a port in use); `error`
 *   is what the data path threw, so the source can name the resource;
 * - `source`: the update was itself a refusal.
 * In every case but `published` the previous config keeps serving. A
 * published set may come with `warnings` (validation problems that do not
 * stop a config), which the source logs.
 */
export type Verdict =
  | { readonly ok: true; readonly version: string; readonly warnings?: readonly ConfigError[] }
  | { readonly ok: false; readonly stage: 'invalid' | 'source'; readonly errors: readonly ConfigError[] }
  | { readonly ok: false; readonly stage: 'refused'; readonly error: Error };

/** Where a source's updates go; one update at a time per source (a source waits for the verdict). */
export type ConfigSink = (update: SourceUpdate) => Promise<Verdict>;

/**
 * A provider of config over time: the `--config` file or directory
 * (FileConfigSource) and the control plane (XdsClient). Sources do not
 * install anything; ConfigPipeline merges their sets, installs, publishes.
 */
export interface ConfigSource {
  /** For logs ("file", "xds"). */
  readonly name: string;
  /** Connects the source to its sink; called once, before the source starts. */
  attach(sink: ConfigSink): void;
  close(): void;
}
