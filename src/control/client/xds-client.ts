import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import type { Registry } from 'prom-client';
import type { Clock, Timer } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import { decodeDocument } from '../../config/decode.js';
import { KINDS, type Kind } from '../../config/kinds.js';
import { formatConfigError, type ResourceDocument } from '../../config/snapshot.js';
import type { ConfigSink, ConfigSource } from '../../config/config-source.js';
import {
  AggregatedDiscoveryService,
  DiscoveryRequestSchema,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../gen/outrigger/control/v1/discovery_pb.js';
import type { Logger } from '../../observability/logger.js';
import { AsyncQueue } from '../async-queue.js';
import { PROTOCOL_VERSION, SOTW_EDS_SUBSETS, USER_AGENT, fromWire, kindOfTypeUrl, typeUrlOf } from '../protocol.js';
import { backoffDelayMs } from './backoff.js';
import { readFile } from 'node:fs/promises';
import { controlTransport, withSvid, type ControlTls } from './transport.js';
import type { SvidSource } from '../../core/svid.js';
import { ClientMetrics } from './client-metrics.js';
import type { LocalityName } from '../../core/locality.js';

export interface XdsClientOptions {
  /** HOST:PORT of the control plane (h2c), or https://HOST:PORT (TLS). */
  readonly address: string;
  /** TLS toward the control plane (PEM contents): `ca` verifies its certificate. */
  readonly tls?: ControlTls;
  /** Who this sidecar is: id, service, labels for selectors, where it runs (Node.locality), and `admin`: its admin API (HOST:PORT) advertised in the node metadata (the control plane's Status lists it for `outrigger stat --control-plane`). */
  readonly node: { id: string; cluster?: string; labels?: Record<string, string>; locality?: LocalityName | undefined; admin?: string };
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * The bootstrap (--config) documents, current at each call: the routes
   * their listeners name and the endpoints of their EDS clusters are
   * subscribed too, so the control plane can serve those (as Envoy's RDS
   * does for a static listener) — e.g. the `outbound` routes of an injected
   * pod, whose listener comes from the init container's bootstrap file.
   */
  readonly bootstrap?: () => readonly ResourceDocument[];
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long an inconsistent set may wait for the rest of a push before it is NACKed (xDS: 15 s). */
  readonly warmingTimeoutMs?: number;
  /**
   * The workload credential (projected service-account or bootstrap token),
   * read at every connect and sent as `authorization: Bearer` (a control
   * plane that authenticates sidecars refuses streams without it).
   */
  readonly tokenFile?: string;
  /**
   * The workload certificate: over TLS, once one is held, each new
   * connection presents it as client certificate instead of the token
   * (read at each connect, so a rotated one is what the next connection uses).
   */
  readonly identity?: SvidSource;
}

/** A response received and checked, waiting to be applied together with the rest of its push. */
interface Pending {
  readonly version: string;
  readonly nonce: string;
  readonly docs: Map<string, ResourceDocument>;
  readonly changeMs: number | undefined;
}

/**
 * The sidecar end of the aggregated SotW stream, and a ConfigSource: each
 * consistent set it receives goes to its sink (a ConfigPipeline, which merges
 * it with the bootstrap config, installs and publishes it), and the verdict
 * becomes the ACK or NACK.
 *
 * Subscriptions follow xDS: clusters and listeners by wildcard; endpoints by
 * the names of EDS clusters and routes by the names the listeners use, so a
 * new cluster or listener warms until what it needs has arrived. Responses
 * are checked on arrival (decoding errors NACK at once, naming the resource
 * and field), then held until the merged set is consistent, then applied as
 * one snapshot and ACKed (each type with its version and nonce). A failed
 * install (port in use) NACKs with the previous version and keeps the old
 * config serving.
 *
 * States: idle → connecting → streaming → (error) backoff → connecting …;
 * any → closed.
 */
export class XdsClient implements ConfigSource {
  readonly name = 'xds';
  private readonly metrics: ClientMetrics;
  private sink: ConfigSink | undefined;
  /** Applied resources per kind. */
  private readonly current = new Map<Kind, Map<string, ResourceDocument>>();
  private readonly acked = new Map<Kind, string>();
  private readonly lastNonce = new Map<Kind, string>();
  private readonly names = new Map<Kind, string[]>();
  private pending = new Map<Kind, Pending>();
  private warming: Timer | undefined;
  private retry: Timer | undefined;
  private attempt = 0;
  private closed = false;
  private abort: AbortController | undefined;
  private requests: AsyncQueue<DiscoveryRequest> | undefined;
  private firstApplied!: () => void;
  /** Resolves after the first push from the control plane was applied. */
  readonly ready: Promise<void> = new Promise((r) => (this.firstApplied = r));
  private connectFailures = 0;
  private onFailure: (() => void) | undefined;

  constructor(private readonly opts: XdsClientOptions) {
    this.metrics = new ClientMetrics(opts.registry);
  }

  attach(sink: ConfigSink): void {
    this.sink = sink;
  }

  start(): void {
    if (!this.sink) throw new Error('XdsClient started before it was attached');
    this.updateSubscriptions(); // the bootstrap's names go in the first requests
    void this.connect();
  }

  /** Called once when the first connection attempt fails (boot from the persisted config). */
  onFirstFailure(cb: () => void): void {
    this.onFailure = cb;
  }

  get ackedVersions(): ReadonlyMap<Kind, string> {
    return this.acked;
  }

  close(): void {
    this.closed = true;
    this.retry?.cancel();
    this.warming?.cancel();
    this.requests?.close();
    this.abort?.abort();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const mtls = withSvid(this.opts.address, this.opts.tls, this.opts.identity?.current(), this.opts.clock.nowMs());
    const transport = createGrpcTransport({ ...controlTransport(this.opts.address, mtls ?? this.opts.tls), pingIntervalMs: 10_000 });
    const client = createClient(AggregatedDiscoveryService, transport);
    const requests = new AsyncQueue<DiscoveryRequest>();
    const abort = new AbortController();
    this.requests = requests;
    this.abort = abort;
    this.pending = new Map();
    this.lastNonce.clear();
    const { node } = this.opts;
    const nodeMsg = {
      id: node.id,
      cluster: node.cluster ?? '',
      metadata: (node.admin ? { labels: node.labels ?? {}, admin: node.admin } : { labels: node.labels ?? {} }) as JsonObject,
      ...(node.locality ? { locality: { region: node.locality.region, zone: node.locality.zone, subZone: node.locality.subZone } } : {}),
      userAgentName: USER_AGENT,
      userAgentVersionType: { case: 'userAgentVersion' as const, value: PROTOCOL_VERSION },
      // EDS responses are merged (onResponse): the control plane may send only the changed assignments.
      clientFeatures: [SOTW_EDS_SUBSETS],
    };
    // First request carries the node; on reconnect each type names its last ACKed version.
    let first = true;
    for (const kind of KINDS) {
      const wildcard = kind === 'Cluster' || kind === 'Listener';
      const names = wildcard ? ['*'] : this.names.get(kind);
      if (!names || names.length === 0) continue;
      requests.push(
        create(DiscoveryRequestSchema, {
          versionInfo: this.acked.get(kind) ?? '',
          node: first ? nodeMsg : undefined,
          resourceNames: names,
          typeUrl: typeUrlOf(kind),
        }),
      );
      first = false;
    }
    let gotResponse = false;
    try {
      // On h2c, and over TLS until a certificate is held, the token is the credential.
      const headers = this.opts.tokenFile && !mtls ? { authorization: `Bearer ${(await readFile(this.opts.tokenFile, 'utf8')).trim()}` } : undefined;
      for await (const res of client.streamAggregatedResources(requests, { signal: abort.signal, headers })) {
        if (!gotResponse) {
          gotResponse = true;
          this.attempt = 0;
          this.metrics.connected.set(1);
          this.opts.logger.info({ controlPlane: this.opts.address, credential: mtls ? 'svid' : this.opts.tokenFile ? 'token' : 'none' }, 'control stream up');
        }
        await this.onResponse(res);
      }
      if (!this.closed) throw new Error('stream ended by the control plane');
    } catch (err) {
      if (this.closed) return;
      this.metrics.connected.set(0);
      this.warming?.cancel();
      this.warming = undefined;
      const delay = backoffDelayMs(this.attempt++, this.opts.random, this.opts.initialBackoffMs ?? 250, this.opts.maxBackoffMs ?? 30_000);
      this.opts.logger.warn({ controlPlane: this.opts.address, err: (err as Error).message, retryInMs: Math.round(delay) }, 'control stream down; keeping the last good config');
      if (!gotResponse && this.connectFailures++ === 0) this.onFailure?.();
      requests.close();
      this.retry = this.opts.clock.setTimer(delay, () => void this.connect());
    }
  }

  private send(kind: Kind, extra: { nonce?: string; error?: string } = {}): void {
    const wildcard = kind === 'Cluster' || kind === 'Listener';
    this.requests?.push(
      create(DiscoveryRequestSchema, {
        versionInfo: this.acked.get(kind) ?? '',
        resourceNames: wildcard ? ['*'] : (this.names.get(kind) ?? []),
        typeUrl: typeUrlOf(kind),
        responseNonce: extra.nonce ?? this.lastNonce.get(kind) ?? '',
        errorDetail: extra.error === undefined ? undefined : { code: 3, message: extra.error },
      }),
    );
  }

  private async onResponse(res: DiscoveryResponse): Promise<void> {
    const kind = kindOfTypeUrl(res.typeUrl);
    if (!kind) return;
    this.lastNonce.set(kind, res.nonce);
    const docs = new Map<string, ResourceDocument>();
    const errors: string[] = [];
    for (const any of res.resources) {
      const d = fromWire(any);
      if ('error' in d) {
        errors.push(d.error);
        continue;
      }
      const key = d.metadata.name;
      // A response naming a resource twice must be NACKed (rule 8).
      if (docs.has(key)) errors.push(`${kind}/${key}: named twice in one response`);
      const dec = decodeDocument({ value: d, source: {} });
      if (!dec.ok) errors.push(...dec.errors.map(formatConfigError));
      docs.set(key, d);
    }
    if (errors.length > 0) {
      this.nack(kind, res.nonce, errors.join('; '));
      return;
    }
    if (kind === 'ClusterLoadAssignment') {
      // A subset (we announce SOTW_EDS_SUBSETS): what it leaves out stays as we have it, while subscribed.
      const subscribed = new Set(this.names.get(kind) ?? []);
      for (const [name, d] of this.view(kind)) if (!docs.has(name) && subscribed.has(name)) docs.set(name, d);
    }
    const changeMs = res.controlPlane?.changeTime ? timestampMs(res.controlPlane.changeTime) : undefined;
    this.pending.set(kind, { version: res.versionInfo, nonce: res.nonce, docs, changeMs });
    this.updateSubscriptions();
    await this.tryApply();
  }

  private view(kind: Kind): Map<string, ResourceDocument> {
    return this.pending.get(kind)?.docs ?? this.current.get(kind) ?? new Map();
  }

  /** A config was published (the bootstrap may have been reloaded): subscribe to what its listeners and clusters now name. */
  refreshSubscriptions(): void {
    this.updateSubscriptions();
  }

  /** Endpoints for the EDS clusters, routes for the listeners' routeConfig names (pushed and bootstrap ones). */
  private updateSubscriptions(): void {
    const boot = this.opts.bootstrap?.() ?? [];
    const of = (kind: Kind): ResourceDocument[] => {
      const pushed = this.view(kind);
      return [...pushed.values(), ...boot.filter((d) => d.kind === kind && !pushed.has(d.metadata.name))];
    };
    const eds = [...new Set(of('Cluster').filter((d) => d.spec.type === 'DISCOVERY_TYPE_EDS').map((d) => d.metadata.name))].sort();
    const rds = [...new Set(of('Listener').map((d) => d.spec.routeConfig).filter((n): n is string => typeof n === 'string' && n !== ''))].sort();
    for (const [kind, want] of [['ClusterLoadAssignment', eds], ['RouteConfiguration', rds]] as const) {
      const have = this.names.get(kind) ?? [];
      if (have.join('\n') === want.join('\n')) continue;
      this.names.set(kind, want);
      // Keep the nonce of the last response of that type; an empty list unsubscribes all.
      if (have.length > 0 || want.length > 0) this.send(kind);
    }
  }

  private async tryApply(): Promise<void> {
    // Wait for the initial clusters and listeners before touching the data path.
    if (!this.current.has('Cluster') && !this.pending.has('Cluster')) return;
    if (!this.current.has('Listener') && !this.pending.has('Listener')) return;
    const docs: ResourceDocument[] = [];
    for (const kind of KINDS) {
      const names = this.names.get(kind);
      for (const d of this.view(kind).values()) if (kind === 'Cluster' || kind === 'Listener' || names?.includes(d.metadata.name)) docs.push(d);
    }
    const batch = this.pending;
    let failure: string | undefined;
    const verdict = await this.sink!({ ok: true, documents: docs });
    if (!verdict.ok && verdict.stage !== 'refused') {
      // Warming: part of a push is still on its way. Give it time, then NACK.
      const inconsistent = verdict.errors;
      this.warming ??= this.opts.clock.setTimer(this.opts.warmingTimeoutMs ?? 15_000, () => {
        this.warming = undefined;
        const msg = inconsistent.map(formatConfigError).join('; ');
        for (const [kind, p] of this.pending) this.nack(kind, p.nonce, msg);
        this.pending = new Map();
      });
      return;
    }
    // The data path refused the set (a bind failure): NACK now, naming the listener.
    if (!verdict.ok) failure = describeInstallError(verdict.error, docs);
    this.warming?.cancel();
    this.warming = undefined;
    this.pending = new Map();
    if (failure !== undefined) {
      for (const [kind, p] of batch) this.nack(kind, p.nonce, `could not apply ${kind} version ${p.version}: ${failure}`);
      return;
    }
    const now = this.opts.clock.nowMs();
    for (const [kind, p] of batch) {
      this.current.set(kind, p.docs);
      this.acked.set(kind, p.version);
      this.metrics.updates.inc({ kind });
      this.metrics.versionInfo.reset();
      if (p.changeMs !== undefined) this.metrics.pushLatency.observe(Math.max(0, now - p.changeMs) / 1000);
      this.send(kind, { nonce: p.nonce });
    }
    for (const [kind, v] of this.acked) this.metrics.versionInfo.set({ kind, version: v }, 1);
    this.opts.logger.info({ versions: Object.fromEntries(this.acked) }, 'control-plane config applied');
    // ACKed: xDS has no place for warnings in an ACK; the control plane already told the operator at apply.
    if (verdict.ok && verdict.warnings) this.opts.logger.warn({ warnings: verdict.warnings.map(formatConfigError) }, 'config warnings');
    this.firstApplied();
  }

  private nack(kind: Kind, nonce: string, message: string): void {
    this.metrics.nacks.inc({ kind });
    this.opts.logger.warn({ kind, error: message, keptVersion: this.acked.get(kind) ?? null }, 'NACK: config rejected; the previous config keeps serving');
    this.send(kind, { nonce, error: message });
  }
}

/**
 * An install failure as a NACK message naming the resource and field when it
 * can: a bind error (EADDRINUSE, EACCES, …) carries the port, which names the
 * listener whose `spec.address.port` it is.
 */
export function describeInstallError(err: unknown, docs: readonly ResourceDocument[]): string {
  const e = err as Error & { port?: unknown; address?: unknown };
  const message = e?.message ?? String(err);
  if (typeof e?.port !== 'number') return message;
  const port = e.port;
  const host = typeof e.address === 'string' ? e.address : undefined;
  const owner = docs.find((d) => {
    if (d.kind !== 'Listener') return false;
    const a = d.spec.address as { host?: unknown; port?: unknown } | undefined;
    return a?.port === port && (host === undefined || a.host === undefined || a.host === host || a.host === '0.0.0.0' || a.host === '');
  });
  return owner ? `Listener/${owner.metadata.name}: spec.address.port: ${message}` : message;
}
