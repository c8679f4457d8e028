import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type CheckStatus = 'passing' | 'warning' | 'critical';

/** One service instance in the catalog. */
export interface ConsulInstance {
  node: string;
  nodeAddress: string;
  id: string;
  service: string;
  address?: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  weights?: { Passing: number; Warning: number };
  /** The instance's service check; default passing. */
  status?: CheckStatus;
}

interface Stored extends ConsulInstance {
  createIndex: number;
  modifyIndex: number;
}

export interface ConsulServer {
  readonly url: string;
  readonly port: number;
  /** Registers (or updates) an instance, as /v1/catalog/register does. */
  register(i: ConsulInstance): void;
  /** Removes an instance, as /v1/catalog/deregister does. */
  deregister(node: string, serviceId: string): void;
  /** Sets the service check of an instance. */
  setStatus(node: string, serviceId: string, status: CheckStatus): void;
  /** While true, requests are read but never answered (an agent that hangs). */
  stall(on: boolean): void;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Health queries received: their query strings. */
  readonly healthQueries: string[];
  /** Blocking queries parked now. */
  parked(): number;
  close(): Promise<void>;
}

const DC = 'dc1';
const MAX_WAIT_MS = 10 * 60_000;

/**
 * A Consul agent's HTTP API for what discovery reads, per Consul's docs
 * (api-docs/health, api-docs/catalog, api-docs/features/blocking):
 * - GET /v1/health/service/:service (`passing`, repeated `tag`, `dc`) and
 *   /v1/catalog/service/:service, with X-Consul-Index, X-Consul-KnownLeader
 *   and X-Consul-LastContact;
 * - blocking queries: `index` = the last X-Consul-Index seen, `wait` (e.g.
 *   "5s", default 5m, capped at 10m): the answer waits until the service's
 *   index moves past it or the wait ends (then the same index comes back);
 * - PUT /v1/catalog/register and /v1/catalog/deregister (the body fields read);
 * - ACLs when `token` is set: X-Consul-Token or ?token= required (403 otherwise);
 * - an unknown `dc` is a 500 "No path to datacenter".
 * Indexes are raft-like: one counter, each write takes the next value; a
 * service's index is the highest ModifyIndex of its instances (or of its
 * last deregistration).
 */
export async function startConsulServer(opts: { token?: string } = {}): Promise<ConsulServer> {
  let raft = 10;
  const instances = new Map<string, Stored>(); // node/id
  const serviceIndex = new Map<string, number>();
  const waiters = new Set<{ service: string; index: number; wake: () => void }>();
  const sockets = new Set<Socket>();
  const healthQueries: string[] = [];
  let stalled = false;

  const touch = (service: string) => {
    serviceIndex.set(service, raft);
    for (const w of [...waiters]) if (w.service === service && raft > w.index) w.wake();
  };

  const api = {
    register(i: ConsulInstance) {
      const k = `${i.node}/${i.id}`;
      const prev = instances.get(k);
      raft++;
      instances.set(k, { ...i, createIndex: prev?.createIndex ?? raft, modifyIndex: raft });
      if (prev && prev.service !== i.service) touch(prev.service);
      touch(i.service);
    },
    deregister(node: string, id: string) {
      const k = `${node}/${id}`;
      const prev = instances.get(k);
      if (!prev) return;
      instances.delete(k);
      raft++;
      touch(prev.service);
    },
    setStatus(node: string, id: string, status: CheckStatus) {
      const prev = instances.get(`${node}/${id}`);
      if (!prev) throw new Error(`no instance ${node}/${id}`);
      api.register({ ...prev, status });
    },
  };

  const send = (res: ServerResponse, status: number, body: unknown, index?: number) => {
    const h: Record<string, string> = { 'content-type': status === 200 ? 'application/json' : 'text/plain; charset=utf-8' };
    if (index !== undefined) Object.assign(h, { 'x-consul-index': String(index), 'x-consul-knownleader': 'true', 'x-consul-lastcontact': '0' });
    res.writeHead(status, h);
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };

  function parseWait(s: string | null): number | undefined {
    if (!s) return 5 * 60_000;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
    if (!m) return undefined;
    const n = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
    return Math.min(n, MAX_WAIT_MS);
  }

  function entries(service: string, q: URLSearchParams) {
    const tags = q.getAll('tag');
    const passing = q.has('passing') && q.get('passing') !== 'false' && q.get('passing') !== '0';
    const out = [];
    for (const i of instances.values()) {
      if (i.service !== service) continue;
      if (!tags.every((t) => (i.tags ?? []).includes(t))) continue;
      const status = i.status ?? 'passing';
      if (passing && status !== 'passing') continue;
      out.push({
        Node: { ID: '', Node: i.node, Address: i.nodeAddress, Datacenter: DC, TaggedAddresses: { lan: i.nodeAddress, wan: i.nodeAddress }, Meta: {}, CreateIndex: i.createIndex, ModifyIndex: i.createIndex },
        Service: {
          ID: i.id,
          Service: i.service,
          Tags: i.tags ?? [],
          Address: i.address ?? '',
          Meta: i.meta ?? {},
          Port: i.port,
          Weights: i.weights ?? { Passing: 1, Warning: 1 },
          EnableTagOverride: false,
          CreateIndex: i.createIndex,
          ModifyIndex: i.modifyIndex,
        },
        Checks: [
          { Node: i.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', CreateIndex: i.createIndex, ModifyIndex: i.createIndex },
          { Node: i.node, CheckID: `service:${i.id}`, Name: `Service '${i.service}' check`, Status: status, ServiceID: i.id, ServiceName: i.service, CreateIndex: i.createIndex, ModifyIndex: i.modifyIndex },
        ],
      });
    }
    return out;
  }

  const handle = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (opts.token) {
      const tok = req.headers['x-consul-token'] ?? u.searchParams.get('token');
      if (tok !== opts.token) return send(res, 403, 'ACL not found');
    }
    if (u.searchParams.has('dc') && u.searchParams.get('dc') !== DC) return send(res, 500, `No path to datacenter`);
    if (req.method === 'PUT' && u.pathname === '/v1/catalog/register') {
      const b = JSON.parse(body) as { Node: string; Address: string; Service: { ID?: string; Service: string; Address?: string; Port: number; Tags?: string[]; Meta?: Record<string, string> }; Check?: { Status?: CheckStatus } };
      api.register({ node: b.Node, nodeAddress: b.Address, id: b.Service.ID ?? b.Service.Service, service: b.Service.Service, address: b.Service.Address, port: b.Service.Port, tags: b.Service.Tags, meta: b.Service.Meta, status: b.Check?.Status });
      return send(res, 200, true);
    }
    if (req.method === 'PUT' && u.pathname === '/v1/catalog/deregister') {
      const b = JSON.parse(body) as { Node: string; ServiceID: string };
      api.deregister(b.Node, b.ServiceID);
      return send(res, 200, true);
    }
    const m = /^\/v1\/(health|catalog)\/service\/([^/]+)$/.exec(u.pathname);
    if (req.method !== 'GET' || !m) return send(res, 404, 'Unsupported endpoint');
    const service = decodeURIComponent(m[2]!);
    if (m[1] === 'health') healthQueries.push(u.search);
    const wait = parseWait(u.searchParams.get('wait'));
    if (wait === undefined) return send(res, 400, `Invalid wait time`);
    const answer = () => {
      const index = Math.max(1, serviceIndex.get(service) ?? raft);
      const list = entries(service, u.searchParams);
      if (m[1] === 'health') return send(res, 200, list, index);
      return send(
        res,
        200,
        list.map((e) => ({ Node: e.Node.Node, Address: e.Node.Address, Datacenter: DC, ServiceID: e.Service.ID, ServiceName: e.Service.Service, ServiceAddress: e.Service.Address, ServicePort: e.Service.Port, ServiceTags: e.Service.Tags, ServiceMeta: e.Service.Meta })),
        index,
      );
    };
    const index = Number(u.searchParams.get('index') ?? 0);
    const current = serviceIndex.get(service) ?? raft;
    if (!(index > 0) || current > index) return answer();
    // Blocking: park until the service moves past `index` or the wait ends.
    const w = {
      service,
      index,
      wake: () => {
        waiters.delete(w);
        clearTimeout(timer);
        answer();
      },
    };
    const timer = setTimeout(w.wake, wait);
    waiters.add(w);
    res.on('close', () => {
      waiters.delete(w);
      clearTimeout(timer);
    });
  };

  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (stalled) return; // read, never answered
      handle(req, res, body);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    ...api,
    healthQueries,
    stall(on) {
      stalled = on;
    },
    parked: () => waiters.size,
    async down() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    up: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve())),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
