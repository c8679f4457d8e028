import { randomBytes } from 'node:crypto';
import type { Tracer } from '../../observability/tracing/tracer.js';
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
import { peerKey, peerOf, type AuthOptions } from './auth.js';
import { ControlPlane } from './control-plane.js';
import { discoveryService } from './discovery-service.js';
import { rawAdsKind, serveRawAds } from './ads-h2.js';
import { operatorService, type ProviderStatusView } from './operator-service.js';
import { StatusBoard, sidecarStatusOf } from './status-board.js';
import { IdentityService } from '../../gen/outrigger/control/v1/identity_pb.js';
import type { CertificateAuthority } from './ca/certificate-authority.js';
import { identityService } from './ca/identity-service.js';
import { SidecarAuth } from './ca/sidecar-auth.js';
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
  /** The discovery providers behind `generated`, for `outrigger status`. */
  readonly discoveryStatus?: () => readonly ProviderStatusView[];
  /** Serve the IdentityService (certificate issuance); absent: not served. */
  readonly identity?: IdentityOptions;
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
  const sidecarAuth = opts.identity
    ? new SidecarAuth({ auth: opts.identity.auth, allowUnauthenticated: !opts.identity.authenticateSidecars, logger: opts.logger, registry })
    : undefined;
  const connectHandler = connectNodeAdapter({
    routes(router) {
      router.service(AggregatedDiscoveryService, discoveryService(plane, sidecarAuth));
      router.service(OperatorService, operatorService(plane, opts.auth, status, opts.discoveryStatus));
      if (opts.identity) {
        router.service(
          IdentityService,
          identityService({ ...opts.identity, logger: opts.logger, registry, onIssued: (node, id, notAfterMs) => certificates.set(node, { spiffeId: id, notAfterMs }) }),
        );
      }
      // Health needs no credentials (probes).
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        async *watch() {
          yield { status: HealthCheckResponse_ServingStatus.SERVING };
        },
      });
    },
    contextValues: (req) => createContextValues().set(peerKey, peerOf(req)),
  });
  // gRPC sidecar streams skip connect (see ads-h2.ts); everything else is connect's.
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    const ads = req instanceof http2.Http2ServerRequest ? rawAdsKind(req) : undefined;
    if (ads) serveRawAds(plane, req as http2.Http2ServerRequest, ads, sidecarAuth);
    else connectHandler(req, res);
  };
  const server = opts.tls
    ? http2.createSecureServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          allowHTTP1: true,
          ...(opts.tls.clientCa ? { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
        },
        handler,
      )
    : http2.createServer(handler);
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
      await plane.close();
      await opts.tracer?.shutdown().catch(() => undefined);
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    },
  };
}
