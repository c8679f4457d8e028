/**
 * Where a sidecar or an endpoint runs (the `Locality` of the config:
 * region, zone, sub-zone). Zone-aware routing compares localities whole, as
 * Envoy does: two localities are the same only when all three parts are.
 */
export interface LocalityName {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
  /** `region/zone/subZone`: the identity compared and shown. */
  readonly key: string;
}

export function localityName(region: string, zone: string, subZone: string): LocalityName {
  return { region, zone, subZone, key: `${region}/${zone}/${subZone}` };
}

/**
 * Parses the `--locality` flag: `region`, `region/zone` or
 * `region/zone/subZone`. Throws on more parts or an empty region.
 */
export function parseLocality(text: string): LocalityName {
  const parts = text.split('/');
  if (parts.length > 3 || parts[0] === '') throw new Error(`expected region[/zone[/subZone]], got "${text}"`);
  return localityName(parts[0]!, parts[1] ?? '', parts[2] ?? '');
}

/**
 * The locality Kubernetes puts on nodes and Istio on pods, read from a node's
 * labels (the downward API file of --node-labels-file):
 * `topology.kubernetes.io/region`, `topology.kubernetes.io/zone` and
 * `topology.istio.io/subzone`, or Istio's `istio-locality` label
 * (`region.zone.subzone`, dots because labels cannot hold slashes).
 */
export function localityFromLabels(labels: Readonly<Record<string, string>>): LocalityName | undefined {
  const istio = labels['istio-locality'];
  if (istio) {
    const [r = '', z = '', s = ''] = istio.split('.');
    if (r !== '') return localityName(r, z, s);
  }
  const region = labels['topology.kubernetes.io/region'] ?? '';
  const zone = labels['topology.kubernetes.io/zone'] ?? '';
  if (region === '' && zone === '') return undefined;
  return localityName(region, zone, labels['topology.istio.io/subzone'] ?? '');
}
