import { twoChoicesPolicy } from './two-choices.js';

/**
 * `LB_POLICY_PEAK_EWMA`, Linkerd's balancer: power of two choices on the
 * endpoint's peak-EWMA round-trip time × (active requests + 1). The estimate
 * jumps to any slower sample at once and decays towards faster ones (and
 * towards zero while idle) with the cluster's `peakEwma.decay`, so a slow
 * endpoint loses traffic within one request and wins it back gradually.
 * Weights bias the draw only.
 */
export const peakEwma = twoChoicesPolicy('peak_ewma', (s, _ep, now) => s.estimate(now) * (s.active + 1));
