import { twoChoicesPolicy } from './two-choices.js';

/**
 * `LB_POLICY_LEAST_REQUEST` (also called "least connections": with
 * multiplexed upstreams, requests in flight are what a connection count
 * stood for): power of two choices on active requests per unit of weight.
 * The two candidates are drawn by weight and ties keep the first drawn, so
 * an idle cluster splits exactly by weight and a busy one keeps each
 * endpoint's requests in flight proportional to its weight.
 */
export const leastRequest = twoChoicesPolicy('least_request', (s, ep) => s.active / ep.weight);
