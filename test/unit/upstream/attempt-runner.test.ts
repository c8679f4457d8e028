import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import type { IncomingHttpHeaders } from 'node:http2';
import { seededRandom } from '../../../src/core/random.js';
import { ClusterSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { RouteActionSchema } from '../../../src/gen/outrigger/config/v1/route_pb.js';
import type { AttemptKind, AttemptResult, UpstreamAttempt, UpstreamMetrics } from '../../../src/proxy/upstream/attempt.js';
import type { CallEvents, CallFailure, UpstreamCall, UpstreamHead } from '../../../src/proxy/upstream/calls/upstream-call.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { AttemptRunner, type RunnerMark } from '../../../src/proxy/upstream/retry/attempt-runner.js';
import { compileRouteRetries, type RunnerPlan } from '../../../src/proxy/upstream/retry/retry-policy.js';
import type { Timer } from '../../../src/core/clock.js';
import { FakeClock } from '../../support/fake-clock.js';

/** An upstream call the test drives by hand. */
class FakeCall implements UpstreamCall {
  tryTimer: Timer | undefined = undefined;
  readonly written: string[] = [];
  ended = false;
  cancelled = false;
  private over = false;
  constructor(
    public events: CallEvents,
    readonly attempt: UpstreamAttempt,
    readonly headers: Record<string, unknown>,
    readonly endStream: boolean,
  ) {}
  get closed(): boolean {
    return this.over;
  }
  peerPrincipal(): string | undefined {
    return undefined;
  }
  write(c: Buffer): boolean {
    this.written.push(c.toString());
    return true;
  }
  end(): void {
    this.ended = true;
  }
  pause(): void {}
  resume(): void {}
  cancel(): void {
    this.over = true;
    this.cancelled = true;
  }
  head(status: number, headers: IncomingHttpHeaders = {}, endStream = false): void {
    this.events.onHead(this, { status, headers: { ':status': String(status), ...headers } as IncomingHttpHeaders, endStream });
  }
  fail(kind: CallFailure['kind']): void {
    this.over = true;
    this.events.onFail(this, { kind, detail: kind }, false);
  }
  get ep(): string {
    return this.attempt.endpoint.key;
  }
  get kind(): AttemptKind {
    return this.attempt.kind;
  }
}

const PORTS = [8001, 8002, 8003];

function setup(action: unknown, o: { hasBody?: boolean; maxRetries?: number; replay?: number } = {}) {
  const clock = new FakeClock();
  const cluster = ClusterRuntime.build(
    fromJson(ClusterSchema, {
      name: 'c',
      type: 'DISCOVERY_TYPE_STATIC',
      endpoints: PORTS.map((port) => ({ address: { host: '127.0.0.1', port } })),
      ...(o.maxRetries !== undefined ? { circuitBreakers: { maxRetries: o.maxRetries } } : {}),
    } as never),
    undefined,
    { clock, random: seededRandom(5) },
  );
  const r = action === undefined ? undefined : compileRouteRetries(fromJson(RouteActionSchema, { cluster: 'c', ...(action as object) } as never));
  const plan: RunnerPlan | undefined = r === undefined ? undefined : (r.hedge ?? r.retry);
  const calls: FakeCall[] = [];
  const results: string[] = [];
  const events: string[] = [];
  const metrics: UpstreamMetrics = {
    upstreamAttempt: (_c, res: AttemptResult) => void results.push(res),
    upstreamRetry: (_c, kind) => void events.push(`send ${kind}`),
    upstreamOverflow: (_c, limit) => void events.push(`overflow ${limit}`),
  };
  let answer: { call: FakeCall; head: UpstreamHead; mark: RunnerMark } | undefined;
  let failure: { f: CallFailure; mark: RunnerMark } | undefined;
  let drains = 0;
  const sink: CallEvents = { onHead() {}, onData() {}, onTrailers() {}, onEnd() {}, onFail() {}, onWritable() {} };
  const runner = new AttemptRunner({ metrics }, cluster, cluster.endpoints[0]!, { authority: 'x', headers: {}, clientAddress: '', scheme: 'http', originalDst: undefined, hash: undefined }, plan, false, o.hasBody ?? false, o.replay ?? 0, {
    headersFor: (index) => ({ index }),
    open(attempt, headers, endStream, ev) {
      const c = new FakeCall(ev, attempt, headers, endStream);
      calls.push(c);
      return c;
    },
    commit(call, head, mark) {
      answer = { call: call as FakeCall, head, mark };
      return sink;
    },
    fail(f, mark) {
      failure = { f, mark };
    },
    drained() {
      drains++;
    },
  });
  return {
    clock,
    cluster,
    runner,
    calls,
    results,
    events,
    get answer() {
      return answer;
    },
    get failure() {
      return failure;
    },
    get drains() {
      return drains;
    },
  };
}

describe('AttemptRunner (fake calls, fake clock, seeded random)', () => {
  it('one attempt and no buffering without a plan; its head is the answer', () => {
    const t = setup(undefined);
    t.runner.start();
    expect(t.calls).to.have.length(1);
    expect(t.calls[0]!.endStream).to.equal(true);
    expect(t.calls[0]!.headers).to.deep.equal({ index: 0 });
    t.calls[0]!.head(503);
    expect(t.answer!.call).to.equal(t.calls[0]);
    expect(t.answer!.mark).to.equal(undefined);
  });

  it('retries a 503 on another endpoint after a backoff within [0, base), then takes the 200', () => {
    const t = setup({ retryPolicy: { retryOn: ['5xx'], numRetries: 2, retryBackOff: { baseInterval: '0.1s' } } });
    t.runner.start();
    t.calls[0]!.head(503);
    expect(t.answer).to.equal(undefined);
    expect(t.calls[0]!.cancelled).to.equal(true);
    expect(t.results).to.deep.equal(['server_error']);
    expect(t.calls).to.have.length(1); // waiting for the backoff
    t.clock.advance(100);
    expect(t.calls).to.have.length(2);
    const retry = t.calls[1]!;
    expect(retry.kind).to.equal('retry');
    expect(retry.headers).to.deep.equal({ index: 1 });
    expect(retry.ep).to.not.equal(t.calls[0]!.ep);
    expect(t.cluster.activeRetries).to.equal(1);
    retry.head(200);
    expect(t.answer!.call).to.equal(retry);
    expect(t.events).to.deep.equal(['send retry']);
    retry.attempt.end({ status: 200, flag: undefined, grpcStatus: undefined });
    expect(t.cluster.activeRetries).to.equal(0);
  });

  it('exhausted: the last answer is relayed, marked URX; every attempt went to a different endpoint', () => {
    const t = setup({ retryPolicy: { retryOn: ['gateway-error'], numRetries: 2 } });
    t.runner.start();
    t.calls[0]!.head(502);
    t.clock.advance(1000);
    t.calls[1]!.fail('connect_failure');
    t.clock.advance(1000);
    t.calls[2]!.head(503);
    expect(new Set(t.calls.map((c) => c.ep)).size).to.equal(3);
    expect(t.answer!.call).to.equal(t.calls[2]);
    expect(t.answer!.mark).to.deep.equal({ kind: 'exhausted' });
    expect(t.results).to.deep.equal(['server_error', 'connect_failure']);
  });

  it('a failure the policy does not cover is answered at once; exhausted failures are marked', () => {
    const t = setup({ retryPolicy: { retryOn: ['connect-failure'] } });
    t.runner.start();
    t.calls[0]!.fail('reset');
    expect(t.failure!.f.kind).to.equal('reset');
    expect(t.failure!.mark).to.equal(undefined);
    const u = setup({ retryPolicy: { retryOn: ['connect-failure'], numRetries: 1 } });
    u.runner.start();
    u.calls[0]!.fail('connect_failure');
    u.clock.advance(1000);
    u.calls[1]!.fail('connect_failure');
    expect(u.failure!.mark).to.deep.equal({ kind: 'exhausted' });
  });

  it('the retry budget stops retries: the answer is relayed marked overflow (UO), counted', () => {
    const t = setup({ retryPolicy: { retryOn: ['5xx'], retryBudget: { budgetPercent: 0, minRetryConcurrency: 0 } } });
    t.runner.start();
    t.calls[0]!.head(500);
    expect(t.answer!.mark).to.deep.equal({ kind: 'overflow', limit: 'retry_budget' });
    expect(t.events).to.deep.equal(['overflow retry_budget']);
    const m = setup({ retryPolicy: { retryOn: ['5xx'] } }, { maxRetries: 0 });
    m.runner.start();
    m.calls[0]!.fail('reset');
    expect(m.failure!.mark).to.deep.equal({ kind: 'overflow', limit: 'max_retries' });
  });

  it('replays the buffered body into a retry, and stops retrying once the body outgrew the buffer', () => {
    const t = setup({ retryPolicy: { retryOn: ['5xx'], numRetries: 3 }, perRequestBufferLimitBytes: 8 }, { hasBody: true });
    t.runner.start();
    expect(t.calls[0]!.endStream).to.equal(false);
    t.runner.write(Buffer.from('abcd'));
    t.runner.end();
    t.calls[0]!.head(500);
    t.clock.advance(1000);
    expect(t.calls[1]!.written).to.deep.equal(['abcd']);
    expect(t.calls[1]!.ended).to.equal(true);
    const big = setup({ retryPolicy: { retryOn: ['5xx'], numRetries: 3 }, perRequestBufferLimitBytes: 8 }, { hasBody: true });
    big.runner.start();
    big.runner.write(Buffer.from('abcdef'));
    big.runner.write(Buffer.from('ghijkl'));
    big.calls[0]!.head(500);
    expect(big.answer!.call).to.equal(big.calls[0]);
    expect(big.answer!.mark).to.equal(undefined);
  });

  it('holds the body during a backoff and resumes it when the retry starts', () => {
    const t = setup({ retryPolicy: { retryOn: ['5xx'] } }, { hasBody: true });
    t.runner.start();
    t.runner.write(Buffer.from('a'));
    t.calls[0]!.head(500);
    expect(t.runner.write(Buffer.from('b'))).to.equal(false);
    expect(t.drains).to.equal(0);
    t.clock.advance(1000);
    expect(t.calls[1]!.written).to.deep.equal(['a', 'b']);
    expect(t.drains).to.equal(1);
    t.runner.write(Buffer.from('c'));
    expect(t.calls[1]!.written).to.deep.equal(['a', 'b', 'c']);
  });

  it('per-try timeout: the attempt is cancelled (UT) and retried', () => {
    const t = setup({ retryPolicy: { retryOn: ['reset'], perTryTimeout: '0.2s' } });
    t.runner.start();
    t.clock.advance(199);
    expect(t.calls).to.have.length(1);
    t.clock.advance(1);
    expect(t.calls[0]!.cancelled).to.equal(true);
    expect(t.results).to.deep.equal(['timeout']);
    t.clock.advance(1000);
    expect(t.calls).to.have.length(2);
    t.clock.advance(200);
    expect(t.failure!.f.kind).to.equal('timeout');
    expect(t.failure!.mark).to.deep.equal({ kind: 'exhausted' });
  });

  it('a refused stream is replayed on the same endpoint, not counted as a retry, at most 4 times', () => {
    const t = setup(undefined, { hasBody: false, replay: 65536 });
    t.runner.start();
    for (let i = 0; i < 4; i++) t.calls[i]!.fail('refused');
    expect(t.calls.map((c) => c.kind)).to.deep.equal(['first', 'replay', 'replay', 'replay', 'replay']);
    expect(new Set(t.calls.map((c) => c.ep)).size).to.equal(1);
    t.calls[4]!.fail('refused');
    expect(t.failure!.f.kind).to.equal('refused');
    expect(t.results).to.deep.equal(['refused', 'refused', 'refused', 'refused', 'refused']);
  });

  it('hedging: a second attempt after hedgingDelay; the first final answer wins, the other is cancelled', () => {
    const t = setup({ hedgePolicy: { maxAttempts: 3, hedgingDelay: '0.05s' } });
    t.runner.start();
    expect(t.calls).to.have.length(1);
    t.clock.advance(50);
    expect(t.calls.map((c) => c.kind)).to.deep.equal(['first', 'hedge']);
    expect(t.calls[1]!.ep).to.not.equal(t.calls[0]!.ep);
    t.calls[1]!.head(200);
    expect(t.answer!.call).to.equal(t.calls[1]);
    expect(t.calls[0]!.cancelled).to.equal(true);
    t.clock.advance(1000);
    expect(t.calls).to.have.length(2); // no third hedge after the answer
    expect(t.results).to.deep.equal(['cancelled']);
  });

  it('hedging: a non-fatal answer sends the next hedge at once; all non-fatal: the last is the answer, URX', () => {
    const t = setup({ hedgePolicy: { maxAttempts: 3, hedgingDelay: '10s', nonFatalStatusCodes: ['UNAVAILABLE'] } });
    t.runner.start();
    t.calls[0]!.head(200, { 'grpc-status': '14' }, true);
    expect(t.calls).to.have.length(2);
    t.calls[1]!.fail('reset');
    expect(t.calls).to.have.length(3);
    t.calls[2]!.head(503);
    expect(t.answer!.call).to.equal(t.calls[2]);
    expect(t.answer!.mark).to.deep.equal({ kind: 'exhausted' });
    expect(new Set(t.calls.map((c) => c.ep)).size).to.equal(3);
  });

  it('hedging with delay 0 sends every attempt at once; a fatal answer commits at once', () => {
    const t = setup({ hedgePolicy: { maxAttempts: 3, nonFatalStatusCodes: ['UNAVAILABLE'] } });
    t.runner.start();
    expect(t.calls.map((c) => c.kind)).to.deep.equal(['first', 'hedge', 'hedge']);
    expect(t.cluster.activeRetries).to.equal(2);
    t.calls[2]!.head(200, { 'grpc-status': '5' }, true); // NOT_FOUND is final
    expect(t.answer!.call).to.equal(t.calls[2]);
    expect(t.calls[0]!.cancelled && t.calls[1]!.cancelled).to.equal(true);
    expect(t.cluster.activeRetries).to.equal(1); // the answer's own slot, until its attempt ends
  });

  it('abort drops every attempt and the pending retry, releasing its slot', () => {
    const t = setup({ retryPolicy: { retryOn: ['5xx'] } });
    t.runner.start();
    t.calls[0]!.head(500);
    expect(t.cluster.activeRetries).to.equal(1);
    t.runner.abort('UT');
    expect(t.cluster.activeRetries).to.equal(0);
    t.clock.advance(1000);
    expect(t.calls).to.have.length(1);
  });
});
