import { randomBytes, X509Certificate } from 'node:crypto';
import type { Tracer } from '../../observability/tracer.js';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createContextValues } from '@connectrpc/connect';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Clock } from '../../core/clock.js';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { AggregatedDiscoveryService } from '../../gen/outrigger/control/v1/discovery_pb.js';
import { OperatorService } from '../../gen/outrigger/control/v1/operator_pb.js';
import type { Logger } from '../../observability/logger.js';
import type { GeneratedResources } from './generated-resources.js';
import type { ValidateOptions } from '../../config/validate.js';
import type { StateStore } from '../store/state-store.js';
import { peerKey, peerOf, type AuthOptions, type MeshRoots } from './auth.js';
import { ControlPlane } from './control-plane.js';
import { discoveryService } from './discovery-service.js';
import { rawAdsKind, serveRawAds } from './ads-h2.js';
import { operatorService, type ProviderStatusView } from './operator-service.js';
import { StatusBoard, sidecarStatusOf } from './status-board.js';
import { IdentityService } from '../../gen/outrigger/control/v1/identity_pb.js';
import type { CertificateAuthority } from './ca/certificate-authority.js';
import { identityService } from './ca/identity-service.js';
import { SidecarAuth } from './ca/sidecar-auth.js';
import { CaHolder } from './ca/ca-holder.js';
import { caService } from './ca/ca-service.js';
import { CaService } from '../../gen/outrigger/control/v1/ca_pb.js';
import type { CaStore } from '../store/state-store.js';
import tls from 'node:tls';
import type { WorkloadAuthenticator } from './ca/workload-auth.js';

/** The control plane as the mesh's CA (docs/security.md). */
export interface IdentityOptions {
  readonly ca: CertificateAuthority;
  /** Who a workload's bearer token names (bootstrap token file, TokenReview). */
  readonly auth: WorkloadAuthenticator;
  readonly certTtlMs: number;
  /**
   * Config streams must present a workload credential whose namespace is
   * the node id's (issue 17 point 6). False keeps streams open to anyone
   * (--allow-unauthenticated-sidecars; loudly logged).
   */
  readonly authenticateSidecars?: boolean;
  /**
   * Where `ca` is kept (the self-generated root): replicas re-read it and
   * `outrigger ca rotate` rotates its root there. Absent: --ca-cert files.
   */
  readonly caStore?: CaStore;
}

export interface ControlServerOptions {
  readonly store: StateStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly port: number;
  readonly host?: string;
  /** Metrics on this port (/metrics); undefined = not served. */
  readonly metricsPort?: number;
  readonly auth: AuthOptions;
  /** PEM contents; when cert and key are given the API is TLS (mTLS with clientCa). */
  readonly tls?: { cert: string; key: string; clientCa?: string };
  readonly validate?: ValidateOptions;
  readonly debounceMs?: number;
  readonly maxDelayMs?: number;
  /** OpenTelemetry tracing of operator changes and the pushes they cause (docs/observability.md#tracing). */
  readonly tracer?: Tracer;
  /** This replica's id in Status and responses (default HOST-PID-RANDOM, unique per process). */
  readonly identifier?: string;
  /**
   * With a store replicas share (redis): how long this replica's entry in the
   * shared status outlives it when killed (default 15 s; rewritten every ttl/3).
   */
  readonly statusTtlMs?: number;
  /** Resources served beside the stored ones without being stored (discovery providers; see generated-resources.ts). */
  readonly generated?: GeneratedResources;
  /** Told, per push that carried a generated change, the seconds from its source change to the last sidecar's ACK. */
  readonly onGeneratedConverged?: (seconds: number) => void;
  /** The discovery providers behind `generated`, for `outrigger status`. */
  readonly discoveryStatus?: () => readonly ProviderStatusView[];
  /** Serve the IdentityService (certificate issuance); absent: not served. */
  readonly identity?: IdentityOptions;
}

/**
 * Client certificates the TLS server asks for: operators' (signed by
 * --client-ca) and sidecars' SVIDs (chained to the mesh bundle). Asked, never
 * required: the verdict is read per call (auth.ts), so probes and token
 * holders still connect without one.
 */
function clientVerification(clientCa: string | undefined, ca: CertificateAuthority | undefined): { ca?: string[]; requestCert?: boolean; rejectUnauthorized?: boolean } {
  const roots = [...(clientCa ? [clientCa] : []), ...(ca ? ca.bundle : [])];
  return roots.length > 0 ? { ca: roots, requestCert: true, rejectUnauthorized: false } : {};
}

/** The mesh bundle's root fingerprints, as peerOf compares them with a verified chain's top. */
function meshRootsOf(holder: CaHolder): MeshRoots {
  let bundle: readonly string[] | undefined;
  let prints: ReadonlySet<string> = new Set();
  return {
    trustDomain: holder.current().trustDomain,
    fingerprints() {
      const ca = holder.current();
      if (bundle !== ca.bundle) {
        bundle = ca.bundle;
        prints = new Set(bundle.map((pem) => new X509Certificate(pem).fingerprint256));
      }
      return prints;
    },
  };
}

/** A replica id unique per process: hostname (the pod name in Kubernetes), pid and a random suffix. */
export function defaultReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface ControlServer {
  readonly port: number;
  readonly metricsPort: number | undefined;
  readonly plane: ControlPlane;
  readonly status: StatusBoard;
  readonly registry: Registry;
  close(): Promise<void>;
}

/**
 * Serves the control API with @connectrpc/connect-node on one HTTP/2 port:
 * gRPC (what sidecars and the CLI use), gRPC-Web and Connect (browsers,
 * curl) from the same generated descriptors — no proto-loader, no second
 * code generator. The sidecars' gRPC ADS streams alone are served on raw
 * node:http2 (ads-h2.ts: the push hot path). h2c by default; TLS, and mTLS
 * with a client CA.
 */
export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const registry = opts.registry ?? new Registry();
  // process_* and nodejs_* under the control plane's prefix (outrigger_control_process_resident_memory_bytes, …).
  collectDefaultMetrics({ register: registry, prefix: 'outrigger_control_' });
  const identifier = opts.identifier ?? defaultReplicaId();
  /** The last certificate issued to each node id by this replica (status). */
  const certificates = new Map<string, { spiffeId: string; notAfterMs: number }>();
  let board: StatusBoard | undefined;
  const plane = await ControlPlane.start({
    store: opts.store,
    clock: opts.clock,
    logger: opts.logger,
    registry,
    validate: opts.validate,
    debounceMs: opts.debounceMs,
    maxDelayMs: opts.maxDelayMs,
    identifier,
    generated: opts.generated,
    onGeneratedConverged: opts.onGeneratedConverged,
    tracer: opts.tracer,
    // Only a shared store has anything to publish (a file store: no hook at all on the push path).
    onStatusChange: opts.store.replicaStatus ? () => board?.changed() : undefined,
  });
  board = new StatusBoard({
    identifier,
    local: () =>
      plane.statusOf().map((s) => {
        const st = sidecarStatusOf(s, identifier);
        const cert = certificates.get(st.nodeId);
        if (cert) {
          st.spiffeId = cert.spiffeId;
          st.certificateExpiry = timestampFromMs(cert.notAfterMs);
        }
        return st;
      }),
    store: opts.store.replicaStatus,
    clock: opts.clock,
    logger: opts.logger,
    ttlMs: opts.statusTtlMs,
  });
  const status = board;
  // Over TLS, sidecars holding a workload certificate present it (mTLS to the control plane): the
  // server then asks every client for a certificate and verifies it against --client-ca and the mesh bundle.
  const caHolder = opts.identity ? new CaHolder(opts.identity.ca, opts.identity.caStore, opts.clock, opts.logger) : undefined;
  const meshRoots = opts.tls && caHolder ? meshRootsOf(caHolder) : undefined;
  const sidecarAuth = opts.identity
    ? new SidecarAuth({ auth: opts.identity.auth, trustDomain: opts.identity.ca.trustDomain, allowUnauthenticated: !opts.identity.authenticateSidecars, logger: opts.logger, registry })
    : undefined;
  const connectHandler = connectNodeAdapter({
    routes(router) {
      router.service(AggregatedDiscoveryService, discoveryService(plane, sidecarAuth));
      router.service(OperatorService, operatorService(plane, opts.auth, status, opts.discoveryStatus));
      if (opts.identity) {
        router.service(
          IdentityService,
          identityService({ ...opts.identity, caHolder, logger: opts.logger, registry, onIssued: (node, id, notAfterMs) => certificates.set(node, { spiffeId: id, notAfterMs }) }),
        );
        router.service(CaService, caService({ holder: caHolder!, auth: opts.auth, certTtlMs: opts.identity.certTtlMs, logger: opts.logger }));
      }
      // Health needs no credentials (probes).
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch() {
          yield { status: HealthCheckResponse_ServingStatus.SERVING };
        },
      });
    },
    contextValues: (req) => createContextValues().set(peerKey, peerOf(req, meshRoots)),
  });
  // gRPC sidecar streams skip connect (see ads-h2.ts); everything else is connect's.
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    const ads = req instanceof http2.Http2ServerRequest ? rawAdsKind(req) : undefined;
    if (ads) serveRawAds(plane, req as http2.Http2ServerRequest, ads, sidecarAuth, sidecarAuth && meshRoots ? peerOf(req, meshRoots) : undefined);
    else connectHandler(req, res);
  };
  const server = opts.tls
    ? http2.createSecureServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          allowHTTP1: true,
          ...clientVerification(opts.tls.clientCa, opts.identity?.ca),
        },
        handler,
      )
    : http2.createServer(handler);
  // A root rotation step: new TLS handshakes verify workload certificates against the new bundle.
  if (opts.tls && caHolder && server instanceof tls.Server) {
    const tlsOpts = opts.tls;
    const secure = server;
    caHolder.onChange((ca) => secure.setSecureContext({ cert: tlsOpts.cert, key: tlsOpts.key, ...clientVerification(tlsOpts.clientCa, ca) }));
  }
  caHolder?.start();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let metricsServer: http.Server | undefined;
  let metricsPort: number | undefined;
  if (opts.metricsPort !== undefined) {
    metricsServer = http.createServer((req, res) => {
      if (req.url === '/metrics') {
        void registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        });
      } else if (req.url === '/ready' || req.url === '/healthz') {
        res.writeHead(200);
        res.end('ok\n');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => metricsServer!.listen(opts.metricsPort, opts.host ?? '0.0.0.0', () => r()));
    metricsPort = (metricsServer.address() as AddressInfo).port;
  }
  status.start();
  opts.logger.info({ port, metricsPort, store: opts.store.description, replica: identifier, tls: !!opts.tls, mtls: !!opts.tls?.clientCa }, 'control plane listening');

  return {
    port,
    metricsPort,
    plane,
    status,
    registry,
    async close() {
      // Remove this replica's status entry while the store is still open.
      await status.close();
      caHolder?.close();
      await plane.close();
      await opts.tracer?.shutdown().catch(() => undefined);
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    },
  };
}
