import type { Clock } from '../../core/clock.js';
import { flagOf, grpcStatusFromHttp, httpStatusFromGrpc } from '../../core/errors.js';
import type { Random } from '../../core/random.js';
import type { AbortReason, Downstream } from '../downstream/downstream.js';
import { localReply } from '../downstream/local-reply.js';
import type { FaultPlan } from '../router/types.js';

/**
 * A route's `fault` (Envoy's fault filter, Istio's VirtualService fault):
 * first the delay (when drawn), on the injected clock, then the abort (when
 * drawn), answered locally in the caller's dialect with flag FI; otherwise
 * `next` carries on to the upstream. The delay counts toward the route
 * timeout and the client's deadline like a slow upstream would; a client that
 * leaves, or a deadline that passes, during it cancels the timer and ends the
 * exchange as `onAbort` says (DC, or the deadline's own reply). The delay's
 * DI flag is kept apart (`Exchange.injectedFlags`) so the flags that follow
 * still show: `DI,DC`, `DI,UT`.
 */
export function injectFault(
  clock: Clock,
  random: Random,
  ds: Downstream,
  fault: FaultPlan,
  next: () => void,
  onAbort: (ds: Downstream, reason: AbortReason) => void,
): void {
  const d = fault.delay;
  if (d !== undefined && drawn(random, d.fraction)) {
    ds.ex.injectedFlags = flagOf('fault_delay');
    let fired = false;
    const timer = clock.setTimer(d.ms, () => {
      fired = true;
      if (ds.scope.open) abortOrNext(random, ds, fault, next);
    });
    // A scope listener cannot be removed: once the delay is over it ignores later aborts (the terminal handles those).
    ds.scope.onAbort((reason) => {
      if (fired) return;
      fired = true;
      timer.cancel();
      onAbort(ds, reason);
    });
    return;
  }
  abortOrNext(random, ds, fault, next);
}

function abortOrNext(random: Random, ds: Downstream, fault: FaultPlan, next: () => void): void {
  const a = fault.abort;
  if (a === undefined || !drawn(random, a.fraction)) return next();
  ds.scope.dispose();
  // The request body is not wanted: let it flow away rather than stall the connection.
  if (ds.kind !== 'ws') ds.body.resume();
  const status =
    a.grpcStatus !== undefined ? { http: httpStatusFromGrpc(a.grpcStatus), grpc: a.grpcStatus } : { http: a.httpStatus!, grpc: grpcStatusFromHttp(a.httpStatus!) };
  localReply(ds, 'fault_abort', undefined, { status });
}

/** Whether this request is in the `fraction` (0..1) a percentage selects; 1 never draws. */
function drawn(random: Random, fraction: number): boolean {
  return fraction >= 1 || (fraction > 0 && random.next() < fraction);
}
