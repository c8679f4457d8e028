import { AggregatorRegistry, type Registry } from 'prom-client';

/** One registry's metrics as `getMetricsAsJSON()` gives them (what workers send the primary). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/*
 * How the primary of `--concurrency N` turns its workers' answers into one
 * sidecar's (docs/sidecar.md#concurrency): metrics through prom-client's
 * cluster aggregation, `/clusters` endpoint by endpoint.
 */

/**
 * Gauges that are fractions of one process: the sum over processes means
 * nothing, the largest (the busiest or fullest worker) does.
 */
const WORST_OF = new Set(['outrigger_nodejs_eventloop_utilization', 'outrigger_heap_used_fraction']);

/**
 * The workers' registries (as `getMetricsAsJSON()`) and the primary's, as one
 * Prometheus text: prom-client's AggregatorRegistry sums counters, histograms
 * and gauges by label set (per metric `aggregator`: a few default metrics
 * are averaged or omitted), so a request counted by either worker is counted
 * once in the sum.
 */
export async function aggregateMetrics(parts: readonly MetricsJson[]): Promise<string> {
  const marked = parts.map((p) => p.map((m) => (WORST_OF.has(m.name) ? { ...m, aggregator: 'max' as const } : m)));
  return AggregatorRegistry.aggregate(marked).metrics();
}

interface EndpointView {
  address: string;
  health?: string;
  activeRequests?: number;
  totalRequests?: number;
  successRate?: number | null;
  ewmaLatencyMs?: number | null;
  ejections?: number;
  state?: string;
  [k: string]: unknown;
}

interface ClusterView {
  activeRequests?: number;
  pendingRequests?: number;
  activeRetries?: number;
  openCircuitBreakers?: string[];
  endpoints?: EndpointView[];
  [k: string]: unknown;
}

export interface WorkerAnswer<T> {
  /** The worker's slot (0-based). */
  readonly worker: number;
  readonly pid: number;
  readonly body: T;
}

/**
 * `/clusters` of all workers: static facts from the first; load (active,
 * pending, retries, totals, ejections) summed; success rate over the summed
 * totals; EWMA latency averaged. Health checks, outlier detection and
 * connection pools run in every worker, so each endpoint also lists
 * `workers`: what each one sees; `health` and `state` are the common value,
 * or `mixed` when workers disagree.
 */
export function mergeClusters(answers: readonly WorkerAnswer<{ version?: string; clusters: Record<string, ClusterView> }>[]): unknown {
  const first = answers[0];
  if (!first) return { version: undefined, clusters: {} };
  const out: Record<string, unknown> = {};
  for (const [name, c0] of Object.entries(first.body.clusters)) {
    const views = answers.map((a) => ({ a, c: a.body.clusters[name] })).filter((v): v is { a: WorkerAnswer<never>; c: ClusterView } => v.c !== undefined);
    const sum = (f: (c: ClusterView) => number | undefined): number => views.reduce((n, v) => n + (f(v.c) ?? 0), 0);
    const open = new Set(views.flatMap((v) => v.c.openCircuitBreakers ?? []));
    const endpoints = (c0.endpoints ?? []).map((e0) => {
      const per = views.map((v) => ({ worker: v.a.worker, pid: v.a.pid, e: v.c.endpoints?.find((e) => e.address === e0.address) })).filter((p) => p.e !== undefined) as { worker: number; pid: number; e: EndpointView }[];
      const total = per.reduce((n, p) => n + (p.e.totalRequests ?? 0), 0);
      const ok = per.reduce((n, p) => n + (p.e.successRate != null ? p.e.successRate * (p.e.totalRequests ?? 0) : 0), 0);
      const ewmas = per.map((p) => p.e.ewmaLatencyMs).filter((v): v is number => typeof v === 'number');
      return {
        ...e0,
        health: common(per.map((p) => p.e.health)),
        state: common(per.map((p) => p.e.state)),
        activeRequests: per.reduce((n, p) => n + (p.e.activeRequests ?? 0), 0),
        totalRequests: total,
        successRate: total > 0 ? ok / total : null,
        ewmaLatencyMs: ewmas.length ? Math.round((ewmas.reduce((a, b) => a + b, 0) / ewmas.length) * 1000) / 1000 : null,
        ejections: per.reduce((n, p) => n + (p.e.ejections ?? 0), 0),
        workers: per.map((p) => ({ worker: p.worker, pid: p.pid, health: p.e.health, state: p.e.state, activeRequests: p.e.activeRequests, totalRequests: p.e.totalRequests, ejections: p.e.ejections })),
      };
    });
    out[name] = {
      ...c0,
      activeRequests: sum((c) => c.activeRequests),
      pendingRequests: sum((c) => c.pendingRequests),
      activeRetries: sum((c) => c.activeRetries),
      openCircuitBreakers: [...open],
      endpoints,
    };
  }
  return { version: first.body.version, workers: answers.length, clusters: out };
}

function common(values: readonly (string | undefined)[]): string | undefined {
  const s = new Set(values);
  return s.size <= 1 ? values[0] : 'mixed';
}
