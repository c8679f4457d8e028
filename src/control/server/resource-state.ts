import { toRawDocuments, type RawDocument } from '../../config/documents.js';
import { decodeDocument, type DecodedResource } from '../../config/decode.js';
import { KINDS, isKind, type Kind } from '../../config/kinds.js';
import { buildSnapshot, canonicalJson, normalise } from '../../config/loader.js';
import type { ConfigError, ConfigSnapshot, JsonValue } from '../../config/snapshot.js';
import type { ValidateOptions } from '../../config/validate.js';
import { REDACTED, unredact } from '../../config/redact.js';
import type { Action, Selector, StoredEntry, StoreState } from '../store/store-state.js';
import { checkOverride, overrideWarnings, OVERRIDES_ANNOTATION, validationEntries, type GeneratedNames } from './cluster-overrides.js';
import { splitSelector } from './selector.js';

export type Failure = { ok: false; code: 'invalid' | 'conflict' | 'not_found'; errors: ConfigError[] };
/** `warnings`: validation warnings of the resulting set (the change is still made). */
export type Change = { ok: true; state: StoreState; changed: StoredEntry[]; unchanged: string[]; removed: string[]; warnings?: readonly ConfigError[] };

export const keyOf = (kind: string, name: string): string => `${kind}/${name}`;

/** Documents without selectors, as the snapshot builder reads them. */
export function plainDocs(entries: readonly StoredEntry[]): RawDocument[] {
  return entries.map((e, index) => {
    const { selector: _s, ...metadata } = e.doc.metadata;
    return { value: { ...e.doc, metadata }, source: { index } };
  });
}

/** Validates the whole set exactly as a sidecar would (buildSnapshot): one definition of "valid". */
export function validateSet(entries: readonly StoredEntry[], opts: ValidateOptions): ConfigError[] {
  return checkSet(entries, opts).errors;
}

/** Errors, or (valid) the warnings of the set. */
function checkSet(entries: readonly StoredEntry[], opts: ValidateOptions): { errors: ConfigError[]; warnings: readonly ConfigError[] } {
  const r = buildSnapshot(plainDocs(validationEntries(entries)), opts);
  return r.ok ? { errors: [], warnings: r.value.warnings ?? [] } : { errors: r.errors, warnings: [] };
}

export interface ApplyInput {
  readonly documents: readonly unknown[];
  readonly expectedVersions?: Readonly<Record<string, string>>;
  readonly who: string;
  readonly nowMs: number;
  readonly action?: Action;
  /** The generated resources now: they are not writable, and overrides name them. */
  readonly generated?: GeneratedNames;
}

/**
 * Creates or updates many documents atomically: every document is decoded,
 * the merged set (stored + new) must validate as a whole, and each listed
 * expected version must match. Nothing changes unless everything passes.
 */
export function applyDocuments(state: StoreState, input: ApplyInput, opts: ValidateOptions): Change | Failure {
  const errors: ConfigError[] = [];
  const incoming = new Map<string, { decoded: DecodedResource; selector?: Selector }>();
  const raws = toRawDocuments(input.documents);
  for (const raw0 of raws) {
    const raw = restoreRedacted(state, raw0);
    const label = `#${raw.source.index ?? 0}`;
    const split = splitSelector(raw.value, label);
    const d = decodeDocument({ value: split.doc, source: raw.source });
    const name = d.ok ? `${d.value.kind}/${d.value.name}` : d.kind && d.name ? `${d.kind}/${d.name}` : label;
    errors.push(...split.errors.map((e) => ({ ...e, document: name })));
    if (!d.ok) {
      errors.push(...d.errors);
      continue;
    }
    const key = keyOf(d.value.kind, d.value.name);
    if (incoming.has(key)) {
      errors.push({ document: key, path: 'metadata.name', message: `duplicate ${d.value.kind} "${d.value.name}" in one apply` });
      continue;
    }
    incoming.set(key, { decoded: d.value, selector: split.selector });
  }
  if (raws.length === 0) errors.push({ document: '<input>', path: '', message: 'no resource documents' });
  if (errors.length > 0) return { ok: false, code: 'invalid', errors };

  const current = new Map(state.resources.map((e) => [keyOf(e.doc.kind, e.doc.metadata.name), e]));
  for (const [key, want] of Object.entries(input.expectedVersions ?? {})) {
    const have = current.get(key)?.version ?? '';
    if (have !== want) {
      return { ok: false, code: 'conflict', errors: [{ document: key, path: 'metadata', message: `version conflict: expected "${want}", stored "${have}"` }] };
    }
  }
  const revision = state.revision + 1;
  const changed: StoredEntry[] = [];
  const unchanged: string[] = [];
  const merged = new Map(current);
  for (const [key, v] of incoming) {
    const norm = normalise(v.decoded);
    const generator = input.generated?.generatorOf(norm.kind, norm.metadata.name);
    const same = input.generated?.documentOf?.(norm.kind, norm.metadata.name);
    if (generator !== undefined && same && canonicalJson(same as unknown as JsonValue) === canonicalJson(norm as unknown as JsonValue)) {
      // `outrigger get -o yaml` output re-applied whole: its generated documents, unchanged, are no write.
      unchanged.push(key);
      continue;
    }
    if (generator !== undefined) {
      errors.push({
        document: key,
        path: 'metadata.name',
        message: `generated by discovery (${generator}) and not writable; to change a generated Cluster's settings apply a Cluster of another name with metadata.annotations["${OVERRIDES_ANNOTATION}"]: "${norm.metadata.name}"`,
      });
    }
    errors.push(...checkOverride(norm));
    const doc = (v.selector ? { ...norm, metadata: { ...norm.metadata, selector: v.selector } } : norm) as StoredEntry['doc'];
    const old = current.get(key);
    if (old && canonicalJson(old.doc as unknown as JsonValue) === canonicalJson(doc as unknown as JsonValue)) {
      unchanged.push(key);
      continue;
    }
    const entry = { doc, version: String(revision) };
    merged.set(key, entry);
    changed.push(entry);
  }
  if (errors.length > 0) return { ok: false, code: 'invalid', errors };
  const checked = checkSet(sorted([...merged.values()]), opts);
  if (checked.errors.length > 0) return { ok: false, code: 'invalid', errors: checked.errors };
  const allWarnings = [...checked.warnings, ...overrideWarnings(changed, input.generated)];
  const warnings = allWarnings.length > 0 ? { warnings: allWarnings } : {};
  if (changed.length === 0) return { ok: true, state, changed, unchanged, removed: [], ...warnings };
  const history = changed.map((e) => ({
    revision,
    kind: e.doc.kind,
    name: e.doc.metadata.name,
    action: input.action ?? 'APPLY',
    who: input.who,
    atMs: input.nowMs,
    doc: e.doc,
  }));
  return {
    ok: true,
    state: { revision, resources: sorted([...merged.values()]), history: [...state.history, ...history], changedAtMs: input.nowMs },
    changed,
    unchanged,
    removed: [],
    ...warnings,
  };
}

/** `get` output re-applied: REDACTED placeholders take the stored values (see redact.ts). */
function restoreRedacted(state: StoreState, raw: RawDocument): RawDocument {
  const v = raw.value as { kind?: unknown; metadata?: { name?: unknown }; spec?: JsonValue } | null;
  if (!v || typeof v !== 'object' || typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string' || v.spec === undefined) return raw;
  if (!JSON.stringify(v.spec).includes(REDACTED)) return raw;
  const stored = findEntry(state, v.kind, v.metadata.name);
  return { ...raw, value: { ...v, spec: unredact(v.spec, stored?.doc.spec as JsonValue | undefined) } };
}

export function deleteResource(
  state: StoreState,
  kind: string,
  name: string,
  expected: string,
  who: string,
  nowMs: number,
  opts: ValidateOptions,
  action: Action = 'DELETE',
): Change | Failure {
  const key = keyOf(kind, name);
  const old = state.resources.find((e) => keyOf(e.doc.kind, e.doc.metadata.name) === key);
  if (!old) return { ok: false, code: 'not_found', errors: [{ document: key, path: '', message: 'not found' }] };
  if (expected !== '' && expected !== old.version) {
    return { ok: false, code: 'conflict', errors: [{ document: key, path: 'metadata', message: `version conflict: expected "${expected}", stored "${old.version}"` }] };
  }
  const rest = state.resources.filter((e) => e !== old);
  const errors = validateSet(rest, opts);
  if (errors.length > 0) return { ok: false, code: 'invalid', errors: errors.map((e) => ({ ...e, message: `${e.message} (after deleting ${key})` })) };
  const revision = state.revision + 1;
  return {
    ok: true,
    state: {
      revision,
      resources: rest,
      history: [...state.history, { revision, kind: old.doc.kind, name, action, who, atMs: nowMs }],
      changedAtMs: nowMs,
    },
    changed: [],
    unchanged: [],
    removed: [key],
  };
}

/** Restores a resource to what it was at `toRevision` (re-applied as a new revision; a deletion is re-done). */
export function rollbackResource(
  state: StoreState,
  kind: string,
  name: string,
  toRevision: number,
  who: string,
  nowMs: number,
  opts: ValidateOptions,
  generated?: GeneratedNames,
): Change | Failure {
  const key = keyOf(kind, name);
  const h = state.history.find((e) => e.revision === toRevision && keyOf(e.kind, e.name) === key);
  if (!h) return { ok: false, code: 'not_found', errors: [{ document: key, path: '', message: `no revision ${toRevision}` }] };
  if (!h.doc) return deleteResource(state, kind, name, '', who, nowMs, opts, 'ROLLBACK');
  // The name may have become a generated one since that revision: a rollback is an apply and obeys the same rule.
  return applyDocuments(state, { documents: [h.doc], who, nowMs, action: 'ROLLBACK', ...(generated ? { generated } : {}) }, opts);
}

export function sorted(entries: StoredEntry[]): StoredEntry[] {
  return entries.sort(
    (a, b) =>
      KINDS.indexOf(a.doc.kind) - KINDS.indexOf(b.doc.kind) ||
      (a.doc.metadata.name < b.doc.metadata.name ? -1 : a.doc.metadata.name > b.doc.metadata.name ? 1 : 0),
  );
}

export function findEntry(state: StoreState, kind: string, name: string): StoredEntry | undefined {
  return state.resources.find((e) => e.doc.kind === kind && e.doc.metadata.name === name);
}

export function isKnownKind(kind: string): kind is Kind {
  return isKind(kind);
}

export type { ConfigSnapshot };
