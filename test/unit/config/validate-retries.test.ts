import { expect } from 'chai';
import { editBase, errorsOf, type Obj } from './helpers.js';

const routesOf = (spec: Obj): Obj[] => (spec.virtualHosts as Obj[])[0]!.routes as Obj[];
const withAction = (extra: Obj): Obj[] =>
  editBase((find) => Object.assign(routesOf(find('RouteConfiguration', 'main'))[0]!.route as Obj, extra));

describe('config validation: retries and hedging (issue 12 points 5, 6, 8)', () => {
  it('accepts every retry and hedge field in range', () => {
    expect(
      errorsOf(
        withAction({
          retryPolicy: {
            retryOn: ['5xx', 'gateway-error,reset', 'connect-failure', 'refused-stream', 'retriable-4xx', 'retriable-status-codes'],
            numRetries: 10,
            perTryTimeout: '0.5s',
            retryBackOff: { baseInterval: '0.01s', maxInterval: '1s' },
            retriableStatusCodes: [429, 503],
            retryHostPredicate: 'RETRY_HOST_PREDICATE_ANY',
            retryBudget: { budgetPercent: 12.5, minRetryConcurrency: 5 },
          },
          hedgePolicy: { maxAttempts: 5, hedgingDelay: '0.02s', nonFatalStatusCodes: ['UNAVAILABLE', 'resource-exhausted', '13'] },
          idempotent: true,
          perRequestBufferLimitBytes: 1024,
        }),
      ),
    ).to.deep.equal([]);
    // gRPC words alone, and an empty policy (Istio's default conditions).
    expect(errorsOf(withAction({ retryPolicy: { retryOn: ['cancelled,deadline-exceeded,internal,resource-exhausted,unavailable'] } }))).to.deep.equal([]);
    expect(errorsOf(withAction({ retryPolicy: {} }))).to.deep.equal([]);
  });

  it('reports an unknown retryOn word, numRetries over 10 and other bounds with their field paths', () => {
    const at = 'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route';
    expect(
      errorsOf(
        withAction({
          retryPolicy: {
            retryOn: ['5xx', 'gateway-error,bogus', ''],
            numRetries: 11,
            perTryTimeout: '-1s',
            retryBackOff: { baseInterval: '0.1s', maxInterval: '0.05s' },
            retriableStatusCodes: [99],
            retryBudget: { budgetPercent: 101 },
          },
          hedgePolicy: { maxAttempts: 6, hedgingDelay: '-1s', nonFatalStatusCodes: ['UNAVAILABLE', 'NOPE', '17'] },
          perRequestBufferLimitBytes: 16777217,
        }),
      ),
    ).to.deep.equal([
      `${at}.retryPolicy.retryOn[1]: unknown retryOn condition "bogus"; known: 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable`,
      `${at}.retryPolicy.retryOn[2]: empty condition`,
      `${at}.retryPolicy.numRetries: at most 10, got 11`,
      `${at}.retryPolicy.perTryTimeout: must not be negative`,
      `${at}.retryPolicy.retryBackOff.maxInterval: must not be below baseInterval (100ms), got 50ms`,
      `${at}.retryPolicy.retriableStatusCodes[0]: an HTTP status 100..599, got 99`,
      `${at}.retryPolicy.retryBudget.budgetPercent: a percentage: 0..100, got 101`,
      `${at}.hedgePolicy.maxAttempts: 2..5 attempts (the first included), got 6`,
      `${at}.hedgePolicy.hedgingDelay: must not be negative`,
      `${at}.hedgePolicy.nonFatalStatusCodes[1]: a gRPC status name (e.g. "UNAVAILABLE") or number 0..16, got "NOPE"`,
      `${at}.hedgePolicy.nonFatalStatusCodes[2]: a gRPC status name (e.g. "UNAVAILABLE") or number 0..16, got "17"`,
      `${at}.perRequestBufferLimitBytes: at most 16777216, got 16777217`,
    ]);
    expect(errorsOf(withAction({ hedgePolicy: {} }))).to.deep.equal([`${at}.hedgePolicy.maxAttempts: 2..5 attempts (the first included), got 0`]);
  });
});
