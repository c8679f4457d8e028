import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { PublishedConfig } from '../config/store.js';
import { dumpRedacted } from '../config/dump.js';
import type { ListenerManager } from '../proxy/listener/listener-manager.js';
import type { ProxyContext } from '../proxy/context.js';
import type { Logger } from '../observability/logger.js';
import type { ExchangeTelemetry } from '../observability/exchange-telemetry.js';
import { serveLiveStats, serveTap } from './live-routes.js';
import { clustersText, endpointOrigins } from './endpoint-origins.js';
import { X509Certificate } from 'node:crypto';
import type { Svid } from '../core/svid.js';

/** The public facts of an SVID and its bundle, for /certs. */
function describeSvid(svid: Svid, nowMs: number): Record<string, unknown> {
  const cert = (pem: string) => {
    const c = new X509Certificate(pem);
    return { subject: c.subject || undefined, issuer: c.issuer, serial: c.serialNumber, notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString(), sha256: c.fingerprint256, uriSans: c.subjectAltName };
  };
  return {
    spiffeId: svid.spiffeId,
    trustDomain: svid.trustDomain,
    serial: svid.serial,
    notBefore: new Date(svid.notBeforeMs).toISOString(),
    notAfter: new Date(svid.notAfterMs).toISOString(),
    expiresInSeconds: Math.round((svid.notAfterMs - nowMs) / 1000),
    chain: svid.certChainPem.split(/(?=-----BEGIN CERTIFICATE-----)/).filter((p) => p.includes('BEGIN')).map(cert),
    bundle: svid.bundlePem.map(cert),
  };
}

export interface AdminDeps {
  registry: Registry;
  store: PublishedConfig;
  listeners: ListenerManager;
  proxy: ProxyContext;
  logger: Logger;
  /** The live window and tap behind /stats/live and /tap (live-routes.ts). */
  telemetry?: ExchangeTelemetry;
  /** POST /cache/purge: deletes the cache filters' entries under a key prefix (undefined: no cache filters built in). */
  purgeCache?: ((prefix: string) => Promise<number>) | undefined;
  /** Called by POST /quitquitquit: the sidecar drains and exits. */
  onQuit(): void;
}

/**
 * The admin API, on loopback only: readiness, metrics and read-only views of
 * the running config. Nothing here changes config (POST /cache/purge drops
 * cached responses, POST /quitquitquit drains).
 */
export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly deps: AdminDeps) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        deps.logger.error({ err: err.message, path: req.url }, 'admin request failed');
        if (!res.headersSent) send(res, 500, 'text/plain', `internal error: ${err.message}\n`);
      });
    });
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private ready(): boolean {
    return !this.deps.listeners.isDraining && this.deps.listeners.current() !== undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const d = this.deps;
    switch (url.pathname) {
      case '/ready':
        return this.ready()
          ? send(res, 200, 'text/plain', d.proxy.overload?.overloaded ? 'ready (overloaded: refusing new connections and requests)\n' : 'ready\n')
          : send(res, 503, 'text/plain', d.listeners.isDraining ? 'draining\n' : 'no config yet\n');
      case '/healthz':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/metrics':
        return send(res, 200, d.registry.contentType, await d.registry.metrics());
      case '/config_dump': {
        const snap = d.store.current();
        if (!snap) return send(res, 503, 'text/plain', 'no config yet\n');
        const yaml = url.searchParams.get('format') === 'yaml';
        return send(res, 200, yaml ? 'application/yaml' : 'application/json', dumpRedacted(snap, yaml ? 'yaml' : 'json'));
      }
      case '/clusters': {
        const view = this.clusters();
        return url.searchParams.get('format') === 'text' ? send(res, 200, 'text/plain', clustersText(view)) : sendJson(res, view);
      }
      case '/routes': {
        const st = d.listeners.current();
        const out: Record<string, unknown> = {};
        for (const [name, t] of st?.routeTables ?? []) out[name] = t.describe();
        return sendJson(res, { version: st?.version, routeConfigs: out });
      }
      case '/listeners': {
        const out: Record<string, unknown> = {};
        for (const [name, a] of d.listeners.addresses()) out[name] = a;
        return sendJson(res, { version: d.listeners.current()?.version, listeners: out });
      }
      case '/stats/live':
        return serveLiveStats(d.telemetry, url, res, (st, body) => send(res, st, 'text/plain', body));
      case '/tap':
        return serveTap(d.telemetry, req, url, res, (st, body) => send(res, st, 'text/plain', body));
      case '/certs': {
        // The workload certificate (docs/security.md): what `outrigger identity` shows. No key material.
        if (!d.proxy.identity) return send(res, 404, 'text/plain', 'no workload identity: the sidecar runs without --bootstrap-token-file / --sa-token-file\n');
        const svid = d.proxy.identity.current();
        if (!svid) return send(res, 503, 'text/plain', 'no workload certificate yet\n');
        return sendJson(res, describeSvid(svid, d.proxy.clock.nowMs()));
      }
      case '/cache/purge': {
        // docs/sidecar.md: `prefix` is relative to each filter's keyPrefix ("" purges everything).
        if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n', { allow: 'POST' });
        if (!d.purgeCache) return send(res, 404, 'text/plain', 'no cache filters in this sidecar\n');
        const prefix = url.searchParams.get('prefix') ?? '';
        const purged = await d.purgeCache(prefix);
        d.logger.info({ prefix, purged }, 'cache purged');
        return sendJson(res, { prefix, purged });
      }
      case '/quitquitquit':
        if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n', { allow: 'POST' });
        send(res, 200, 'text/plain', 'draining\n');
        d.onQuit();
        return;
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  private clusters(): { version?: string; clusters: Record<string, Record<string, unknown>> } {
    const st = this.deps.listeners.current();
    const snap = this.deps.store.current();
    const out: Record<string, Record<string, unknown>> = {};
    for (const [name, c] of st?.clusters ?? []) {
      const origins = endpointOrigins(snap, name);
      const outlier = this.deps.listeners.outliers.get(name);
      const now = this.deps.proxy.clock.monotonicMs();
      out[name] = {
        protocol: c.protocol,
        connectTimeoutMs: c.connectTimeoutMs,
        lbPolicy: c.policyName,
        activeRequests: c.stats.activeTotal,
        circuitBreakers: c.limits,
        // Retries and hedges in flight, attempts waiting for a connection, and the limits reached now (docs/resilience.md).
        pendingRequests: c.pendingTotal,
        activeRetries: c.activeRetries,
        openCircuitBreakers: Object.entries(c.openBreakers()).filter(([, open]) => open).map(([limit]) => limit),
        // Priority loads and the zone-aware routing decision, when the cluster has priorities, degraded
        // endpoints or zone routing; null: one plain picker over the endpoints.
        localityRouting: c.describeRouting() ?? null,
        // ORIGINAL_DST: no endpoints; the destinations with pooled upstream connections (shared by all such clusters).
        ...(c.originalDst ? { type: 'original_dst', useHostHeader: c.useHostHeader, destinations: this.deps.proxy.originalDst.destinations() } : {}),
        endpoints: c.endpoints.map((e) => {
          const h2 = this.deps.proxy.h2.describe(e.key);
          const h1 = this.deps.proxy.h1.describe(e.key);
          const s = c.stats.get(e.key);
          const origin = origins.get(e.key);
          return {
            address: e.key,
            // Where discovery found it (docs/discovery.md#status) and the labels it found on it.
            source: origin?.source ?? 'static',
            metadata: origin?.metadata ?? {},
            weight: e.weight,
            // Locality-aware routing (docs/resilience.md#locality-and-priority): where it runs, its failover level.
            locality: e.locality ? { region: e.locality.region, zone: e.locality.zone, subZone: e.locality.subZone } : null,
            priority: e.priority ?? 0,
            // Upstream resilience (docs/resilience.md): health, load and what outlier detection saw.
            health: c.healthLabelOf(e.key),
            activeRequests: s?.active ?? 0,
            totalRequests: s?.total ?? 0,
            successRate: s && s.total > 0 ? (s.total - s.failures) / s.total : null,
            ewmaLatencyMs: s?.sampled ? Math.round(s.estimate(now) * 1000) / 1000 : null,
            ejections: outlier?.ejectionsOf(e.key) ?? 0,
            // An endpoint with no connection yet is "idle"; a failed connect shows as "failed".
            state: h2?.state ?? (h1 ? 'ready' : 'idle'),
            ...(h2?.lastError ? { lastError: h2.lastError } : {}),
            ...(h1 ? { h1: h1 } : {}),
          };
        }),
      };
    }
    return { version: st?.version, clusters: out };
  }
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, v: unknown): void {
  send(res, 200, 'application/json', JSON.stringify(v, null, 2) + '\n');
}
