import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { encodeFrame } from '../core/grpc-framing.js';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from '../observability/logger.js';

/**
 * One app probe as the injector recorded it (the container's original
 * httpGet / tcpSocket / grpc probe, named ports resolved), keyed by its
 * status-port path `/app-health/<container>/<readyz|livez|startupz>`.
 * Read from the OUTRIGGER_APP_PROBES env var (JSON); shape owned by
 * injector/app-probes.ts.
 */
export type AppProbeSpec =
  | { httpGet: { path: string; port: number; scheme?: 'HTTP' | 'HTTPS'; httpHeaders?: { name: string; value: string }[] }; timeoutSeconds?: number }
  | { tcpSocket: { port: number }; timeoutSeconds?: number }
  | { grpc: { port: number; service?: string }; timeoutSeconds?: number };

export interface StatusDeps {
  /** The sidecar's readiness (same rule as the admin API's /ready). */
  ready(): boolean;
  appProbes: Record<string, AppProbeSpec>;
  logger: Logger;
  /** Where the app listens; the pod's loopback. */
  appHost?: string;
}

/**
 * The status port (15021 in a pod), reachable on the pod IP so the kubelet can
 * probe it: GET /ready for the proxy's own readiness probe, and
 * GET /app-health/<container>/<probe> for app probes the injector rewrote.
 * Each app probe is run against the app over loopback when asked (the kubelet
 * keeps the schedule); 200 when it passes, 503 with the reason otherwise.
 * The admin API stays on loopback; nothing here changes state.
 */
export class StatusServer {
  private readonly server: http.Server;

  constructor(private readonly deps: StatusDeps) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) send(res, 500, `internal error: ${err.message}\n`);
      });
    });
  }

  /**
   * Without a host: `::` (dual stack, so the kubelet reaches it on an IPv4,
   * IPv6 or dual-stack pod IP), or `0.0.0.0` where the kernel has no IPv6.
   */
  async listen(port: number, host?: string): Promise<number> {
    const attempt = (h: string): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        this.server.once('error', onError);
        this.server.listen(port, h, () => {
          this.server.removeListener('error', onError);
          resolve();
        });
      });
    if (host !== undefined) await attempt(host);
    else {
      try {
        await attempt('::');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
        await attempt('0.0.0.0');
      }
    }
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://status').pathname;
    if (path === '/ready') return this.deps.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
    const probe = Object.hasOwn(this.deps.appProbes, path) ? this.deps.appProbes[path] : undefined;
    if (!probe) return send(res, 404, 'not found\n');
    const failure = await runProbe(probe, this.deps.appHost ?? '127.0.0.1');
    if (failure === undefined) return send(res, 200, 'ok\n');
    this.deps.logger.debug({ path, failure }, 'app probe failed');
    return send(res, 503, `${failure}\n`);
  }
}

/** Runs one probe; undefined on success, else why it failed. */
export function runProbe(p: AppProbeSpec, host: string): Promise<string | undefined> {
  const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
  if ('httpGet' in p) return httpProbe(p.httpGet, host, timeoutMs);
  if ('tcpSocket' in p) return tcpProbe(p.tcpSocket.port, host, timeoutMs);
  return grpcProbe(p.grpc.port, p.grpc.service ?? '', host, timeoutMs);
}

function httpProbe(g: Extract<AppProbeSpec, { httpGet: unknown }>['httpGet'], host: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'kube-probe/outrigger' };
    for (const h of g.httpHeaders ?? []) headers[h.name] = h.value;
    const mod = g.scheme === 'HTTPS' ? https : http;
    // Like the kubelet: HTTPS probes do not verify the certificate; 200–399 passes.
    const req = mod.get({ host, port: g.port, path: g.path, headers, timeout: timeoutMs, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      const s = res.statusCode ?? 0;
      resolve(s >= 200 && s < 400 ? undefined : `HTTP probe answered ${s}`);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve(`HTTP probe failed: ${err.message}`));
  });
}

function tcpProbe(port: number, host: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    sock.once('connect', () => {
      sock.destroy();
      resolve(undefined);
    });
    sock.once('error', (err) => resolve(`TCP probe failed: ${err.message}`));
  });
}

/** grpc.health.v1.Health/Check over h2c; SERVING (1) passes. */
function grpcProbe(port: number, service: string, host: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: string | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(`gRPC probe timeout after ${timeoutMs} ms`), timeoutMs);
    const session = http2.connect(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    session.on('error', (err) => finish(`gRPC probe failed: ${err.message}`));
    // HealthCheckRequest { string service = 1; } in a 5-byte gRPC frame.
    const name = Buffer.from(service, 'utf8');
    const msg = name.length ? Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]) : Buffer.alloc(0);
    const frame = encodeFrame(0, msg);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    stream.on('response', (h) => (grpcStatus = h['grpc-status'] as string | undefined));
    stream.on('trailers', (h) => (grpcStatus = h['grpc-status'] as string | undefined));
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', (err) => finish(`gRPC probe failed: ${err.message}`));
    stream.on('end', () => {
      if (grpcStatus !== '0') return finish(`gRPC probe: grpc-status ${grpcStatus ?? 'missing'}`);
      const body = Buffer.concat(chunks).subarray(5);
      // HealthCheckResponse { ServingStatus status = 1; } — SERVING = 1.
      finish(body.length >= 2 && body[0] === 0x08 && body[1] === 1 ? undefined : 'gRPC probe: not SERVING');
    });
    stream.end(frame);
  });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
