import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { PublishedConfig } from '../config/store.js';
import { dumpRedacted } from '../config/dump.js';
import type { ListenerManager } from '../proxy/listener/listener-manager.js';
import type { ProxyContext } from '../proxy/context.js';
import type { Logger } from '../observability/logger.js';
import type { ExchangeTelemetry } from '../observability/exchange-telemetry.js';
import { serveLiveStats, serveTap } from './live-routes.js';
import { describeClusters, describeListeners, describeRoutes } from './data-path-views.js';
import type { WorkerAdmin } from './worker-admin.js';
import { clustersText, withEndpointOrigins } from './endpoint-origins.js';
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
  /** With `--concurrency N` > 1: what the workers answer (this process serves no traffic). */
  workers?: WorkerAdmin | undefined;
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

  private ready(): { ok: boolean; why: string } {
    const l = this.deps.listeners;
    if (this.deps.workers) return this.deps.workers.ready();
    return { ok: !l.isDraining && l.current() !== undefined, why: l.isDraining ? 'draining' : 'no config yet' };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const d = this.deps;
    switch (url.pathname) {
      case '/ready':
      {
        const r = this.ready();
        return r.ok
          ? send(res, 200, 'text/plain', d.proxy.overload?.overloaded ? 'ready (overloaded: refusing new connections and requests)\n' : 'ready\n')
          : send(res, 503, 'text/plain', `${r.why}\n`);
      }
      case '/workers':
        return d.workers ? sendJson(res, d.workers.workers()) : send(res, 404, 'text/plain', 'one process: the sidecar runs with --concurrency 1\n');
      case '/healthz':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/metrics':
        return send(res, 200, d.registry.contentType, d.workers ? await d.workers.metrics() : await d.registry.metrics());
      case '/config_dump': {
        const snap = d.store.current();
        if (!snap) return send(res, 503, 'text/plain', 'no config yet\n');
        const yaml = url.searchParams.get('format') === 'yaml';
        return send(res, 200, yaml ? 'application/yaml' : 'application/json', dumpRedacted(snap, yaml ? 'yaml' : 'json'));
      }
      case '/clusters': {
        const view = withEndpointOrigins(d.workers ? await d.workers.clusters() : describeClusters(d.listeners, d.proxy), d.store.current());
        return url.searchParams.get('format') === 'text' ? send(res, 200, 'text/plain', clustersText(view)) : sendJson(res, view);
      }
      case '/routes':
        return sendJson(res, d.workers ? await d.workers.routes() : describeRoutes(d.listeners));
      case '/listeners':
        return sendJson(res, d.workers ? await d.workers.listeners() : describeListeners(d.listeners));
      case '/stats/live':
        return serveLiveStats(d.workers ? d.workers.live : d.telemetry?.live, url, res, (st, body) => send(res, st, 'text/plain', body));
      case '/tap':
        return serveTap(d.workers ? d.workers.tap : d.telemetry?.tap, req, url, res, (st, body) => send(res, st, 'text/plain', body));
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
        const purge = d.workers ? (p: string) => d.workers!.purgeCache(p) : d.purgeCache;
        if (!purge) return send(res, 404, 'text/plain', 'no cache filters in this sidecar\n');
        const prefix = url.searchParams.get('prefix') ?? '';
        const purged = await purge(prefix);
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
