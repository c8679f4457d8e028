import { resourceFromAttributes, defaultResource, detectResources, envDetector } from '@opentelemetry/resources';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Random } from '../core/random.js';
import { Propagation } from './trace-propagation.js';
import { SpanExport, type SpanSink } from './span-export.js';
import { Tracer } from './tracer.js';
import type { TracingSettings } from './trace-settings.js';

// What the flags and the environment say (no OpenTelemetry import): callers that only resolve import trace-settings.ts.
export { resolveTracing, type TracingFlags, type TracingSettings } from './trace-settings.js';

export interface TracerDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly registry: Registry;
  /** The pod the injector described (observability/workload.ts's WorkloadIdentity; structural, so this folder does not import its parent). */
  readonly workload?: { readonly workload: string; readonly namespace: string };
  /** service.name when there is no workload (the control plane: outrigger-control). */
  readonly serviceName?: string;
  /** Where spans go instead of the OTLP exporter (tests, benchmarks). */
  readonly sink?: SpanSink;
}

/**
 * The sidecar's tracer: resource `service.name` is the workload (the pod the
 * injector described) unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise.
 */
export function buildTracer(s: TracingSettings, d: TracerDeps): Tracer {
  const w = d.workload;
  const ours = resourceFromAttributes({
    'service.name': w !== undefined && w.workload !== 'unknown' ? w.workload : (d.serviceName ?? 'outrigger'),
    ...(w !== undefined && w.namespace !== 'unknown' ? { 'service.namespace': w.namespace } : {}),
  });
  const resource = defaultResource().merge(ours).merge(detectResources({ detectors: [envDetector] }));
  const sink = d.sink ?? new SpanExport(d.registry, s, undefined, d.clock);
  return new Tracer(d.clock, d.random, s.sampler, new Propagation(s.propagators), resource, sink);
}
