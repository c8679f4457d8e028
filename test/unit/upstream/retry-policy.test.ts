import { create, fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom, type Random } from '../../../src/core/random.js';
import { ClusterSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { RouteActionSchema } from '../../../src/gen/outrigger/config/v1/route_pb.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { retryBackoffMs } from '../../../src/proxy/upstream/retry/backoff.js';
import { retryAllowance } from '../../../src/proxy/upstream/retry/retry-budget.js';
import {
  compileRouteRetries,
  nonFatalAnswer,
  planFor,
  retriableAnswer,
  retriableFailure,
  type RetryPlan,
} from '../../../src/proxy/upstream/retry/retry-policy.js';
import { FakeClock } from '../../support/fake-clock.js';

const compile = (action: unknown) => compileRouteRetries(fromJson(RouteActionSchema, { cluster: 'c', ...(action as object) } as never))!;
const retryPlan = (retryPolicy: unknown): RetryPlan => compile({ retryPolicy }).retry!.retry!;
/** A Random that returns the given values in turn. */
const fixed = (...values: number[]): Random => {
  let i = 0;
  return { next: () => values[i++ % values.length]!, int: (n) => Math.floor(values[i++ % values.length]! * n) };
};

describe('retry backoff (full jitter, injected random)', () => {
  it('the n-th retry waits uniformly in [0, min(max, base × 2^(n−1)))', () => {
    // random → 0.999…: just under the ceiling; the ceiling doubles and stops at max.
    const top = fixed(0.999999);
    expect([1, 2, 3, 4, 5].map((n) => Math.round(retryBackoffMs(n, 25, 250, top)))).to.deep.equal([25, 50, 100, 200, 250]);
    expect(retryBackoffMs(3, 25, 250, fixed(0))).to.equal(0);
    expect(retryBackoffMs(2, 25, 250, fixed(0.5))).to.equal(25);
  });

  it('is spread over the whole interval (seeded: mean ≈ half the ceiling, every decile hit)', () => {
    const r = seededRandom(7);
    const samples = Array.from({ length: 20_000 }, () => retryBackoffMs(4, 25, 250, r));
    expect(Math.max(...samples)).to.be.lessThan(200);
    expect(Math.min(...samples)).to.be.at.least(0);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(Math.abs(mean - 100)).to.be.lessThan(2);
    const deciles = new Set(samples.map((s) => Math.floor(s / 20)));
    expect(deciles.size).to.equal(10);
  });
});

describe('retry budget', () => {
  it('allows max(minRetryConcurrency, ⌊percent % of requests in flight⌋); without a budget, maxRetries', () => {
    expect(retryAllowance(100, { percent: 20, minConcurrency: 3 }, 3)).to.equal(20);
    expect(retryAllowance(10, { percent: 20, minConcurrency: 3 }, 3)).to.equal(3);
    expect(retryAllowance(19, { percent: 10, minConcurrency: 0 }, 3)).to.equal(1);
    expect(retryAllowance(1000, undefined, 7)).to.equal(7);
  });

  it('a cluster hands out retry slots up to the allowance and takes them back', () => {
    const clock = new FakeClock();
    const c = ClusterRuntime.build(
      fromJson(ClusterSchema, { name: 'c', type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: 1 } }], circuitBreakers: { maxRetries: 2 } } as never),
      undefined,
      { clock, random: seededRandom(1) },
    );
    expect(c.acquireRetry(undefined)).to.equal(undefined);
    expect(c.acquireRetry(undefined)).to.equal(undefined);
    expect(c.acquireRetry(undefined)).to.equal('max_retries');
    expect(c.openBreakers().max_retries).to.equal(true);
    c.releaseRetry();
    expect(c.openBreakers().max_retries).to.equal(false);
    expect(c.acquireRetry(undefined)).to.equal(undefined);
    // A budget of 50 % with 10 attempts in flight allows 5 retries (the 2 taken count).
    const attempts = Array.from({ length: 10 }, () => c.beginAttempt('127.0.0.1:1'));
    const budget = { percent: 50, minConcurrency: 1 };
    expect([1, 2, 3].map(() => c.acquireRetry(budget))).to.deep.equal([undefined, undefined, undefined]);
    expect(c.acquireRetry(budget)).to.equal('retry_budget');
    for (const a of attempts) a.end({ status: 200, flag: undefined, grpcStatus: undefined });
    expect(c.acquireRetry(budget)).to.equal('retry_budget'); // 5 in flight, the floor is 1
  });
});

describe('retry and hedge policies', () => {
  it('compiles defaults: one retry, 25 ms base, 10× max, previous hosts, Istio conditions, 64 KiB buffer', () => {
    const r = compile({ retryPolicy: {} });
    const p = r.retry!.retry!;
    expect(p.numRetries).to.equal(1);
    expect(p.baseIntervalMs).to.equal(25);
    expect(p.maxIntervalMs).to.equal(250);
    expect(p.previousHosts).to.equal(true);
    expect(p.perTryTimeoutMs).to.equal(0);
    expect(p.budget).to.equal(undefined);
    expect(r.retry!.bufferLimitBytes).to.equal(65536);
    expect(retriableFailure(p, 'connect_failure', false)).to.equal(true);
    expect(retriableFailure(p, 'refused', false)).to.equal(true);
    expect(retriableFailure(p, 'reset', false)).to.equal(false);
    expect(retriableAnswer(p, 200, 14)).to.equal(true); // unavailable
    expect(retriableAnswer(p, 200, 1)).to.equal(true); // cancelled
    expect(retriableAnswer(p, 503, undefined)).to.equal(false);
    expect(r.hedge).to.equal(undefined);
    expect(compile({ retryPolicy: { retryBudget: {} } }).retry!.budget).to.deep.equal({ percent: 20, minConcurrency: 3 });
  });

  it('reads Envoy words: 5xx, gateway-error, reset cover every failure; retriable-4xx is 409; status codes need their word', () => {
    const p = retryPlan({ retryOn: ['5xx'] });
    for (const f of ['connect_failure', 'reset', 'refused', 'timeout'] as const) expect(retriableFailure(p, f, false), f).to.equal(true);
    expect([500, 502, 599, 409, 429, 200].map((s) => retriableAnswer(p, s, undefined))).to.deep.equal([true, true, true, false, false, false]);
    const g = retryPlan({ retryOn: ['gateway-error'] });
    expect([500, 502, 503, 504].map((s) => retriableAnswer(g, s, undefined))).to.deep.equal([false, true, true, true]);
    const q = retryPlan({ retryOn: ['retriable-4xx,retriable-status-codes'], retriableStatusCodes: [429] });
    expect([409, 429, 503].map((s) => retriableAnswer(q, s, undefined))).to.deep.equal([true, true, false]);
    expect(retriableAnswer(retryPlan({ retriableStatusCodes: [429], retryOn: ['reset'] }), 429, undefined)).to.equal(false);
    const gr = retryPlan({ retryOn: ['deadline-exceeded', 'internal', 'resource-exhausted'] });
    expect([1, 4, 8, 13, 14].map((c) => retriableAnswer(gr, 200, c))).to.deep.equal([false, true, true, true, false]);
    expect(retriableFailure(gr, 'timeout', true)).to.equal(true);
    expect(retriableFailure(gr, 'timeout', false)).to.equal(false);
    expect(retriableFailure(retryPlan({ retryOn: ['refused-stream'] }), 'reset', false)).to.equal(false);
  });

  it('hedging: non-fatal codes by grpc-status, HTTP statuses by their gRPC mapping, successes always final', () => {
    const h = compile({ hedgePolicy: { maxAttempts: 3, nonFatalStatusCodes: ['UNAVAILABLE', '13'] } }).hedge!.hedge!;
    expect(h.maxAttempts).to.equal(3);
    expect(h.delayMs).to.equal(0);
    expect(nonFatalAnswer(h, 200, 14)).to.equal(true);
    expect(nonFatalAnswer(h, 200, 13)).to.equal(true);
    expect(nonFatalAnswer(h, 200, 5)).to.equal(false);
    expect(nonFatalAnswer(h, 503, undefined)).to.equal(true); // 503 → UNAVAILABLE
    expect(nonFatalAnswer(h, 404, undefined)).to.equal(false);
    expect(nonFatalAnswer(h, 200, undefined)).to.equal(false);
  });

  it('chooses hedging for requests safe to repeat, the retry policy for the others', () => {
    const both = compile({ retryPolicy: {}, hedgePolicy: { maxAttempts: 2 } });
    expect(planFor(both, () => true)).to.equal(both.hedge);
    expect(planFor(both, () => false)).to.equal(both.retry);
    const marked = compile({ hedgePolicy: { maxAttempts: 2 }, idempotent: true });
    expect(planFor(marked, () => false)).to.equal(marked.hedge);
    expect(planFor(compile({ hedgePolicy: { maxAttempts: 2 } }), () => false)).to.equal(undefined);
    expect(planFor(undefined, () => true)).to.equal(undefined);
    expect(create(RouteActionSchema).retryPolicy).to.equal(undefined);
  });
});
