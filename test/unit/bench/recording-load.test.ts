import { expect } from 'chai';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runRecording, samplesTsv, wrkCorrected, type RequestSample } from '../../../bench/lib/recording-load.js';

describe('bench: the recording load client and wrk\'s latency correction', () => {
  it('corrects as wrk 4.1 does: a sample of n ≥ 2·expected adds n − expected, n − 2·expected, … while above expected', () => {
    // 4 connections, 8 samples in 1,000 µs: 2 per connection, expected = 500 µs.
    const lat = [100, 100, 100, 100, 100, 100, 100, 2100];
    expect(Array.from(wrkCorrected(lat, 1000, 4))).to.deep.equal([100, 100, 100, 100, 100, 100, 100, 600, 1100, 1600, 2100]);
    // Below 2·expected nothing is added; fractional µs are cut as wrk's integer histogram does.
    expect(Array.from(wrkCorrected([999.7, 10.2], 1000, 1))).to.deep.equal([10, 999]);
  });

  it('one slow response in 800 is the p99 after the correction, not before', () => {
    // 16 connections at 1.5 ms per request for 6 s, one in 800 responses 50 ms (what peak EWMA leaves of the sick endpoint).
    const lat = Array.from({ length: 64_000 }, (_, i) => (i % 800 === 0 ? 50_000 : 1_000));
    const sorted = wrkCorrected(lat, 6e6, 16);
    const p99 = sorted[Math.ceil(0.99 * sorted.length) - 1]!;
    expect(Float64Array.from(lat).sort()[Math.ceil(0.99 * lat.length) - 1]).to.equal(1_000);
    expect(p99).to.be.within(30_000, 45_000);
  });

  const serve = async (): Promise<{ server: http.Server; port: number; seen: { id: string; port: number; at: number }[] }> => {
    const seen: { id: string; port: number; at: number }[] = [];
    const server = http.createServer((req, res) => {
      seen.push({ id: String(req.headers['x-request-id']), port: req.socket.remotePort!, at: performance.now() });
      res.writeHead(200, { 'content-length': '5' });
      // Head and body in two writes: the client must wait for the whole body.
      res.write('hel');
      setImmediate(() => res.end('lo'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as AddressInfo).port, seen };
  };
  const close = async (server: http.Server): Promise<void> => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };

  it('sends N keep-alive connections of GETs with distinct x-request-ids and records each response', async () => {
    const { server, port, seen } = await serve();
    try {
      const r = await runRecording({ host: '127.0.0.1', targets: [{ name: 't', port }], connections: 3, seconds: 10, maxRequests: 30 });
      expect(r.errors).to.deep.equal({ t: 0 });
      expect(r.samples).to.have.length(30);
      expect(new Set(seen.map((s) => s.id)).size).to.equal(30);
      expect(new Set(seen.map((s) => s.port)).size).to.equal(3);
      for (const s of r.samples) {
        expect(s.status).to.equal(200);
        expect(s.target).to.equal('t');
        expect(s.id).to.match(new RegExp(`^t-${s.conn}-\\d+$`));
        expect(s.doneUs).to.be.at.least(s.firstByteUs);
        expect(s.firstByteUs).to.be.at.least(s.sentUs);
      }
      expect(samplesTsv(r.samples).trim().split('\n')).to.have.length(31);
    } finally {
      await close(server);
    }
  });

  it('with several targets, only the target whose turn it is sends, and every target gets turns', async () => {
    const a = await serve();
    const b = await serve();
    try {
      const sliceMs = 40;
      const r = await runRecording({ host: '127.0.0.1', targets: [{ name: 'a', port: a.port }, { name: 'b', port: b.port }], connections: 2, seconds: 0.4, sliceMs });
      const of = (t: string): RequestSample[] => r.samples.filter((s) => s.target === t);
      expect(of('a').length).to.be.greaterThan(10);
      expect(of('b').length).to.be.greaterThan(10);
      for (const s of r.samples) expect(Math.floor(s.sentUs / (sliceMs * 1000)) % 2).to.equal(s.target === 'a' ? 0 : 1);
      // Both targets kept their connections open across the turns.
      expect(new Set(a.seen.map((s) => s.port)).size).to.equal(2);
      expect(new Set(b.seen.map((s) => s.port)).size).to.equal(2);
      expect(r.seconds).to.be.within(0.4, 2);
    } finally {
      await close(a.server);
      await close(b.server);
    }
  });
});
