import type { Listener } from '../gen/outrigger/config/v1/listener_pb.js';
import type { RouteConfiguration } from '../gen/outrigger/config/v1/route_pb.js';
import type { Cluster, ClusterLoadAssignment } from '../gen/outrigger/config/v1/cluster_pb.js';
import type { Kind } from './kinds.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

/**
 * A resource document: the one format for config files, the operator API,
 * `get -o yaml` and `/config_dump`. `spec` is the canonical proto3 JSON of
 * `outrigger.config.v1.<kind>` without its `name` (which is metadata.name).
 */
export interface ResourceDocument {
  readonly apiVersion: 'outrigger.io/v1';
  readonly kind: Kind;
  readonly metadata: {
    readonly name: string;
    readonly labels?: Readonly<Record<string, string>>;
    /** Free-form notes for tools and people; they take part in the version like everything else. */
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly spec: JsonObject;
}

/** Where a document came from, for error messages. */
export interface DocumentSource {
  readonly file?: string;
  /** 0-based index of the document in its file. */
  readonly index?: number;
}

/**
 * One validated, internally consistent config: every reference resolves.
 * Immutable; replaced as a whole by ConfigStore.swap.
 */
export interface ConfigSnapshot {
  /** Content hash of the normalised documents: equal configs have equal versions. */
  readonly version: string;
  readonly listeners: ReadonlyMap<string, Listener>;
  readonly routeConfigs: ReadonlyMap<string, RouteConfiguration>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly loadAssignments: ReadonlyMap<string, ClusterLoadAssignment>;
  /** Normalised documents, sorted by kind order then name (what /config_dump shows). */
  readonly documents: readonly ResourceDocument[];
  /**
   * Problems that do not stop this config (validation warnings, e.g. a
   * ring-hash cluster reached by a route without a hash policy): shown by
   * `outrigger validate`, logged by the sidecar when it applies the config,
   * returned by the control plane's validate and apply. Absent: none.
   */
  readonly warnings?: readonly ConfigError[];
}

/** One problem found while loading or validating config. */
export interface ConfigError {
  /** `Kind/name`, or `file#index` when the document has no usable kind/name. */
  readonly document: string;
  /** Dotted path inside the document, e.g. `spec.virtualHosts[0].routes[2].cluster`. */
  readonly path: string;
  readonly message: string;
}

export function formatConfigError(e: ConfigError): string {
  return e.path ? `${e.document}: ${e.path}: ${e.message}` : `${e.document}: ${e.message}`;
}

export type Result<T> = { ok: true; value: T } | { ok: false; errors: ConfigError[] };
