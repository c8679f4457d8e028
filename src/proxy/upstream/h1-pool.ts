import http from 'node:http';
import type { EndpointAddress } from './endpoint.js';
import type { SvidSource } from '../../core/svid.js';
import { connectTls, type UpstreamTlsPolicy } from './upstream-tls.js';
import type { Logger } from '../../observability/logger.js';

/** An agent whose sockets are TLS (ALPN http/1.1), made by the cluster's policy at each new connection. */
class TlsAgent extends http.Agent {
  constructor(
    opts: http.AgentOptions,
    private readonly ep: EndpointAddress,
    private readonly policy: UpstreamTlsPolicy,
    private readonly identity: SvidSource | undefined,
    private readonly logger: Logger | undefined,
  ) {
    super(opts);
  }

  override createConnection(): ReturnType<http.Agent['createConnection']> {
    const s = connectTls(this.policy, this.ep, this.identity, ['http/1.1']);
    const logger = this.logger;
    if (logger) {
      // One line per failed handshake (a refused peer identity says why); the request fails as a connect failure.
      const failed = (err: Error): void => logger.warn({ upstream: this.ep.key, err: err.message }, 'upstream TLS connection failed');
      s.once('error', failed);
      s.once('secureConnect', () => s.off('error', failed));
    }
    return s;
  }
}

/**
 * Keep-alive HTTP/1.1 agents, one per upstream endpoint, shared across config
 * versions. LIFO scheduling keeps the hottest sockets busy so idle ones time
 * out and close.
 */
export class H1Pool {
  private readonly agents = new Map<string, http.Agent>();
  /** The endpoint key of each TLS agent's pool key (`KEY#POLICY`), for retain(). */
  private readonly endpointOf = new Map<string, string>();

  /** `identity`: the workload certificate for clusters with `tls: {mode: TLS_MODE_MESH}`; `logger`: failed TLS handshakes. */
  constructor(
    private readonly identity?: SvidSource,
    private readonly logger?: Logger,
  ) {}

  agent(ep: EndpointAddress, maxIdle: number, idleTimeoutMs: number, tls?: UpstreamTlsPolicy): http.Agent {
    const key = tls === undefined ? ep.key : `${ep.key}#${tls.poolKey}`;
    let a = this.agents.get(key);
    if (!a) {
      const opts = { keepAlive: true, maxFreeSockets: maxIdle, scheduling: 'lifo' as const, timeout: idleTimeoutMs };
      a = tls === undefined ? new http.Agent(opts) : new TlsAgent(opts, ep, tls, this.identity, this.logger);
      this.agents.set(key, a);
      if (tls !== undefined) this.endpointOf.set(key, ep.key);
    }
    return a;
  }

  /**
   * Forgets the agents of endpoints not in `keep` (after a config swap)
   * gracefully, like `evict`: a request in flight to an endpoint discovery
   * just removed still gets its answer.
   */
  retain(keep: ReadonlySet<string>): void {
    for (const key of [...this.agents.keys()]) {
      if (keep.has(this.endpointOf.get(key) ?? key)) continue;
      this.endpointOf.delete(key);
      this.evict(key);
    }
  }

  /**
   * Forgets the agent of `key` without cutting requests in flight: idle
   * sockets close now, busy ones close when their response is done (no
   * keep-alive any more). Used for original destinations (original-dst.ts).
   */
  evict(key: string): void {
    const a = this.agents.get(key);
    if (!a) return;
    this.agents.delete(key);
    // node:http's Agent destroys a freed socket when its keepAlive is off (not in @types/node).
    (a as http.Agent & { keepAlive: boolean }).keepAlive = false;
    for (const list of Object.values(a.freeSockets)) for (const s of list ?? []) s.destroy();
  }

  describe(key: string): { openSockets: number; idleSockets: number } | undefined {
    const a = this.agents.get(key);
    if (!a) return undefined;
    const count = (m: NodeJS.ReadOnlyDict<unknown[]>): number =>
      Object.values(m).reduce((n, l) => n + (l?.length ?? 0), 0);
    return { openSockets: count(a.sockets), idleSockets: count(a.freeSockets) };
  }

  closeAll(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
