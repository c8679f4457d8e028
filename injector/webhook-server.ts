import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Registry } from 'prom-client';
import type { Clock, Timer } from '../src/core/clock.js';
import type { Logger } from '../src/observability/logger.js';
import { review } from './admission.js';
import type { MeshConfig } from './mesh-config.js';
import { WebhookMetrics } from './webhook-metrics.js';

export interface WebhookServerOptions {
  certFile: string;
  keyFile: string;
  mesh: MeshConfig;
  /** The cluster's Kubernetes version when known (decides native sidecars in `auto`). */
  kubernetesVersion?: string;
  registry: Registry;
  logger: Logger;
  clock: Clock;
  /** Also re-read the certificate files this often (fs events are not reliable on every volume). */
  certPollMs?: number;
  /** Largest AdmissionReview body accepted. */
  maxBodyBytes?: number;
}

/**
 * The mutating admission webhook over HTTPS: POST /inject, GET /healthz,
 * GET /metrics. The serving certificate is re-read when its files change (a
 * directory watch catches Kubernetes' atomic symlink swap of Secret volumes)
 * and on a timer; a pair that does not load keeps the old one serving.
 */
export class WebhookServer {
  private readonly server: https.Server;
  private readonly metrics: WebhookMetrics;
  private watchers: FSWatcher[] = [];
  private pollTimer: Timer | undefined;
  private loaded = '';
  private closed = false;

  private constructor(
    private readonly opts: WebhookServerOptions,
    cert: Buffer,
    key: Buffer,
  ) {
    this.metrics = new WebhookMetrics(opts.registry);
    this.loaded = cert.toString() + key.toString();
    this.server = https.createServer({ cert, key, requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      this.handle(req, res).catch((err: Error) => {
        opts.logger.error({ err: err.message }, 'webhook request failed');
        if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }

  static async create(opts: WebhookServerOptions): Promise<WebhookServer> {
    const [cert, key] = await Promise.all([readFile(opts.certFile), readFile(opts.keyFile)]);
    return new WebhookServer(opts, cert, key);
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.watchCerts();
    return (this.server.address() as { port: number }).port;
  }

  /** Re-reads the certificate files; applies them if they changed and load. */
  async reloadCerts(): Promise<boolean> {
    let cert: Buffer, key: Buffer;
    try {
      [cert, key] = await Promise.all([readFile(this.opts.certFile), readFile(this.opts.keyFile)]);
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'could not read serving certificate');
      this.metrics.certReloads.inc({ result: 'failed' });
      return false;
    }
    const content = cert.toString() + key.toString();
    if (content === this.loaded) return false;
    try {
      createSecureContext({ cert, key }); // throws on a mismatched or half-written pair
      this.server.setSecureContext({ cert, key });
    } catch (err) {
      // Usually a moment between the two files being replaced; the next event or poll retries.
      this.opts.logger.warn({ err: (err as Error).message }, 'serving certificate not loaded; keeping the old one');
      this.metrics.certReloads.inc({ result: 'failed' });
      return false;
    }
    this.loaded = content;
    this.metrics.certReloads.inc({ result: 'applied' });
    this.opts.logger.info({ certFile: this.opts.certFile }, 'serving certificate reloaded');
    return true;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.pollTimer?.cancel();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private watchCerts(): void {
    const dirs = new Set([dirname(this.opts.certFile), dirname(this.opts.keyFile)]);
    for (const dir of dirs) {
      try {
        const w = watch(dir, () => void this.reloadCerts());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch (err) {
        this.opts.logger.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; polling only');
      }
    }
    const poll = (): void => {
      if (this.closed) return;
      void this.reloadCerts().finally(() => {
        if (!this.closed) this.pollTimer = this.opts.clock.setTimer(this.opts.certPollMs ?? 30_000, poll);
      });
    };
    this.pollTimer = this.opts.clock.setTimer(this.opts.certPollMs ?? 30_000, poll);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://injector');
    switch (url.pathname) {
      case '/healthz':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/metrics':
        return send(res, 200, this.opts.registry.contentType, await this.opts.registry.metrics());
      case '/inject':
        if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n', { allow: 'POST' });
        return this.inject(req, res);
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  private async inject(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = this.opts.clock.monotonicMs();
    const max = this.opts.maxBodyBytes ?? 4 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) {
        this.metrics.requests.inc({ result: 'bad_request' });
        res.setHeader('connection', 'close');
        return send(res, 413, 'text/plain', `body larger than ${max} bytes\n`);
      }
      chunks.push(chunk);
    }
    const reply = review(req.headers['content-type'], Buffer.concat(chunks).toString('utf8'), this.opts.mesh, this.opts.kubernetesVersion);
    this.metrics.requests.inc({ result: reply.outcome });
    if (reply.skipReason) this.metrics.skips.inc({ reason: reply.skipReason });
    if (reply.outcome === 'error') {
      this.metrics.errors.inc();
      this.opts.logger.error({ uid: reply.uid, pod: reply.pod, reply: reply.body }, 'injection failed');
    } else if (reply.outcome === 'injected' || reply.outcome === 'skipped') {
      this.opts.logger.info({ uid: reply.uid, pod: reply.pod, outcome: reply.outcome, reason: reply.skipReason }, 'admission review');
    } else {
      this.opts.logger.warn({ status: reply.httpStatus, error: reply.body.trim() }, 'bad admission request');
    }
    this.metrics.duration.observe({ result: reply.outcome }, (this.opts.clock.monotonicMs() - start) / 1000);
    send(res, reply.httpStatus, reply.contentType, reply.body);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}
