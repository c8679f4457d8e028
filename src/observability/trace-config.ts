import { resourceFromAttributes, defaultResource, detectResources, envDetector } from '@opentelemetry/resources';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Random } from '../core/random.js';
import { DEFAULT_PROPAGATORS, PROPAGATORS, Propagation, type PropagatorName } from './trace-propagation.js';
import { OTLP_PROTOCOLS, SpanExport, type OtlpProtocol, type SpanSink } from './span-export.js';
import { Tracer, type SamplerConfig } from './tracer.js';

/** What the sidecar's flags say about tracing (`outrigger sidecar --trace-*`); each may be absent. */
export interface TracingFlags {
  /** OTLP endpoint: the collector's base URL (http/protobuf: `/v1/traces` is appended unless a path is given), or host:port URL for gRPC. */
  readonly endpoint?: string;
  readonly protocol?: string;
  /** Ratio of new traces recorded, 0–1 (parent-based: a sampled flag that arrives is followed). */
  readonly sampling?: string;
  /** Comma-separated propagators (as OTEL_PROPAGATORS): tracecontext, baggage, b3, b3multi. */
  readonly propagators?: string;
}

/** Tracing resolved from the flags and the standard OTEL_* variables; undefined: tracing is off. */
export interface TracingSettings {
  readonly protocol: OtlpProtocol;
  readonly url: string | undefined;
  readonly sampler: SamplerConfig;
  readonly propagators: readonly PropagatorName[];
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduledDelayMs: number;
  readonly exportTimeoutMs: number;
}

type Env = Record<string, string | undefined>;

/** Batched export is flushed at least this often, so spans (like log lines) are out within a second. */
const DEFAULT_DELAY_MS = 1000;

/**
 * Tracing is on when an OTLP endpoint is known: `--trace-otlp-endpoint`, or
 * (as in every OpenTelemetry SDK) OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_EXPORTER_OTLP_ENDPOINT alone. Flags win over the environment. An
 * invalid value throws an Error naming the flag or variable.
 */
export function resolveTracing(f: TracingFlags, env: Env = process.env): TracingSettings | undefined {
  const envEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (f.endpoint === undefined && !envEndpoint) return undefined;
  if (env.OTEL_SDK_DISABLED === 'true' && f.endpoint === undefined) return undefined;
  const protocolSource = f.protocol !== undefined ? '--trace-otlp-protocol' : env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (f.protocol ?? (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf')) as OtlpProtocol;
  if (!OTLP_PROTOCOLS.includes(protocol)) throw new Error(`${protocolSource}: must be one of ${OTLP_PROTOCOLS.join(', ')}, got "${protocol}"`);
  return {
    protocol,
    url: f.endpoint === undefined ? undefined : exporterUrl(f.endpoint, protocol),
    sampler: samplerOf(f.sampling, env),
    propagators: propagatorsOf(f.propagators, env),
    maxQueueSize: positiveInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048),
    maxExportBatchSize: positiveInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512),
    scheduledDelayMs: positiveInt(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_DELAY_MS),
    exportTimeoutMs: positiveInt(env, 'OTEL_BSP_EXPORT_TIMEOUT', 10_000),
  };
}

function exporterUrl(endpoint: string, protocol: OtlpProtocol): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new Error(`--trace-otlp-endpoint: not a URL: "${endpoint}" (e.g. http://otel-collector:4318)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--trace-otlp-endpoint: http or https URL expected, got "${endpoint}"`);
  if (protocol === 'grpc') return endpoint;
  // As OTEL_EXPORTER_OTLP_ENDPOINT: a base URL gets the signal's path.
  return u.pathname === '/' || u.pathname === '' ? `${u.origin}/v1/traces` : endpoint;
}

/** `--trace-sampling`, else OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG; default parent-based, every new trace recorded. */
function samplerOf(flag: string | undefined, env: Env): SamplerConfig {
  if (flag !== undefined) return { parentBased: true, ratio: ratioOf(flag, '--trace-sampling') };
  const name = env.OTEL_TRACES_SAMPLER;
  const arg = env.OTEL_TRACES_SAMPLER_ARG;
  const ratio = (): number => (arg === undefined || arg === '' ? 1 : ratioOf(arg, 'OTEL_TRACES_SAMPLER_ARG'));
  switch (name) {
    case undefined:
    case '':
    case 'parentbased_always_on':
      return { parentBased: true, ratio: 1 };
    case 'parentbased_always_off':
      return { parentBased: true, ratio: 0 };
    case 'parentbased_traceidratio':
      return { parentBased: true, ratio: ratio() };
    case 'always_on':
      return { parentBased: false, ratio: 1 };
    case 'always_off':
      return { parentBased: false, ratio: 0 };
    case 'traceidratio':
      return { parentBased: false, ratio: ratio() };
    default:
      throw new Error(`OTEL_TRACES_SAMPLER: unsupported sampler "${name}" (always_on, always_off, traceidratio and their parentbased_ forms)`);
  }
}

function ratioOf(v: string, source: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new Error(`${source}: a ratio in [0, 1] expected, got "${v}"`);
  return n;
}

function propagatorsOf(flag: string | undefined, env: Env): readonly PropagatorName[] {
  const source = flag !== undefined ? '--trace-propagators' : 'OTEL_PROPAGATORS';
  const v = flag ?? env.OTEL_PROPAGATORS;
  if (v === undefined || v.trim() === '') return DEFAULT_PROPAGATORS;
  const names = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!PROPAGATORS.includes(n as PropagatorName)) throw new Error(`${source}: unknown propagator "${n}" (${PROPAGATORS.join(', ')})`);
  }
  return names as PropagatorName[];
}

function positiveInt(env: Env, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: a positive integer expected, got "${v}"`);
  return n;
}

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
