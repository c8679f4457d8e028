import { createHash } from 'node:crypto';
import { fromJson, toJson, type JsonValue as PbJson } from '@bufbuild/protobuf';
import { anyPack, anyUnpack, type Any } from '@bufbuild/protobuf/wkt';
import { KINDS, KIND_SCHEMAS, typeUrlOf, type Kind } from '../config/kinds.js';
import { canonicalJson } from '../config/loader.js';
import type { JsonObject, JsonValue, ResourceDocument } from '../config/snapshot.js';

/**
 * What the sidecar and the control plane agree on: type URLs, the order of
 * types in a push (xDS warming order: clusters → endpoints → listeners →
 * routes), how a resource document travels as google.protobuf.Any, and how
 * versions are computed.
 */
export const TYPE_ORDER: readonly Kind[] = KINDS;
export const TYPE_URLS: readonly string[] = KINDS.map(typeUrlOf);

/** Only LDS and CDS may be wildcard subscriptions (xDS rule 6). */
export const WILDCARD_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Cluster', 'Listener']);

/**
 * Node.client_features entry of a sidecar that merges SotW EDS responses
 * (PROTOCOLS.md b1 rule 7: RDS and EDS responses may carry subsets; an
 * assignment goes when no cluster names it any more). The control plane
 * then sends only the assignments that changed; to a sidecar without it,
 * every subscribed assignment in each response.
 */
export const SOTW_EDS_SUBSETS = 'outrigger.io/sotw-eds-subsets';

/** Protocol version of this build: sidecars of the same major and at most one minor older are served. */
export const PROTOCOL_VERSION = '0.1.0';
export const USER_AGENT = 'outrigger-sidecar';

export function kindOfTypeUrl(url: string): Kind | undefined {
  const i = TYPE_URLS.indexOf(url);
  return i < 0 ? undefined : KINDS[i];
}

/** A resource ready to send: its Any and a content hash (the resource version of delta). */
export interface WireResource {
  readonly kind: Kind;
  readonly name: string;
  readonly any: Any;
  readonly hash: string;
}

/** Packs a normalised document (spec without name) as the Any of its message. */
export function toWire(doc: ResourceDocument): WireResource {
  const schema = KIND_SCHEMAS[doc.kind];
  const msg = fromJson(schema, { ...doc.spec, name: doc.metadata.name } as PbJson);
  return {
    kind: doc.kind,
    name: doc.metadata.name,
    any: anyPack(schema, msg),
    hash: hashOf(canonicalJson(doc.spec as JsonValue)),
  };
}

/** Unpacks an Any of a known kind into a resource document (labels do not travel). */
export function fromWire(any: Any): ResourceDocument | { error: string } {
  const kind = kindOfTypeUrl(any.typeUrl);
  if (!kind) return { error: `unknown resource type ${any.typeUrl}` };
  const schema = KIND_SCHEMAS[kind];
  let msg;
  try {
    msg = anyUnpack(any, schema);
  } catch (err) {
    return { error: `cannot decode ${kind}: ${(err as Error).message}` };
  }
  if (!msg) return { error: `cannot decode ${kind}` };
  const json = toJson(schema, msg) as JsonObject;
  const name = typeof json.name === 'string' ? json.name : '';
  delete json.name;
  return { apiVersion: 'outrigger.io/v1', kind, metadata: { name }, spec: json };
}

/** The version of a set of resources of one type: a hash of names and content hashes. */
export function versionOfSet(resources: Iterable<WireResource>): string {
  const parts = [...resources].map((r) => `${r.name}=${r.hash}`).sort();
  return hashOf(parts.join('\n'));
}

export function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** `major.minor` compatibility: same major, and the sidecar at most one minor behind or any minor ahead by none. */
export function compatibleVersion(sidecar: string, server = PROTOCOL_VERSION): boolean {
  const a = /^(\d+)\.(\d+)/.exec(sidecar);
  const b = /^(\d+)\.(\d+)/.exec(server);
  if (!a || !b) return sidecar === '';
  if (a[1] !== b[1]) return false;
  const d = Number(b[2]) - Number(a[2]);
  return d === 0 || d === 1;
}
export { typeUrlOf };
