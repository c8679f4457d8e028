import type { ConfigError, JsonObject } from '../../config/snapshot.js';
import type { Selector } from '../store/store-state.js';

/*
 * Which sidecars a resource reaches: every field given in its stored
 * `metadata.selector` (the Selector of store-state.ts) must match the node
 * (AND). A resource without a selector reaches all.
 */

export interface NodeIdentity {
  readonly id: string;
  readonly cluster: string;
  readonly labels: Readonly<Record<string, string>>;
}

const KEYS = ['nodeId', 'nodeCluster', 'labels'];

/** Splits `metadata.selector` off a raw document; reports shape errors with their path. */
export function splitSelector(raw: unknown, label: string): { doc: unknown; selector?: Selector; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { doc: raw, errors };
  const obj = raw as JsonObject;
  const meta = obj.metadata;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta) || !('selector' in meta)) return { doc: raw, errors };
  const { selector: sel, ...restMeta } = meta;
  const doc = { ...obj, metadata: restMeta };
  if (sel === null || sel === undefined) return { doc, errors };
  if (typeof sel !== 'object' || Array.isArray(sel)) {
    errors.push({ document: label, path: 'metadata.selector', message: 'expected object' });
    return { doc, errors };
  }
  const out: { nodeId?: string; nodeCluster?: string; labels?: Record<string, string> } = {};
  for (const [k, v] of Object.entries(sel)) {
    if (!KEYS.includes(k)) {
      errors.push({ document: label, path: `metadata.selector.${k}`, message: `unknown field; known fields: ${KEYS.join(', ')}` });
    } else if (k === 'labels') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        errors.push({ document: label, path: 'metadata.selector.labels', message: 'expected object of strings' });
        continue;
      }
      out.labels = {};
      for (const [lk, lv] of Object.entries(v)) {
        if (typeof lv === 'string') out.labels[lk] = lv;
        else errors.push({ document: label, path: `metadata.selector.labels.${lk}`, message: 'expected string' });
      }
    } else if (typeof v !== 'string' || v === '') {
      errors.push({ document: label, path: `metadata.selector.${k}`, message: 'expected a non-empty string' });
    } else if (k === 'nodeId') out.nodeId = v;
    else out.nodeCluster = v;
  }
  return { doc, selector: out, errors };
}

export function selects(sel: Selector | undefined, node: NodeIdentity): boolean {
  if (!sel) return true;
  if (sel.nodeId !== undefined && !globMatch(sel.nodeId, node.id)) return false;
  if (sel.nodeCluster !== undefined && sel.nodeCluster !== node.cluster) return false;
  for (const [k, v] of Object.entries(sel.labels ?? {})) if (node.labels[k] !== v) return false;
  return true;
}

export function globMatch(glob: string, s: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(s);
}
