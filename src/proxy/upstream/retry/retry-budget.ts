import type { RetryBudgetPlan } from './retry-policy.js';

/** Which limit refused a retry or hedge: the cluster's circuit breaker, or the route's budget. */
export type RetryLimit = 'max_retries' | 'retry_budget';

/**
 * How many retries (and hedged attempts) may be in flight to a cluster: a
 * route's budget (Envoy's retry_budget) allows max(minConcurrency,
 * ⌊percent % of the requests in flight⌋), so retries grow with the traffic
 * they protect but cannot multiply an outage; without a budget, the
 * cluster's `circuitBreakers.maxRetries`.
 */
export function retryAllowance(activeRequests: number, budget: RetryBudgetPlan | undefined, maxRetries: number): number {
  if (budget === undefined) return maxRetries;
  return Math.max(budget.minConcurrency, Math.floor((budget.percent * activeRequests) / 100));
}
