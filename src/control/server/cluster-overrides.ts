import type { ConfigError, JsonObject, ResourceDocument } from '../../config/snapshot.js';
import type { StoredEntry } from '../store/store-state.js';

/**
 * Operator overrides of generated Clusters (docs/discovery.md#overrides).
 *
 * Generated resources (discovery's, e.g. `outbound|8080||cart.shop.svc.cluster.local`)
 * are recomputed from their source at every change, so nobody writes them.
 * An operator changes how one is used with a Cluster of their own whose
 * `metadata.annotations["outrigger.io/overrides"]` names it: every spec field
 * the override sets replaces the generated cluster's field of that name
 * (whole top-level fields, as a `kubectl apply` of that field would), except
 * the fields that say where endpoints come from, which stay discovery's.
 * The override itself is never served as a cluster of its own name.
 */
export const OVERRIDES_ANNOTATION = 'outrigger.io/overrides';

/** Where a cluster's endpoints come from: discovery owns them, an override may not set them. */
export const DISCOVERY_OWNED_FIELDS: readonly string[] = ['type', 'endpoints', 'originalDst', 'dns', 'kubernetes', 'consul', 'nats'];

/** What the store checks an apply against: the generated resources of now. */
export interface GeneratedNames {
  /** The generator ("kubernetes", …) of a generated resource of this kind and name, or undefined. */
  generatorOf(kind: string, name: string): string | undefined;
  /** The generated document itself (a `get` dump re-applied unchanged is not a write). */
  documentOf?(kind: string, name: string): ResourceDocument | undefined;
}

/** The generated cluster an override names, or undefined when `doc` is not an override. */
export function overrideTarget(doc: Pick<ResourceDocument, 'metadata'>): string | undefined {
  return doc.metadata.annotations?.[OVERRIDES_ANNOTATION];
}

/** Errors of one override document as written (the fields it may not set, the kind it must be). */
export function checkOverride(doc: ResourceDocument): ConfigError[] {
  const target = overrideTarget(doc);
  if (target === undefined) return [];
  const document = `${doc.kind}/${doc.metadata.name}`;
  const at = `metadata.annotations["${OVERRIDES_ANNOTATION}"]`;
  if (doc.kind !== 'Cluster') return [{ document, path: at, message: `only a Cluster can override a generated resource, not a ${doc.kind}` }];
  if (target === '') return [{ document, path: at, message: 'must name the generated Cluster to override' }];
  if (target === doc.metadata.name) return [{ document, path: at, message: 'an override must have a name of its own (the generated Cluster is not writable)' }];
  return DISCOVERY_OWNED_FIELDS.filter((f) => doc.spec[f] !== undefined).map((f) => ({
    document,
    path: `spec.${f}`,
    message: `an override cannot set ${f}: the endpoints of "${target}" and how they are discovered stay the generator's`,
  }));
}

/** Warnings of an override set: naming a cluster that is not generated (now) does nothing until one is. */
export function overrideWarnings(entries: readonly StoredEntry[], generated: GeneratedNames | undefined): ConfigError[] {
  const out: ConfigError[] = [];
  for (const e of entries) {
    const target = overrideTarget(e.doc);
    if (target === undefined || e.doc.kind !== 'Cluster' || generated?.generatorOf('Cluster', target) !== undefined) continue;
    out.push({
      document: `Cluster/${e.doc.metadata.name}`,
      path: `metadata.annotations["${OVERRIDES_ANNOTATION}"]`,
      message: `"${target}" is not a generated Cluster (now): the override is kept and applies when it is generated`,
    });
  }
  return out;
}

/**
 * The stored set as validation reads it: an override is checked as what it
 * becomes, an EDS cluster with discovery's endpoints (an empty
 * ClusterLoadAssignment of its name stands in for them).
 */
export function validationEntries(entries: readonly StoredEntry[]): StoredEntry[] {
  const out: StoredEntry[] = [];
  for (const e of entries) {
    if (e.doc.kind !== 'Cluster' || overrideTarget(e.doc) === undefined) {
      out.push(e);
      continue;
    }
    out.push({ ...e, doc: { ...e.doc, spec: { ...e.doc.spec, type: 'DISCOVERY_TYPE_EDS' } } });
    const name = e.doc.metadata.name;
    if (!entries.some((x) => x.doc.kind === 'ClusterLoadAssignment' && x.doc.metadata.name === name)) {
      out.push({ doc: { apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name }, spec: { endpoints: [] } }, version: '' });
    }
  }
  return out;
}

/**
 * Applies a node's overrides to the generated clusters joining its view:
 * the generated spec with the override's top-level fields (discovery-owned
 * ones excluded) in their place. Several overrides of one cluster apply in
 * name order (the last one's field wins).
 */
export function applyOverrides<T extends ResourceDocument>(generated: readonly T[], overrides: readonly StoredEntry[]): T[] {
  if (overrides.length === 0) return [...generated];
  const byTarget = new Map<string, StoredEntry[]>();
  for (const o of overrides) {
    const t = overrideTarget(o.doc)!;
    byTarget.set(t, [...(byTarget.get(t) ?? []), o]);
  }
  return generated.map((g) => {
    const os = g.kind === 'Cluster' ? byTarget.get(g.metadata.name) : undefined;
    if (!os) return g;
    const spec: JsonObject = { ...g.spec };
    for (const o of [...os].sort((a, b) => (a.doc.metadata.name < b.doc.metadata.name ? -1 : 1))) {
      for (const [k, v] of Object.entries(o.doc.spec)) if (!DISCOVERY_OWNED_FIELDS.includes(k)) spec[k] = v;
    }
    return { ...g, spec };
  });
}

/** Whether a stored entry is an override (served only through the cluster it names). */
export function isOverride(e: StoredEntry): boolean {
  return e.doc.kind === 'Cluster' && overrideTarget(e.doc) !== undefined;
}
