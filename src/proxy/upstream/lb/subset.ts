import type { EndpointAddress } from '../endpoint.js';

/**
 * A route's endpoint subset (`endpointSelector.matchLabels`, Istio's
 * DestinationRule subsets): the endpoints of a cluster whose metadata labels
 * include every listed label. Compiled once per config version; `key` names
 * it in the cluster's cache of subset pickers (one per selector, built when a
 * request first asks and rebuilt on health changes, never per request).
 */
export interface EndpointSubset {
  /** Canonical form, labels sorted: `version=v2,zone=a`. */
  readonly key: string;
  readonly labels: readonly (readonly [string, string])[];
}

/** The subset of a selector's labels; undefined when it lists none (all endpoints). */
export function compileSubset(matchLabels: Readonly<Record<string, string>> | undefined): EndpointSubset | undefined {
  if (matchLabels === undefined) return undefined;
  const labels = Object.entries(matchLabels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (labels.length === 0) return undefined;
  return Object.freeze({ key: labels.map(([k, v]) => `${k}=${v}`).join(','), labels: Object.freeze(labels) });
}

export function inSubset(e: EndpointAddress, s: EndpointSubset): boolean {
  const l = e.labels;
  if (l === undefined) return false;
  for (const [k, v] of s.labels) if (l[k] !== v) return false;
  return true;
}
