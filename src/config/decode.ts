import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import type { Listener } from '../gen/outrigger/config/v1/listener_pb.js';
import type { RouteConfiguration } from '../gen/outrigger/config/v1/route_pb.js';
import type { Cluster, ClusterLoadAssignment } from '../gen/outrigger/config/v1/cluster_pb.js';
import { API_VERSION, KINDS, KIND_SCHEMAS, isKind, type Kind } from './kinds.js';
import type { ConfigError, DocumentSource } from './snapshot.js';
import { sourceLabel, type RawDocument } from './documents.js';
import { checkMessageJson, isPlainObject, join, jsonType, type PathIssue } from './spec-check.js';

export interface KindMessages {
  Cluster: Cluster;
  ClusterLoadAssignment: ClusterLoadAssignment;
  Listener: Listener;
  RouteConfiguration: RouteConfiguration;
}

/** A document decoded into its typed message; `message.name` equals `name`. */
export type DecodedResource = {
  [K in Kind]: {
    readonly kind: K;
    readonly name: string;
    readonly message: KindMessages[K];
    readonly labels: Readonly<Record<string, string>>;
    readonly annotations: Readonly<Record<string, string>>;
    readonly source: DocumentSource;
  };
}[Kind];

/**
 * A failed decode still says which resource it was when it can, so that
 * validation of the other documents does not also report every reference to
 * it as dangling.
 */
export interface DecodeFailure {
  readonly ok: false;
  readonly errors: ConfigError[];
  readonly kind?: Kind;
  readonly name?: string;
}

export type DecodeResult = { readonly ok: true; readonly value: DecodedResource } | DecodeFailure;

const TOP_LEVEL_KEYS = ['apiVersion', 'kind', 'metadata', 'spec'];
const METADATA_KEYS = ['name', 'labels', 'annotations'];
/** DNS-1123 subdomain, like Kubernetes object names, so documents can become CRs. */
const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/**
 * Cluster and ClusterLoadAssignment names may also carry "|": the control
 * plane's generated mesh clusters follow Istio's `outbound|PORT||HOST`.
 */
const CLUSTER_NAME_RE = /^[a-z0-9]([-a-z0-9.|]*[a-z0-9])?$/;
const MAX_NAME_LENGTH = 253;

/** Checks the envelope and the spec of one document and decodes it; reports every problem found. */
export function decodeDocument(raw: RawDocument): DecodeResult {
  const doc = raw.value;
  if (!isPlainObject(doc)) {
    return {
      ok: false,
      errors: [{ document: sourceLabel(raw.source), path: '', message: `expected a resource document (object), got ${jsonType(doc)}` }],
    };
  }
  const kind = isKind(doc.kind) ? doc.kind : undefined;
  const meta = isPlainObject(doc.metadata) ? doc.metadata : undefined;
  const rawName = meta && typeof meta.name === 'string' && meta.name !== '' ? meta.name : undefined;
  const label = kind && rawName ? `${kind}/${rawName}` : sourceLabel(raw.source);
  const issues: PathIssue[] = [];

  for (const key of Object.keys(doc)) {
    if (!TOP_LEVEL_KEYS.includes(key)) issues.push({ path: join('', key), message: `unknown field; known fields: ${TOP_LEVEL_KEYS.join(', ')}` });
  }
  if (doc.apiVersion !== API_VERSION) {
    const got = doc.apiVersion === undefined ? 'missing' : JSON.stringify(doc.apiVersion);
    issues.push({ path: 'apiVersion', message: `must be "${API_VERSION}", got ${got}` });
  }
  if (!kind) {
    const got = doc.kind === undefined ? 'missing' : JSON.stringify(doc.kind);
    issues.push({ path: 'kind', message: `must be one of ${KINDS.join(', ')}, got ${got}` });
  }
  const { labels, annotations } = checkMetadata(doc.metadata, issues, kind === 'Cluster' || kind === 'ClusterLoadAssignment');

  let message: KindMessages[Kind] | undefined;
  if (kind) {
    const spec = doc.spec === undefined ? {} : doc.spec;
    const before = issues.length;
    checkMessageJson(KIND_SCHEMAS[kind], spec, 'spec', issues);
    if (isPlainObject(spec)) {
      const specName = spec.name;
      if (typeof specName === 'string' && specName !== '' && rawName !== undefined && specName !== rawName) {
        issues.push({ path: 'spec.name', message: `must equal metadata.name "${rawName}" (or be omitted), got "${specName}"` });
      }
    }
    // Only decode a spec whose shape is right, so fromJson cannot throw on
    // something already reported with a better path.
    if (issues.length === before) {
      try {
        message = fromJson(KIND_SCHEMAS[kind], spec as JsonValue, { ignoreUnknownFields: false }) as KindMessages[Kind];
      } catch (err) {
        issues.push({ path: 'spec', message: (err as Error).message });
      }
    }
  }

  // An invalid name always adds an issue, so `rawName` is a valid name past this point.
  if (issues.length > 0 || !kind || !message || rawName === undefined) {
    return {
      ok: false,
      errors: issues.map((i) => ({ document: label, path: i.path, message: i.message })),
      ...(kind && rawName ? { kind, name: rawName } : {}),
    };
  }
  message.name = rawName;
  return {
    ok: true,
    value: { kind, name: rawName, message, labels, annotations, source: raw.source } as DecodedResource,
  };
}

function checkMetadata(
  meta: unknown,
  issues: PathIssue[],
  clusterName = false,
): { labels: Record<string, string>; annotations: Record<string, string> } {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  if (!isPlainObject(meta)) {
    issues.push({ path: 'metadata', message: meta === undefined ? 'required' : `expected object, got ${jsonType(meta)}` });
    return { labels, annotations };
  }
  for (const key of Object.keys(meta)) {
    if (!METADATA_KEYS.includes(key)) {
      issues.push({ path: join('metadata', key), message: `unknown field; known fields: ${METADATA_KEYS.join(', ')}` });
    }
  }
  const name = meta.name;
  if (name === undefined || name === '') {
    issues.push({ path: 'metadata.name', message: 'required' });
  } else if (typeof name !== 'string') {
    issues.push({ path: 'metadata.name', message: `expected string, got ${jsonType(name)}` });
  } else if (name.length > MAX_NAME_LENGTH) {
    issues.push({ path: 'metadata.name', message: `must be at most ${MAX_NAME_LENGTH} characters` });
  } else if (!(clusterName ? CLUSTER_NAME_RE : NAME_RE).test(name)) {
    issues.push({
      path: 'metadata.name',
      message: `invalid name "${name}": use lowercase letters, digits, "-" and "."${clusterName ? ' (and "|")' : ''}, starting and ending with a letter or digit`,
    });
  }
  checkStringMap(meta.labels, 'metadata.labels', labels, issues);
  checkStringMap(meta.annotations, 'metadata.annotations', annotations, issues);
  return { labels, annotations };
}

function checkStringMap(v: unknown, path: string, into: Record<string, string>, issues: PathIssue[]): void {
  if (v === undefined || v === null) return;
  if (!isPlainObject(v)) {
    issues.push({ path, message: `expected object of strings, got ${jsonType(v)}` });
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string') into[k] = val;
    else issues.push({ path: join(path, k), message: `expected string, got ${jsonType(val)}` });
  }
}
