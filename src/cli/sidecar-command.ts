import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDurationFlag } from '../core/duration.js';
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Registry } from 'prom-client';
import { startSidecar, type SidecarOptions } from '../../sidecar/main.js';
import { systemClock } from '../core/clock.js';
import { readNodeLabels } from '../control/client/node-labels.js';
import { parseLocality } from '../core/locality.js';
import { parseFlags, UsageError } from './flags.js';
import { createAuditLogger, createLogger } from '../observability/logger.js';
import { METRICS_COMPAT, type MetricsCompat } from '../observability/exchange-telemetry.js';
import { workloadIdentity } from '../observability/workload.js';
import { resolveTracing } from '../observability/trace-settings.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger sidecar [--config FILE|DIR] [--control-plane HOST:PORT --node-id ID [--node-cluster C]
       [--node-labels-file FILE] [--control-plane-ca FILE]] [--admin-port 15000] [--admin-host 127.0.0.1] [--drain-timeout 5s] [--state-dir DIR]
       [--plugin-dir DIR]
       [--audit-log stdout|stderr|FILE] [--max-heap-fraction 0.9] [--bootstrap-token-file F | --sa-token-file F]
       [--locality REGION[/ZONE[/SUBZONE]]]
       [--kubeconfig F] [--consul-addr H:P] [--nats-servers URL,…] [--concurrency N]
       [--trace-otlp-endpoint URL [--trace-otlp-protocol http/protobuf|grpc] [--trace-sampling R] [--trace-propagators P,…]]

Runs the data plane with the listeners, routes and clusters of the config
(resource documents, see docs/config.md). The config is watched and hot
reloaded; an invalid change is rejected and the running config keeps serving.
SIGTERM drains: /ready turns 503, listeners stop accepting, in-flight requests
finish up to --drain-timeout, then the process exits 0.

flags:
  --config FILE|DIR     resource documents (YAML or JSON); with --control-plane, bootstrap resources
  --control-plane H:P   subscribe to a control plane (docs/control-plane.md); h2c, or
                        https://H:P for TLS verified with the system CAs
  --control-plane-ca F  TLS to the control plane, its certificate verified with this CA (a PEM file, or
                        env:NAME for PEM in an environment variable, as the injector passes it)
  --node-id ID          this sidecar's node id (required with --control-plane)
  --node-cluster C      the service this sidecar belongs to (for selectors)
  --node-labels-file F  labels for selectors: key="value" lines (downward API) or a YAML map
  --locality R/Z/S      where this sidecar runs (region[/zone[/subZone]]): zone-aware routing keeps
                        requests in this locality (docs/resilience.md); sent to the control plane as
                        Node.locality. Default: the node labels' topology.kubernetes.io/region, /zone
                        and topology.istio.io/subzone (or istio-locality), else unknown
  --bootstrap-token-file F  workload identity outside Kubernetes: get a workload certificate (mesh mTLS)
                        from the control plane with this token (docs/security.md)
  --sa-token-file F     workload identity in Kubernetes: the projected service-account token
                        (audience outrigger) presented for the workload certificate
  --cert-ttl D          lifetime asked for the workload certificate (default: the control plane's)
  --admin-port N        admin API port (default 15000; 0 picks a free port)
  --admin-host H        admin API bind address (default 127.0.0.1). The bound address is advertised to
                        the control plane for \`outrigger stat/tap/top --control-plane\`; a wildcard bind
                        (0.0.0.0, ::) advertises $POD_IP
  --concurrency N       worker processes sharing the listening sockets (default: $OUTRIGGER_CONCURRENCY, else
                        the CPUs this process may use); 1 runs everything in this one process. The primary
                        holds the config, the control-plane stream and the admin API (docs/sidecar.md#concurrency)
  --drain-timeout D     how long in-flight requests may take on shutdown (default 5s)
  --state-dir DIR       where the last good config is persisted
  --plugin-dir DIR      where ./ plugin module paths of control-plane config are resolved (default: the working
                        directory; those of a --config file are relative to that file; docs/plugins.md)
  --max-heap-fraction F above this fraction of the V8 heap limit, refuse new connections and requests
                        (503 / RESOURCE_EXHAUSTED, flag LO) until the heap is 0.05 below it (default 0.9)
  --status-port N       status port on all addresses (:: dual stack, else 0.0.0.0): /ready and the app probes
                        the injector rewrote (read from OUTRIGGER_APP_PROBES);
                        off unless given (the injector sets 15021)
  --audit-log T         security events of the filters (docs/filters.md#audit-log) as JSON lines
                        on stdout, stderr or appended to a file; off unless given (still counted in metrics)
  --metrics-compat M     request metrics: istio (Istio's standard names), outrigger (ours), both (default);
                        docs/observability.md
  --trace-otlp-endpoint URL  OpenTelemetry tracing: export spans over OTLP to this collector (http/protobuf:
                        base URL, /v1/traces appended; grpc: http://H:P). Also on when OTEL_EXPORTER_OTLP_ENDPOINT
                        or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (docs/observability.md#tracing)
  --trace-otlp-protocol P  http/protobuf (default; else OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL) or grpc
  --trace-sampling R    ratio 0-1 of new traces recorded, parent-based (default 1; else OTEL_TRACES_SAMPLER[_ARG])
  --trace-propagators P  tracecontext,baggage (default; else OTEL_PROPAGATORS), b3 (single header), b3multi
  --kubeconfig F         DISCOVERY_TYPE_KUBERNETES clusters: the API server (else KUBECONFIG, ~/.kube/config,
                        in-cluster service account); docs/discovery.md
  --consul-addr H:P     DISCOVERY_TYPE_CONSUL clusters: the Consul agent (else CONSUL_HTTP_ADDR; token: CONSUL_HTTP_TOKEN)
  --nats-servers URLS   DISCOVERY_TYPE_NATS clusters: comma-separated NATS servers (else NATS_URL)
  --allow-ephemeral-ports  accept listener port 0 (tests)`;

export const sidecarCommand: Command = {
  summary: 'run the data-plane proxy',
  async run(args) {
    const values = parseFlags(
      args,
      {
        config: { type: 'string', short: 'c' },
        'admin-port': { type: 'string', default: '15000' },
        'admin-host': { type: 'string', default: '127.0.0.1' },
        'drain-timeout': { type: 'string', default: '5s' },
        concurrency: { type: 'string' },
        'max-heap-fraction': { type: 'string', default: '0.9' },
        'state-dir': { type: 'string' },
        'plugin-dir': { type: 'string' },
        'control-plane': { type: 'string' },
        'node-id': { type: 'string' },
        'node-cluster': { type: 'string' },
        'node-labels-file': { type: 'string' },
        locality: { type: 'string' },
        'control-plane-ca': { type: 'string' },
        'status-port': { type: 'string' },
        'audit-log': { type: 'string' },
        kubeconfig: { type: 'string' },
        'consul-addr': { type: 'string' },
        'nats-servers': { type: 'string' },
        'metrics-compat': { type: 'string', default: 'both' },
        'trace-otlp-endpoint': { type: 'string' },
        'trace-otlp-protocol': { type: 'string' },
        'trace-sampling': { type: 'string' },
        'trace-propagators': { type: 'string' },
        'allow-ephemeral-ports': { type: 'boolean', default: false },
        'bootstrap-token-file': { type: 'string' },
        'sa-token-file': { type: 'string' },
        'cert-ttl': { type: 'string' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values.config && !values['control-plane']) {
      throw new UsageError('--config or --control-plane is required', USAGE);
    }
    if (values['control-plane-ca'] && !values['control-plane']) {
      throw new UsageError('--control-plane-ca needs --control-plane', USAGE);
    }
    if (values['control-plane'] && !values['node-id']) {
      throw new UsageError('--node-id is required with --control-plane', USAGE);
    }
    const tokenFile = values['bootstrap-token-file'] ?? values['sa-token-file'];
    if (values['bootstrap-token-file'] && values['sa-token-file']) throw new UsageError('give --bootstrap-token-file or --sa-token-file, not both', USAGE);
    if (tokenFile && !values['control-plane']) throw new UsageError('workload identity (--bootstrap-token-file, --sa-token-file) needs --control-plane', USAGE);
    if (values['cert-ttl'] && !tokenFile) throw new UsageError('--cert-ttl needs --bootstrap-token-file or --sa-token-file', USAGE);
    const compat = values['metrics-compat'] as MetricsCompat;
    if (!METRICS_COMPAT.includes(compat)) throw new UsageError(`--metrics-compat must be one of ${METRICS_COMPAT.join(', ')}`, USAGE);
    let tracing;
    try {
      tracing = resolveTracing({
        endpoint: values['trace-otlp-endpoint'],
        protocol: values['trace-otlp-protocol'],
        sampling: values['trace-sampling'],
        propagators: values['trace-propagators'],
      });
    } catch (err) {
      throw new UsageError((err as Error).message, USAGE);
    }
    if (!tracing && (values['trace-otlp-protocol'] || values['trace-sampling'] || values['trace-propagators'])) {
      throw new UsageError('--trace-otlp-protocol, --trace-sampling and --trace-propagators need --trace-otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)', USAGE);
    }
    const maxHeapFraction = Number(values['max-heap-fraction']);
    if (!(maxHeapFraction > 0.05 && maxHeapFraction <= 1)) {
      throw new UsageError(`--max-heap-fraction: a number in (0.05, 1], got "${values['max-heap-fraction']}"`, USAGE);
    }
    const concurrency = parseConcurrency(values.concurrency, process.env.OUTRIGGER_CONCURRENCY);
    let locality;
    if (values.locality !== undefined) {
      try {
        locality = parseLocality(values.locality);
      } catch (err) {
        throw new UsageError(`--locality: ${(err as Error).message}`, USAGE);
      }
    }
    // An env: bundle that is missing is a usage error (exit 2), not a silent fallback to h2c.
    const controlPlaneCa = values['control-plane-ca']?.startsWith('env:') ? readControlPlaneCa(values['control-plane-ca']) : undefined;
    let sidecar;
    try {
      const nodeLabels = values['node-labels-file'] ? await readNodeLabels(values['node-labels-file']) : undefined;
      const options: SidecarOptions = {
        configPath: values.config,
        adminPort: Number(values['admin-port']),
        adminHost: values['admin-host'],
        drainTimeoutMs: parseDurationFlag(values['drain-timeout']!),
        overload: { maxHeapFraction },
        stateDir: values['state-dir'],
        ...(values['plugin-dir'] !== undefined ? { pluginDir: resolve(values['plugin-dir']) } : {}),
        guardPluginFaults: true,
        discovery: { kubeconfig: values.kubeconfig, consulAddr: values['consul-addr'], natsServers: values['nats-servers'] },
        locality,
        controlPlane: values['control-plane']
          ? {
              address: values['control-plane'],
              tls: values['control-plane-ca'] ? { ca: controlPlaneCa ?? readControlPlaneCa(values['control-plane-ca']) } : undefined,
              nodeId: values['node-id']!,
              nodeCluster: values['node-cluster'],
              nodeLabels,
              identity: tokenFile ? { tokenFile, requestedTtlMs: values['cert-ttl'] ? parseDurationFlag(values['cert-ttl']) : undefined } : undefined,
            }
          : undefined,
        allowEphemeralPorts: values['allow-ephemeral-ports'],
        statusPort: values['status-port'] === undefined ? undefined : Number(values['status-port']),
        appProbes: process.env.OUTRIGGER_APP_PROBES ? JSON.parse(process.env.OUTRIGGER_APP_PROBES) : undefined,
        auditLog: values['audit-log'] ? createAuditLogger(values['audit-log']) : undefined,
        // Istio's source_*/destination_* labels: the pod the injector described (POD_NAME, POD_NAMESPACE, its labels).
        telemetry: { compat, workload: workloadIdentity(process.env, nodeLabels), tracing },
      };
      if (concurrency > 1 && cluster.isWorker) {
        // A worker of `--concurrency N`: the data path only, its config from the primary.
        await (await import('../../sidecar/workers/worker.js')).runWorker(options);
        process.exit(0);
      }
      if (concurrency > 1) {
        const { WorkerFleet } = await import('../../sidecar/workers/fleet.js');
        const registry = new Registry();
        const fleet = new WorkerFleet({ count: concurrency, clock: systemClock(), logger: createLogger(), registry, drainTimeoutMs: options.drainTimeoutMs, liveWindowMs: options.telemetry?.live?.windowMs });
        fleet.start();
        Object.assign(options, { registry, workers: fleet });
      }
      sidecar = await startSidecar(options);
    } catch (err) {
      process.stderr.write(`outrigger sidecar: ${(err as Error).message}\n`);
      return 1;
    }
    // Signals are handled before the ready line goes out: whoever reads it may send SIGTERM at once, and
    // the default action would end the process without a drain.
    const onSignal = (): void => void sidecar.shutdown();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const listeners = Object.fromEntries(sidecar.addresses());
    // One machine-readable line so scripts and tests can find the ports.
    process.stdout.write(JSON.stringify({ msg: 'sidecar ready', adminPort: sidecar.adminPort, statusPort: sidecar.statusPort, listeners, concurrency }) + '\n');
    await sidecar.closed;
    return 0;
  },
};

/**
 * `--concurrency`, else `OUTRIGGER_CONCURRENCY`, else the CPUs this process
 * may use (os.availableParallelism: the affinity mask, as Envoy's default;
 * a container's CPU quota is not seen: set the flag in a pod).
 */
export function parseConcurrency(flag: string | undefined, env: string | undefined): number {
  const text = flag ?? (env === undefined || env === '' ? undefined : env);
  if (text === undefined) return availableParallelism();
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    throw new UsageError(`${flag !== undefined ? '--concurrency' : 'OUTRIGGER_CONCURRENCY'}: a whole number from 1 to 1024, got "${text}"`, USAGE);
  }
  return n;
}

/** `--control-plane-ca`: a PEM file, or `env:NAME` (the injector inlines the bundle in the pod spec). */
export function readControlPlaneCa(arg: string): string {
  if (!arg.startsWith('env:')) return readFileSync(arg, 'utf8');
  const name = arg.slice(4);
  const pem = process.env[name];
  if (!pem || !pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--control-plane-ca ${arg}: environment variable ${name} holds no PEM certificate`, USAGE);
  return pem;
}
