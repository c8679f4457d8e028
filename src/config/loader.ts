import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { clone, toJson } from '@bufbuild/protobuf';
import type { Listener } from '../gen/outrigger/config/v1/listener_pb.js';
import type { RouteConfiguration } from '../gen/outrigger/config/v1/route_pb.js';
import type { Cluster, ClusterLoadAssignment } from '../gen/outrigger/config/v1/cluster_pb.js';
import { API_VERSION, KINDS, KIND_SCHEMAS } from './kinds.js';
import type { ConfigError, ConfigSnapshot, JsonObject, JsonValue, ResourceDocument, Result } from './snapshot.js';
import { parseDocuments, type RawDocument } from './documents.js';
import { anchorPluginPaths } from './plugin-paths.js';
import { decodeDocument, type DecodeResult, type DecodedResource, type KindMessages } from './decode.js';
import { validateResources, type ResourceRef, type ValidateOptions } from './validate.js';

export interface LoadOptions extends ValidateOptions {
  /** Make `./` plugin module paths absolute, relative to their file (the sidecar's --config: config/plugin-paths.ts). */
  readonly anchorPluginPaths?: boolean;
}

type KindMessage = KindMessages[keyof KindMessages];

const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/**
 * Loads a config file, or every `*.yaml`, `*.yml` and `*.json` file of a
 * directory (sorted by name, not recursive), into a validated snapshot.
 * Entries starting with "." are skipped: editors' swap files, and the
 * `..data` symlink farm of a mounted Kubernetes ConfigMap (its files appear
 * in the directory itself as symlinks, which are followed).
 */
export async function loadConfig(path: string, opts: LoadOptions = {}): Promise<Result<ConfigSnapshot>> {
  const read = await readDocuments(path);
  if (!read.ok) return read;
  if (read.value.length === 0) {
    // An empty config would tear down every listener; far more likely the
    // file is being rewritten or the path is wrong.
    return { ok: false, errors: [{ document: path, path: '', message: 'no resource documents found' }] };
  }
  if (opts.anchorPluginPaths) anchorPluginPaths(read.value);
  return buildSnapshot(read.value, opts);
}

/** Reads and parses the documents of a file or directory; syntax errors of every file are collected. */
export async function readDocuments(path: string): Promise<Result<RawDocument[]>> {
  let files: string[];
  try {
    const st = await stat(path);
    files = st.isDirectory() ? await configFilesIn(path) : [path];
  } catch (err) {
    return { ok: false, errors: [{ document: path, path: '', message: `cannot read: ${(err as Error).message}` }] };
  }
  const docs: RawDocument[] = [];
  const errors: ConfigError[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      errors.push({ document: file, path: '', message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const parsed = parseDocuments(text, { file });
    if (parsed.ok) docs.push(...parsed.value);
    else errors.push(...parsed.errors);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: docs };
}

async function configFilesIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.') && CONFIG_EXTENSIONS.has(extname(n).toLowerCase()));
  names.sort();
  const files: string[] = [];
  for (const n of names) {
    const file = join(dir, n);
    if ((await stat(file)).isFile()) files.push(file);
  }
  return files;
}

/**
 * Decodes and validates in-memory documents into a snapshot. Shared by the
 * file loader and the control plane, so a config means the same thing
 * whichever way it arrives. Every error of every document is returned.
 */
export function buildSnapshot(docs: readonly RawDocument[], opts: ValidateOptions = {}): Result<ConfigSnapshot> {
  const checked = checkDocuments(docs, opts);
  if (!checked.ok) return checked;
  const snap = snapshotOf(checked.value);
  return { ok: true, value: checked.warnings.length > 0 ? { ...snap, warnings: checked.warnings } : snap };
}

/**
 * buildSnapshot's checks without the snapshot: decodes every document (with
 * `decode`, decodeDocument by default: the control plane passes one that
 * reuses earlier decodes of the same document) and validates the set. Every
 * error of every document is returned.
 */
export function checkDocuments<D = RawDocument>(
  docs: readonly D[],
  opts: ValidateOptions = {},
  decode: (doc: D, index: number) => DecodeResult = decodeDocument as (doc: D) => DecodeResult,
): { ok: false; errors: ConfigError[] } | { ok: true; value: DecodedResource[]; warnings: ConfigError[] } {
  const errors: ConfigError[] = [];
  const decoded: DecodedResource[] = [];
  const unresolved: ResourceRef[] = [];
  docs.forEach((raw, i) => {
    const d = decode(raw, i);
    if (d.ok) {
      decoded.push(d.value);
    } else {
      errors.push(...d.errors);
      if (d.kind && d.name) unresolved.push({ kind: d.kind, name: d.name });
    }
  });
  const warnings: ConfigError[] = [];
  errors.push(...validateResources(decoded, opts, unresolved, warnings));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: decoded, warnings };
}

/** Builds the snapshot of resources already known to be valid and unique. */
export function snapshotOf(resources: readonly DecodedResource[]): ConfigSnapshot {
  const listeners = new Map<string, Listener>();
  const routeConfigs = new Map<string, RouteConfiguration>();
  const clusters = new Map<string, Cluster>();
  const loadAssignments = new Map<string, ClusterLoadAssignment>();
  const sorted = [...resources].sort(
    (a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  for (const r of sorted) {
    if (r.kind === 'Listener') listeners.set(r.name, r.message);
    else if (r.kind === 'RouteConfiguration') routeConfigs.set(r.name, r.message);
    else if (r.kind === 'Cluster') clusters.set(r.name, r.message);
    else loadAssignments.set(r.name, r.message);
  }
  const documents = sorted.map(normalise);
  return { version: versionOf(documents), listeners, routeConfigs, clusters, loadAssignments, documents };
}

/** The canonical document of a resource: proto3 JSON of the message (defaults omitted), name in metadata only. */
export function normalise(r: DecodedResource): ResourceDocument {
  const schema = KIND_SCHEMAS[r.kind];
  // Every kind has `name` as field 1; clearing it keeps it out of spec.
  const msg = clone(schema, r.message) as unknown as KindMessage;
  msg.name = '';
  const spec = toJson(schema, msg) as JsonObject;
  const metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } = { name: r.name };
  if (Object.keys(r.labels).length > 0) metadata.labels = sortedRecord(r.labels);
  if (Object.keys(r.annotations).length > 0) metadata.annotations = sortedRecord(r.annotations);
  return { apiVersion: API_VERSION, kind: r.kind, metadata, spec };
}

/** First 16 hex digits of the sha256 of the canonical JSON: equal content, equal version. */
export function versionOf(documents: readonly ResourceDocument[]): string {
  const text = canonicalJson(documents as unknown as JsonValue);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted at every level, so the text depends on content only. */
export function canonicalJson(v: JsonValue): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k]!)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function sortedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
