/** One sample of a Prometheus text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the samples of a metric family (`name` exactly, or `name_bucket`… when asked for) from /metrics text. */
export function samplesOf(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const brace = line.indexOf('{');
    const metric = brace < 0 ? line.slice(0, line.indexOf(' ')) : line.slice(0, brace);
    if (metric !== name) continue;
    const labels: Record<string, string> = {};
    let rest = line;
    if (brace >= 0) {
      const end = line.lastIndexOf('}');
      for (const m of line.slice(brace + 1, end).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
      rest = line.slice(end + 1);
    } else rest = line.slice(metric.length);
    out.push({ name: metric, labels, value: Number(rest.trim().split(' ')[0]) });
  }
  return out;
}

/** The value of the one sample of `name` whose labels include `labels` (undefined: none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samplesOf(text, name).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}
