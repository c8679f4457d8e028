import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';

/** An HTTP/1.1 backend answering its name, on a chosen loopback host (and port). */
export interface NamedBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests it answered. */
  hits: number;
  close(): Promise<void>;
}

export async function startNamedBackend(name: string, host = '127.0.0.1', port = 0): Promise<NamedBackend> {
  const b = { name, host, port: 0, hits: 0 } as NamedBackend & { hits: number };
  const server = http.createServer((req, res) => {
    b.hits++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ backend: name, url: req.url, headers: req.headers }));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  (b as { port: number }).port = (server.address() as AddressInfo).port;
  b.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return b;
}

/**
 * Sequential requests through a sidecar port for as long as it runs: who
 * answered each, and every failure (a status other than 200 or an error).
 * Bounded: stops after `maxRequests` or when stopped.
 */
export class Traffic {
  readonly answers: string[] = [];
  readonly failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 4 });

  constructor(
    private readonly port: number,
    private readonly path = '/x',
    maxRequests = 50_000,
  ) {
    this.done = (async () => {
      for (let i = 0; i < maxRequests && this.running; i++) {
        try {
          const res = await request(`http://127.0.0.1:${this.port}${this.path}`, { dispatcher: this.agent });
          const text = await res.body.text();
          if (res.statusCode === 200) this.answers.push((JSON.parse(text) as { backend: string }).backend);
          else this.failures.push(`status ${res.statusCode} ${text.slice(0, 120)}`);
        } catch (err) {
          this.failures.push(`error ${(err as Error).message}`);
        }
      }
    })();
  }

  /** Whether the last `n` answers all came from `name`. */
  lastAre(name: string, n: number): boolean {
    if (this.answers.length < n) return false;
    return this.answers.slice(-n).every((a) => a === name);
  }

  /** Answers after index `from` by backend. */
  countsSince(from: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const a of this.answers.slice(from)) out[a] = (out[a] ?? 0) + 1;
    return out;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.agent.close();
  }
}
