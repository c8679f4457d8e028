import { twoChoicesPolicy } from './two-choices.js';

/**
 * `LB_POLICY_PEAK_EWMA`, Linkerd's balancer: power of two choices on the
 * endpoint's peak-EWMA round-trip time × (active requests + 1). The estimate
 * jumps to any slower sample at once and decays towards faster ones (and
 * towards zero while idle) with the cluster's `peakEwma.decay`, so a slow
 * endpoint loses traffic within one request and wins it back gradually.
 * Weights bias the draw only. The two candidates are always distinct (as
 * tower's p2c draws them), so a slow endpoint gets no request while both
 * others are cheaper — with independent draws it would still get the 1/N²
 * of picks that draw it twice (11 % of 3 endpoints), enough to set the p99.
 */
export const peakEwma = twoChoicesPolicy('peak_ewma', (s, _ep, now) => s.estimate(now) * (s.active + 1), true);
