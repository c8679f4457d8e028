import { expect } from 'chai';
import http2 from 'node:http2';
import { Agent, request } from 'undici';
import { startH1Echo, type Started } from '../support/backends.js';
import { backendOf } from '../support/backend-of.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/** A static HTTP/1.1 cluster whose endpoints carry weights. */
function weightedCluster(name: string, endpoints: { port: number; weight: number }[]): Doc {
  return cluster(name, [], 'UPSTREAM_PROTOCOL_HTTP1', {
    endpoints: endpoints.map((e) => ({ address: { host: '127.0.0.1', port: e.port }, weight: e.weight })),
  });
}

/** Which backend answers each of `n` sequential requests, as one letter each (backends are named a, b). */
async function sequence(port: number, path: string, n: number): Promise<string> {
  let out = '';
  for (let i = 0; i < n; i++) out += await backendOf(port, path);
  return out;
}

function h2Backend(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', reject);
    const r = c.request({ ':method': 'GET', ':path': path });
    let body = '';
    r.on('data', (d: Buffer) => (body += d.toString()));
    r.on('end', () => {
      c.close();
      resolve((JSON.parse(body) as { backend: string }).backend);
    });
    r.on('error', reject);
  });
}

describe('Load balancing through the sidecar: endpoint weights', function () {
  let a: Started<unknown>;
  let b: Started<unknown>;
  let sc: TestSidecar;

  beforeEach(async () => {
    // Backends are named by one letter so a run of answers reads as a string.
    a = await startH1Echo('a');
    b = await startH1Echo('b');
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/weighted/', 'weighted'), prefixRoute('/equal/', 'equal'), prefixRoute('/reversed/', 'reversed'), prefixRoute('/eds/', 'eds')]),
      weightedCluster('weighted', [
        { port: a.port, weight: 3 },
        { port: b.port, weight: 1 },
      ]),
      weightedCluster('equal', [
        { port: a.port, weight: 2 },
        { port: b.port, weight: 2 },
      ]),
      cluster('eds', [], 'UPSTREAM_PROTOCOL_HTTP1', { type: 'DISCOVERY_TYPE_EDS', endpoints: [] }),
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'ClusterLoadAssignment',
        metadata: { name: 'eds' },
        spec: {
          endpoints: [
            { address: { host: '127.0.0.1', port: a.port }, weight: 1 },
            { address: { host: '127.0.0.1', port: b.port }, weight: 2 },
          ],
        },
      },
      weightedCluster('reversed', [
        { port: a.port, weight: 1 },
        { port: b.port, weight: 3 },
      ]),
    ]);
  });
  afterEach(async () => {
    await sc.close();
    await a.close();
    await b.close();
  });

  it('weights 3 and 1: 40 sequential requests split exactly 30/10 in the smooth order a a b a', async () => {
    const seq = await sequence(sc.port(), '/weighted/x', 40);
    expect(seq).to.equal('aaba'.repeat(10));
    expect(seq.split('').filter((c) => c === 'a')).to.have.length(30);
    expect(seq).not.to.include('bb');
    expect(seq).not.to.include('aaaa');
    // Every request was logged against the endpoint that answered it.
    const lines = (): Record<string, unknown>[] => sc.access.filter((l) => l['route'] === 'weighted-weighted-');
    await waitFor(() => lines().length === 40, '40 access-log lines');
    const ups = lines().map((l) => (l['upstream'] === `127.0.0.1:${a.port}` ? 'a' : l['upstream'] === `127.0.0.1:${b.port}` ? 'b' : '?'));
    expect(ups.join('')).to.equal(seq);
  });

  it('weights 1 and 3: the heavier second endpoint gets three of every four, spread out', async () => {
    const seq = await sequence(sc.port(), '/reversed/x', 20);
    expect(seq).to.equal('babb'.repeat(5));
  });

  it('EDS endpoints carry their weights too (1 and 2: b a b)', async () => {
    expect(await sequence(sc.port(), '/eds/x', 12)).to.equal('bab'.repeat(4));
  });

  it('equal weights alternate', async () => {
    expect(await sequence(sc.port(), '/equal/x', 10)).to.equal('ab'.repeat(5));
  });

  it('each cluster keeps its own rotation, and HTTP/1.1 and HTTP/2 clients share it', async () => {
    const port = sc.port();
    let weighted = '';
    let equal = '';
    for (let i = 0; i < 8; i++) {
      // Interleave clusters and downstream protocols: neither disturbs the other cluster's order.
      weighted += i % 2 === 0 ? await backendOf(port, '/weighted/x') : await h2Backend(port, '/weighted/x');
      equal += await backendOf(port, '/equal/x');
    }
    expect(weighted).to.equal('aaba'.repeat(2));
    expect(equal).to.equal('ab'.repeat(4));
  });

  it('one keep-alive connection sees the same order (the picker is per cluster, not per connection)', async () => {
    const port = sc.port();
    const agent = new Agent({ connections: 1 });
    let seq = '';
    try {
      for (let i = 0; i < 8; i++) {
        const res = await request(`http://127.0.0.1:${port}/weighted/x`, { dispatcher: agent });
        seq += (JSON.parse(await res.body.text()) as { backend: string }).backend;
      }
    } finally {
      await agent.close();
    }
    expect(seq).to.equal('aaba'.repeat(2));
  });
});
