import http from 'node:http';
import type { EndpointAddress } from './endpoint.js';

/**
 * Keep-alive HTTP/1.1 agents, one per upstream endpoint, shared across config
 * versions. LIFO scheduling keeps the hottest sockets busy so idle ones time
 * out and close.
 */
export class H1Pool {
  private readonly agents = new Map<string, http.Agent>();

  agent(ep: EndpointAddress, maxIdle: number, idleTimeoutMs: number): http.Agent {
    let a = this.agents.get(ep.key);
    if (!a) {
      a = new http.Agent({ keepAlive: true, maxFreeSockets: maxIdle, scheduling: 'lifo', timeout: idleTimeoutMs });
      this.agents.set(ep.key, a);
    }
    return a;
  }

  /**
   * Forgets the agents of endpoints not in `keep` (after a config swap)
   * gracefully, like `evict`: a request in flight to an endpoint discovery
   * just removed still gets its answer.
   */
  retain(keep: ReadonlySet<string>): void {
    for (const key of [...this.agents.keys()]) if (!keep.has(key)) this.evict(key);
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
