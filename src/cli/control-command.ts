import { readFileSync } from 'node:fs';
import { resolveTracing } from '../observability/trace-settings.js';
import type { Tracer } from '../observability/tracer.js';
import { systemRandom } from '../core/random.js';
import { systemClock, type Clock } from '../core/clock.js';
import { parseDurationFlag } from '../core/duration.js';
import { createLogger } from '../observability/logger.js';
import { startControlServer } from '../control/server/control-server.js';
import { openStore } from '../control/store/open-store.js';
import { parseFlags, UsageError } from './flags.js';
import { Registry } from 'prom-client';
import type { Command } from './command.js';
import type { MeshScope } from '../discovery/mesh/kube-mesh.js';
import { trustDomainError } from '../core/spiffe.js';
import { openCa } from '../control/server/ca/open-ca.js';
import { anyOf, TokenReviewAuthenticator, WorkloadTokenFile, type TokenReviewApi, type WorkloadAuthenticator } from '../control/server/ca/workload-auth.js';

/** The TokenReview API through @kubernetes/client-node (loaded only with --token-review). */
async function tokenReviewApi(): Promise<TokenReviewApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  return kc.makeApiClient(k8s.AuthenticationV1Api) as unknown as TokenReviewApi;
}

const USAGE = `usage: outrigger control --store file:DIR|redis://HOST:PORT [--port 15010] [--metrics-port 15014]
       [--token-file FILE] [--tls-cert F --tls-key F [--client-ca F]] [--no-auth] [--replica-id ID] [--status-ttl 15s]
       [--trust-domain cluster.local] [--ca-cert F --ca-key F [--ca-bundle F]] [--cert-ttl 24h]
       [--workload-token-file F] [--token-review] [--allow-unauthenticated-sidecars]
       [--discover kubernetes [--kubeconfig F] [--namespaces a,b | --namespace-selector k=v] [--outbound-policy P] [--mesh-mtls]]

Runs the control plane: stores resource documents (validated exactly as the
sidecar validates them), serves the operator API (apply/get/delete/validate/
history/rollback/status) and streams config to sidecars (xDS-style, SotW and
delta). See docs/control-plane.md.

flags:
  --store SPEC          file:DIR (one replica) or redis://HOST:PORT (replicas share state; needs AOF)
  --port N              control API, gRPC/gRPC-Web/Connect on h2c or TLS (default 15010)
  --host H              bind address (default 0.0.0.0)
  --metrics-port N      /metrics (default 15014)
  --token-file FILE     bearer token operators must send
  --tls-cert F, --tls-key F   serve TLS
  --client-ca F         accept operator client certificates signed by this CA (mTLS)
  --no-auth             accept unauthenticated operator calls (local development only)
  --debounce D          a change within D of the last push waits for D of quiet (a burst); an
                        idle change is pushed at once (default 0.1s)
  --max-delay D         longest a push waits for changes to settle (default 10s)
  --replica-id ID       this replica's name in status (default HOSTNAME-PID-RANDOM)
  --status-ttl D        with redis: how long a killed replica's sidecars stay in status
                        (its entry is rewritten every TTL/3 and removed on shutdown; default 15s)
  --trace-otlp-endpoint URL  OpenTelemetry: trace each operator change and the pushes it causes (as the
                        sidecar's flag; also OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT); --trace-otlp-protocol,
                        --trace-sampling as the sidecar's (docs/observability.md#tracing)
  --discover kubernetes generate the mesh's config from Kubernetes Services and EndpointSlices
                        (docs/discovery.md#the-mesh): a Cluster outbound|PORT||SVC.NS.svc.cluster.local
                        per Service port with its endpoints, and the injected sidecars' RouteConfiguration outbound
  --kubeconfig F        the API server (else KUBECONFIG, ~/.kube/config, in-cluster service account)
  --namespaces a,b      only these namespaces (default: all)
  --namespace-selector k=v[,k=v]  only namespaces with these labels
  --outbound-policy P   ALLOW_ANY (default: unknown hosts pass through) or REGISTRY_ONLY, as the injector's
  --mesh-mtls           generated clusters originate mesh mTLS, expecting the SPIFFE IDs of the service accounts
                        of the Service's endpoint pods, when every endpoint is an injected pod (else plaintext)
  --allow-ephemeral-ports  accept listener port 0 (tests)

workload identity (the control plane is the mesh's CA; docs/security.md):
  --trust-domain TD     SPIFFE trust domain of issued certificates (default cluster.local)
  --ca-cert F, --ca-key F   sign with this root or intermediate (PEM; the chain may follow the
                        certificate); default: a self-signed root generated once and kept in the store
  --ca-bundle F         the roots sidecars trust (PEM; two during a root rotation); default: the
                        last certificate of --ca-cert
  --cert-ttl D          lifetime of workload certificates (default 24h; at least 2s)
  --workload-token-file F   bootstrap tokens outside Kubernetes: "TOKEN NAMESPACE/SERVICEACCOUNT" lines,
                        re-read on change
  --token-review        check Kubernetes service-account tokens (audience outrigger) with a TokenReview
                        (in-cluster credentials, or $KUBECONFIG)
  --allow-unauthenticated-sidecars  serve config streams without a workload credential (local
                        development; logged loudly). Default: a stream must present the sidecar's token
                        and its node id (POD.NAMESPACE) must be in the token's namespace; --no-auth implies it`;

export const controlCommand: Command = {
  summary: 'run the control plane',
  async run(args) {
    const values = parseFlags(
      args,
      {
        store: { type: 'string' },
        port: { type: 'string', default: '15010' },
        host: { type: 'string', default: '0.0.0.0' },
        'metrics-port': { type: 'string', default: '15014' },
        'token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        'no-auth': { type: 'boolean', default: false },
        debounce: { type: 'string', default: '0.1s' },
        'max-delay': { type: 'string', default: '10s' },
        'replica-id': { type: 'string' },
        'status-ttl': { type: 'string', default: '15s' },
        'allow-ephemeral-ports': { type: 'boolean', default: false },
        discover: { type: 'string' },
        kubeconfig: { type: 'string' },
        namespaces: { type: 'string' },
        'namespace-selector': { type: 'string' },
        'outbound-policy': { type: 'string', default: 'ALLOW_ANY' },
        'mesh-mtls': { type: 'boolean', default: false },
        'trust-domain': { type: 'string', default: 'cluster.local' },
        'ca-cert': { type: 'string' },
        'ca-key': { type: 'string' },
        'ca-bundle': { type: 'string' },
        'trace-otlp-endpoint': { type: 'string' },
        'trace-otlp-protocol': { type: 'string' },
        'trace-sampling': { type: 'string' },
        'cert-ttl': { type: 'string', default: '24h' },
        'workload-token-file': { type: 'string' },
        'token-review': { type: 'boolean', default: false },
        'allow-unauthenticated-sidecars': { type: 'boolean', default: false },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values.store) {
      throw new UsageError(`--store is required`, USAGE);
    }
    const token = values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : undefined;
    if (token === '') {
      process.stderr.write(`outrigger control: --token-file ${values['token-file']} is empty\n`);
      return 2;
    }
    const mtls = !!values['client-ca'];
    if (token === undefined && !mtls && !values['no-auth']) {
      process.stderr.write('outrigger control: give --token-file or --client-ca (or --no-auth for local development)\n');
      return 2;
    }
    if (!!values['tls-cert'] !== !!values['tls-key'] || (mtls && !values['tls-cert'])) {
      process.stderr.write('outrigger control: --tls-cert and --tls-key go together, and --client-ca needs them\n');
      return 2;
    }
    let statusTtlMs: number;
    try {
      statusTtlMs = parseDurationFlag(values['status-ttl']!);
      if (statusTtlMs < 300) throw new Error(`--status-ttl ${values['status-ttl']} is too short (at least 300ms)`);
    } catch (err) {
      process.stderr.write(`outrigger control: ${(err as Error).message}\n`);
      return 2;
    }
    const tdError = trustDomainError(values['trust-domain']!);
    if (tdError) {
      process.stderr.write(`outrigger control: --trust-domain: ${tdError}\n`);
      return 2;
    }
    if (!!values['ca-cert'] !== !!values['ca-key'] || (values['ca-bundle'] && !values['ca-cert'])) {
      process.stderr.write('outrigger control: --ca-cert and --ca-key go together, and --ca-bundle needs them\n');
      return 2;
    }
    let certTtlMs: number;
    try {
      certTtlMs = parseDurationFlag(values['cert-ttl']!);
      if (certTtlMs < 2000) throw new Error(`--cert-ttl ${values['cert-ttl']} is too short (at least 2s)`);
    } catch (err) {
      process.stderr.write(`outrigger control: ${(err as Error).message}\n`);
      return 2;
    }
    const discover = parseDiscover(values);
    const logger = createLogger();
    let server;
    let mesh: Awaited<ReturnType<typeof startMesh>> | undefined;
    try {
      const registry = new Registry();
      mesh = discover ? await startMesh(discover, logger, registry) : undefined;
      const store = await openStore(values.store);
      const clock = systemClock();
      const ca = await openCa({
        trustDomain: values['trust-domain']!,
        material: values['ca-cert']
          ? {
              certPem: readFileSync(values['ca-cert'], 'utf8'),
              keyPem: readFileSync(values['ca-key']!, 'utf8'),
              bundlePem: values['ca-bundle'] ? readFileSync(values['ca-bundle'], 'utf8') : undefined,
            }
          : undefined,
        store: store.ca,
        clock,
        logger,
      });
      const authenticators: WorkloadAuthenticator[] = [];
      if (values['workload-token-file']) {
        const file = new WorkloadTokenFile(values['workload-token-file']);
        await file.load();
        authenticators.push(file);
      }
      if (values['token-review']) authenticators.push(new TokenReviewAuthenticator(await tokenReviewApi()));
      if (authenticators.length === 0) logger.warn('no --workload-token-file or --token-review: no sidecar can get a workload certificate');
      server = await startControlServer({
        registry,
        generated: mesh?.mesh,
        onGeneratedConverged: mesh?.converged,
        discoveryStatus: mesh ? () => [{ ...mesh!.provider.status(), services: mesh!.mesh.services }] : undefined,
        store,
        clock,
        logger,
        // --no-auth (local development) leaves the config streams open too.
        // The self-generated root lives in the store: replicas follow, and `outrigger ca rotate` rotates it there.
        identity: { ca, caStore: values['ca-cert'] ? undefined : store.ca, auth: anyOf(authenticators), certTtlMs, authenticateSidecars: !values['allow-unauthenticated-sidecars'] && !values['no-auth'] },
        port: Number(values.port),
        host: values.host,
        metricsPort: Number(values['metrics-port']),
        auth: { token, mtls },
        tls: values['tls-cert']
          ? {
              cert: readFileSync(values['tls-cert'], 'utf8'),
              key: readFileSync(values['tls-key']!, 'utf8'),
              clientCa: values['client-ca'] ? readFileSync(values['client-ca'], 'utf8') : undefined,
            }
          : undefined,
        validate: { allowEphemeralPorts: values['allow-ephemeral-ports'] },
        debounceMs: parseDurationFlag(values.debounce!),
        maxDelayMs: parseDurationFlag(values['max-delay']!),
        tracer: await tracingOf(values, clock, registry),
        identifier: values['replica-id'],
        statusTtlMs,
      });
    } catch (err) {
      await mesh?.close();
      process.stderr.write(`outrigger control: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(JSON.stringify({ msg: 'control plane ready', port: server.port, metricsPort: server.metricsPort, replica: server.plane.identifier }) + '\n');
    await new Promise<void>((resolve) => {
      const stop = (): void => void server.close().then(() => mesh?.close()).then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};

interface Discover {
  kubeconfig?: string;
  scope: MeshScope;
  outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** --mesh-mtls: the trust domain of the expected peers. */
  meshTls?: { trustDomain: string };
}

/** `--discover` and its flags, checked (a bad selector or list is a usage error naming the flag). */
function parseDiscover(values: Record<string, unknown>): Discover | undefined {
  const discover = values.discover as string | undefined;
  const namespaces = values.namespaces as string | undefined;
  const selector = values['namespace-selector'] as string | undefined;
  if (!discover) {
    if (namespaces || selector || values.kubeconfig || values['mesh-mtls']) throw new UsageError('--kubeconfig, --namespaces, --namespace-selector and --mesh-mtls need --discover kubernetes', USAGE);
    return undefined;
  }
  if (discover !== 'kubernetes') throw new UsageError(`--discover: only "kubernetes" is supported, got "${discover}"`, USAGE);
  if (namespaces && selector) throw new UsageError('--namespaces and --namespace-selector exclude each other', USAGE);
  const policy = values['outbound-policy'] as string;
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY') throw new UsageError(`--outbound-policy: ALLOW_ANY or REGISTRY_ONLY, got "${policy}"`, USAGE);
  let scope: MeshScope = { kind: 'all' };
  if (namespaces) {
    const names = namespaces.split(',').map((n) => n.trim());
    const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n));
    if (bad !== undefined) throw new UsageError(`--namespaces: "${bad}" is not a namespace name`, USAGE);
    scope = { kind: 'namespaces', names };
  } else if (selector !== undefined) {
    const bad = checkSelector(selector);
    if (bad) throw new UsageError(`--namespace-selector: ${bad}`, USAGE);
    scope = { kind: 'selector', selector };
  }
  const meshTls = values['mesh-mtls'] ? { trustDomain: values['trust-domain'] as string } : undefined;
  return { kubeconfig: values.kubeconfig as string | undefined, scope, outboundPolicy: policy, meshTls };
}

/** Equality label selectors only ("k=v,k2=v2"), keys and values per Kubernetes' label syntax. */
export function checkSelector(s: string): string | undefined {
  if (s.trim() === '') return 'empty selector';
  for (const term of s.split(',')) {
    const m = /^([a-z0-9A-Z]([-a-zA-Z0-9_./]*[a-zA-Z0-9])?)=([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)?$/.exec(term.trim());
    if (!m) return `"${term}" is not a k=v term (only equality selectors: k=v[,k=v])`;
  }
  return undefined;
}

async function startMesh(d: Discover, logger: ReturnType<typeof createLogger>, registry: Registry) {
  const { loadKubeConfig } = await import('../discovery/kubernetes/kube-connection.js');
  const { KubernetesProvider } = await import('../discovery/kubernetes/kube-provider.js');
  const { KubeMesh } = await import('../discovery/mesh/kube-mesh.js');
  const { DiscoveryMetrics } = await import('../discovery/runner/discovery-metrics.js');
  const clock = systemClock();
  const metrics = new DiscoveryMetrics(registry);
  const provider = new KubernetesProvider({ kubeConfig: loadKubeConfig(d.kubeconfig), clock, logger, events: metrics });
  const mesh = new KubeMesh({ provider, scope: d.scope, outboundPolicy: d.outboundPolicy, meshTls: d.meshTls, clock, logger });
  return {
    provider,
    mesh,
    /** From an informer's event to the last sidecar's ACK of the push carrying it. */
    converged: (seconds: number) => metrics.pushSeconds.observe({ provider: 'kubernetes' }, seconds),
    async close() {
      mesh.close();
      await provider.close();
    },
  };
}

/** The control plane's tracer when an OTLP endpoint is configured (flags or OTEL_* variables); the SDK is imported only then. */
async function tracingOf(values: Record<string, unknown>, clock: Clock, registry: Registry): Promise<Tracer | undefined> {
  const settings = resolveTracing({
    endpoint: values['trace-otlp-endpoint'] as string | undefined,
    protocol: values['trace-otlp-protocol'] as string | undefined,
    sampling: values['trace-sampling'] as string | undefined,
  });
  if (settings === undefined) return undefined;
  const { buildTracer } = await import('../observability/trace-config.js');
  return buildTracer(settings, { clock, random: systemRandom(), registry, serviceName: 'outrigger-control' });
}
