import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/** A backend that holds every request until `release()`. */
async function stallingBackend(): Promise<{ port: number; held: number; release(): void; close(): Promise<void> }> {
  const waiting: http.ServerResponse[] = [];
  const srv = http.createServer((_req, res) => waiting.push(res));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    get held() {
      return waiting.length;
    },
    release: () => waiting.splice(0).forEach((res) => res.end('done')),
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe('circuit breakers', () => {
  for (const [limit, breakers] of [
    ['max_requests', { maxRequests: 2 }],
    ['max_connections', { maxConnections: 2, maxRequests: 100 }],
  ] as const) {
    it(`over ${limit}: a local 503 with flag UO and x-outrigger-overloaded, counted; admitted again once below`, async () => {
      const be = await stallingBackend();
      const sc = await startTestSidecar([
        listener('main'),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1', { circuitBreakers: breakers }),
      ]);
      const url = `http://127.0.0.1:${sc.port()}/x`;
      try {
        const first = [fetch(url), fetch(url)];
        await waitFor(() => be.held === 2, 'two requests at the backend');
        const refused = await fetch(url);
        expect(refused.status).to.equal(503);
        expect(refused.headers.get('x-outrigger-local-reply')).to.equal('UO');
        expect(refused.headers.get('x-outrigger-overloaded')).to.equal('true');
        expect(await refused.text()).to.equal(`upstream overflow: c: ${limit}\n`);
        be.release();
        for (const r of await Promise.all(first)) expect(await r.text()).to.equal('done');
        await waitFor(() => sc.access.length >= 3, 'access log');
        const again = fetch(url);
        await waitFor(() => be.held === 1, 'the next request at the backend');
        be.release();
        expect((await again).status).to.equal(200);
        expect(await sc.metrics()).to.include(`outrigger_upstream_overflow_total{cluster="c",limit="${limit}"} 1`);
        expect(sc.access.some((l) => l.flags === 'UO' && l.status === 503)).to.equal(true);
      } finally {
        be.release();
        await sc.close();
        await be.close();
      }
    });
  }

  for (const protocol of ['UPSTREAM_PROTOCOL_HTTP2', 'UPSTREAM_PROTOCOL_HTTP1'] as const) {
    it(`over max_pending_requests (${protocol}): requests waiting for their connection are bounded; the next gets UO (c)`, async () => {
      const hole = await blackhole();
      const sc = await startTestSidecar([
        listener('main'),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [hole.port], protocol, { connectTimeout: '30s', circuitBreakers: { maxPendingRequests: 2 } }),
      ]);
      const url = `http://127.0.0.1:${sc.port()}/x`;
      const runtime = sc.sidecar.listeners.current()!.clusters.get('c')!;
      try {
        const waiting = [fetch(url), fetch(url)];
        await waitFor(() => runtime.pendingTotal === 2, 'two requests waiting for their connection');
        expect(await sc.metrics()).to.include('outrigger_upstream_circuit_breaker_open{cluster="c",limit="max_pending_requests"} 1');
        const refused = await fetch(url);
        expect(refused.status).to.equal(503);
        expect(refused.headers.get('x-outrigger-local-reply')).to.equal('UO');
        expect(refused.headers.get('x-outrigger-overloaded')).to.equal('true');
        expect(await refused.text()).to.equal('upstream overflow: c: max_pending_requests\n');
        expect(await sc.metrics()).to.include('outrigger_upstream_overflow_total{cluster="c",limit="max_pending_requests"} 1');
        // The peer goes away: the waiting connects are refused (UF) and nothing is pending any more.
        hole.kill();
        for (const r of await Promise.all(waiting)) expect(r.status).to.equal(503);
        expect(runtime.pendingTotal).to.equal(0);
        expect(await sc.metrics()).to.include('outrigger_upstream_circuit_breaker_open{cluster="c",limit="max_pending_requests"} 0');
        await waitFor(() => sc.access.length === 3, 'access log');
        expect(sc.access.map((l) => l.flags).sort()).to.deep.equal(['UF', 'UF', 'UO']);
      } finally {
        hole.kill();
        await sc.close();
      }
    });
  }
});

/**
 * A real peer whose connections hang in the handshake: a child process that
 * listens with a backlog of 1 and never accepts (its event loop is blocked),
 * with the accept queue's two slots (Linux: backlog + 1) taken by connections
 * of ours, so every further SYN is dropped and a connect waits until its timeout.
 * (Node turns a backlog of 0 into its default, 511.)
 */
async function blackhole(): Promise<{ port: number; kill(): void }> {
  const script =
    "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{" +
    "process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0)})";
  const proc: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', (l) => resolve(Number(l)));
    proc.once('exit', () => reject(new Error('blackhole exited')));
  });
  // Take the accept queue's slots.
  const fillers = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
  for (const f of fillers) {
    f.on('error', () => {});
    await new Promise<void>((r) => f.once('connect', () => r()));
  }
  return {
    port,
    kill: () => {
      for (const f of fillers) f.destroy();
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
