import { expect } from 'chai';
import { fromJson } from '@bufbuild/protobuf';
import { LocalRateLimitSchema } from '../../../src/gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import { durationMs } from '../../../src/core/duration.js';
import { shareLocalRateLimit, shareOf } from '../../../sidecar/workers/rate-limit-share.js';
import { mergeClusters } from '../../../sidecar/workers/merge.js';
import { parseConcurrency } from '../../../src/cli/sidecar-command.js';
import { UsageError } from '../../../src/cli/flags.js';
import { LiveStats, liveRows, sumLiveCounts } from '../../../src/observability/live-stats.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('sidecar workers (--concurrency)', () => {
  describe('shareOf', () => {
    it('splits a limit so that the workers\' parts add up to it exactly, the first ones taking the remainder', () => {
      for (const [total, count] of [[10, 3], [7, 2], [100, 4], [5, 5], [9, 8]] as const) {
        const parts = Array.from({ length: count }, (_, index) => shareOf(total, { index, count }));
        expect(parts.reduce((a, b) => a + b, 0), `${total}/${count}`).to.equal(total);
        expect(Math.max(...parts) - Math.min(...parts)).to.be.at.most(1);
        expect(parts).to.deep.equal([...parts].sort((a, b) => b - a));
      }
    });
    it('gives every worker at least 1 when the limit is smaller than the number of workers', () => {
      expect(Array.from({ length: 4 }, (_, index) => shareOf(2, { index, count: 4 }))).to.deep.equal([1, 1, 1, 1]);
    });
  });

  it('shares a localRateLimit config: windows and bucket sizes split, buckets refill N times slower; the original is untouched', () => {
    const cfg = fromJson(LocalRateLimitSchema, {
      limits: [
        { name: 'tb', key: { constant: {} }, tokenBucket: { maxTokens: 10, tokensPerFill: 2, fillInterval: '1s' } },
        { name: 'fw', key: { constant: {} }, fixedWindow: { requests: 7, window: '60s' } },
        { name: 'sw', key: { constant: {} }, slidingWindow: { requests: 3, window: '60s' } },
      ],
    });
    const w1 = shareLocalRateLimit(cfg, { index: 1, count: 2 });
    const [tb, fw, sw] = w1.limits;
    expect(tb!.algorithm.case === 'tokenBucket' && [tb!.algorithm.value.maxTokens, tb!.algorithm.value.tokensPerFill, durationMs(tb!.algorithm.value.fillInterval, 0)]).to.deep.equal([5, 2, 2000]);
    expect(fw!.algorithm.case === 'fixedWindow' && fw!.algorithm.value.requests).to.equal(3);
    expect(sw!.algorithm.case === 'slidingWindow' && sw!.algorithm.value.requests).to.equal(1);
    const w0 = shareLocalRateLimit(cfg, { index: 0, count: 2 });
    expect(w0.limits[1]!.algorithm.case === 'fixedWindow' && w0.limits[1]!.algorithm.value.requests).to.equal(4);
    expect(cfg.limits[0]!.algorithm.case === 'tokenBucket' && cfg.limits[0]!.algorithm.value.maxTokens).to.equal(10);
    expect(shareLocalRateLimit(cfg, { index: 0, count: 1 })).to.equal(cfg);
  });

  it('merges /clusters: load summed, success rate over the summed totals, per-worker health listed, disagreement shown as mixed', () => {
    const view = (health: string, active: number, total: number, successRate: number | null) => ({
      version: 'v1',
      clusters: { web: { lbPolicy: 'ROUND_ROBIN', activeRequests: active, pendingRequests: 0, activeRetries: 1, openCircuitBreakers: [] as string[], endpoints: [{ address: '127.0.0.1:80', health, activeRequests: active, totalRequests: total, successRate, ewmaLatencyMs: null, ejections: 0, state: 'ready' }] } },
    });
    const m = mergeClusters([
      { worker: 0, pid: 10, body: view('healthy', 2, 30, 1) },
      { worker: 1, pid: 11, body: view('unhealthy', 1, 10, 0.5) },
    ]) as { workers: number; clusters: { web: { activeRequests: number; activeRetries: number; endpoints: Record<string, unknown>[] } } };
    expect(m.workers).to.equal(2);
    expect(m.clusters.web.activeRequests).to.equal(3);
    expect(m.clusters.web.activeRetries).to.equal(2);
    const e = m.clusters.web.endpoints[0]!;
    expect(e['totalRequests']).to.equal(40);
    expect(e['successRate']).to.equal(35 / 40);
    expect(e['health']).to.equal('mixed');
    expect(e['state']).to.equal('ready');
    expect((e['workers'] as { pid: number; health: string }[]).map((w) => [w.pid, w.health])).to.deep.equal([[10, 'healthy'], [11, 'unhealthy']]);
  });

  it('sums the workers\' live windows into the rows one window fed every request would give (percentiles included)', () => {
    const clock = new FakeClock();
    const [a, b, all] = [new LiveStats(clock), new LiveStats(clock), new LiveStats(clock)];
    for (let i = 0; i < 50; i++) {
      const s = { route: i % 3 ? 'r1' : 'r2', cluster: 'c', upstream: undefined, path: '/p', status: i % 7 ? 200 : 503, grpc_status: undefined, duration_ms: 1 + i * 3 };
      (i % 4 ? a : b).record(s);
      all.record(s);
    }
    expect(liveRows(sumLiveCounts([a.counts('route'), b.counts('route')]), a.windowMs)).to.deep.equal(all.snapshot('route'));
  });

  it('parses --concurrency over OUTRIGGER_CONCURRENCY over the CPUs, refusing what is not a whole number ≥ 1', () => {
    expect(parseConcurrency('3', '2')).to.equal(3);
    expect(parseConcurrency(undefined, '2')).to.equal(2);
    expect(parseConcurrency(undefined, undefined)).to.be.at.least(1);
    expect(() => parseConcurrency('0', undefined)).to.throw(UsageError, '--concurrency');
    expect(() => parseConcurrency(undefined, 'two')).to.throw(UsageError, 'OUTRIGGER_CONCURRENCY');
  });
});
