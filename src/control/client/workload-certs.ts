import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { durationFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock, Timer } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import { trustDomainOf } from '../../core/spiffe.js';
import type { Svid, SvidSource } from '../../core/svid.js';
import { IdentityService } from '../../gen/outrigger/control/v1/identity_pb.js';
import type { Logger } from '../../observability/logger.js';
import { backoffDelayMs } from './backoff.js';
import { newKeyAndCsr } from './csr.js';
import { controlTransport, withSvid, type ControlTls } from './transport.js';

export interface WorkloadCertsOptions {
  /** The control plane (as for the xDS client). */
  readonly address: string;
  readonly tls?: ControlTls;
  readonly nodeId: string;
  /** The credential presented: a projected service-account token or a bootstrap token; read at every request (tokens rotate). */
  readonly tokenFile: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Lifetime asked for (the control plane caps it); default: the control plane's --cert-ttl. */
  readonly requestedTtlMs?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/** Renewal at this fraction of the lifetime, ± RENEW_JITTER (so sidecars started together do not renew together). */
const RENEW_AT = 0.5;
const RENEW_JITTER = 0.1;
/** A certificate that has this fraction of its life left and was not renewed is logged loudly. */
const WARN_AT_REMAINING = 0.25;

/**
 * The sidecar's workload certificate: key pair generated here (never leaves
 * the process), CSR to the control plane's IdentityService with the token,
 * renewal at half the lifetime with jitter, retries with backoff while the
 * control plane is away, the current certificate kept until it expires.
 * `current()` is what new connections take; connections already up keep
 * the context they were made with.
 */
export class WorkloadCerts implements SvidSource {
  private svid: Svid | undefined;
  private timer: Timer | undefined;
  private warnTimer: Timer | undefined;
  private attempt = 0;
  private closed = false;
  private readonly client: Client<typeof IdentityService>;
  private readonly listeners: ((s: Svid) => void)[] = [];
  private readonly renewals: Counter;
  private firstResolve!: () => void;
  /** Resolves once a certificate is held. */
  readonly first = new Promise<void>((r) => (this.firstResolve = r));

  constructor(private readonly opts: WorkloadCertsOptions) {
    this.client = createClient(IdentityService, createGrpcTransport(controlTransport(opts.address, opts.tls)));
    const registers = [opts.registry];
    this.renewals = new Counter({ name: 'outrigger_identity_cert_requests_total', help: 'Workload certificate requests, by result', labelNames: ['result'], registers });
    const self = this;
    new Gauge({
      name: 'outrigger_identity_cert_expiry_seconds',
      help: 'Seconds until the workload certificate expires (negative: expired; absent: none yet)',
      registers,
      collect() {
        this.reset();
        if (self.svid) this.set((self.svid.notAfterMs - self.opts.clock.nowMs()) / 1000);
      },
    });
  }

  current(): Svid | undefined {
    return this.svid;
  }

  /** Called after each new certificate (rotation), with it. */
  onChange(cb: (s: Svid) => void): void {
    this.listeners.push(cb);
  }

  start(): void {
    void this.fetch();
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.warnTimer?.cancel();
  }

  private async fetch(): Promise<void> {
    if (this.closed) return;
    try {
      const { client, headers } = await this.credential();
      const { keyPem, csrPem } = await newKeyAndCsr();
      const res = await client.createCertificate(
        { csr: csrPem, nodeId: this.opts.nodeId, validity: this.opts.requestedTtlMs ? durationFromMs(this.opts.requestedTtlMs) : undefined },
        { headers, timeoutMs: 10_000 },
      );
      if (this.closed) return;
      const certChainPem = res.certChain.join('');
      const leaf = new X509Certificate(res.certChain[0] ?? '');
      const secureContext = tls.createSecureContext({ cert: certChainPem, key: keyPem, ca: res.trustBundle });
      const svid: Svid = {
        spiffeId: res.spiffeId,
        trustDomain: trustDomainOf(res.spiffeId) ?? '',
        certChainPem,
        keyPem,
        bundlePem: res.trustBundle,
        serial: leaf.serialNumber,
        notBeforeMs: Date.parse(leaf.validFrom),
        notAfterMs: res.notAfter ? timestampMs(res.notAfter) : Date.parse(leaf.validTo),
        secureContext,
      };
      const previous = this.svid;
      this.svid = svid;
      this.attempt = 0;
      this.renewals.inc({ result: 'issued' });
      this.opts.logger.info({ spiffeId: svid.spiffeId, serial: svid.serial, notAfter: new Date(svid.notAfterMs).toISOString(), rotated: !!previous }, 'workload certificate installed');
      this.firstResolve();
      for (const cb of this.listeners) cb(svid);
      this.schedule(svid);
    } catch (err) {
      if (this.closed) return;
      this.renewals.inc({ result: 'failed' });
      const now = this.opts.clock.nowMs();
      const left = this.svid ? this.svid.notAfterMs - now : undefined;
      const delay = backoffDelayMs(this.attempt++, this.opts.random, this.opts.initialBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
      // Never wait past the current certificate's expiry to try again.
      const wait = left !== undefined && left > 0 ? Math.min(delay, Math.max(100, left / 4)) : delay;
      this.opts.logger.warn(
        { err: (err as Error).message, retryInMs: Math.round(wait), ...(left !== undefined ? { expiresInS: Math.round(left / 1000) } : {}) },
        'workload certificate request failed; keeping the current certificate',
      );
      this.timer = this.opts.clock.setTimer(wait, () => void this.fetch());
    }
  }

  /**
   * How this request proves who it is: the token (as Istio and Linkerd renew),
   * or, when the token file cannot be read and the control connection is TLS,
   * the current certificate as client certificate (a one-off connection).
   */
  private async credential(): Promise<{ client: Client<typeof IdentityService>; headers?: Record<string, string> }> {
    try {
      const token = (await readFile(this.opts.tokenFile, 'utf8')).trim();
      return { client: this.client, headers: { authorization: `Bearer ${token}` } };
    } catch (err) {
      const mtls = withSvid(this.opts.address, this.opts.tls, this.svid, this.opts.clock.nowMs());
      if (!mtls) throw err;
      // Closed when idle, so one-off connections do not pile up.
      return { client: createClient(IdentityService, createGrpcTransport({ ...controlTransport(this.opts.address, mtls), idleConnectionTimeoutMs: 5_000 })) };
    }
  }

  private schedule(svid: Svid): void {
    this.timer?.cancel();
    this.warnTimer?.cancel();
    const now = this.opts.clock.nowMs();
    const life = Math.max(0, svid.notAfterMs - now);
    const fraction = RENEW_AT + (this.opts.random.next() * 2 - 1) * RENEW_JITTER;
    this.timer = this.opts.clock.setTimer(life * fraction, () => void this.fetch());
    this.warnTimer = this.opts.clock.setTimer(life * (1 - WARN_AT_REMAINING), () => {
      if (this.svid !== svid || this.closed) return;
      this.opts.logger.error(
        { spiffeId: svid.spiffeId, notAfter: new Date(svid.notAfterMs).toISOString(), expiresInS: Math.round((svid.notAfterMs - this.opts.clock.nowMs()) / 1000) },
        'workload certificate not renewed and 25% of its life is left: is the control plane reachable? mesh mTLS fails when it expires',
      );
    });
  }
}
