import { AsyncResource } from 'node:async_hooks';

/**
 * `AsyncResource#bind` without the per-call hidden classes that make
 * node:http2's client keep every request alive through young-generation GCs.
 *
 * Node's `bind` (which `ClientHttp2Session.request()` calls once per
 * request, to wrap `requestOnConnect`) defines the deprecated
 * `asyncResource` accessor on the bound function with a getter and setter
 * made for that call (`deprecate()` wrappers around two fresh closures).
 * Accessors that differ per call give every bound function its own hidden
 * class, and hidden classes are allocated in old space; Node 20's
 * `deprecate` adds two more per call (`Object.setPrototypeOf(wrapper,
 * getter)`). Each such map points at the young getter, whose context holds
 * the wrapped function — `requestOnConnect` bound to the new stream. Dead
 * maps in old space are only reclaimed by a mark-compact, and until then a
 * scavenge treats what they point to as live: the stream, its session
 * state, the listeners and through them the whole exchange. So each
 * scavenge copied, and promoted, a large share of the requests made since
 * the last one: GC CPU per request, the wrappers' own cost (~4 % of a
 * pass-through profile on Node 20) and the latency tail (7–17 ms scavenges
 * at 1,000 req/s). docs/benchmarks.md ("Where the scavenges went") has the
 * measurements; Node 22 and 24 retain the same way (test/unit/core/
 * async-resource-bind.test.ts shows it on whichever Node runs it).
 *
 * The replacement behaves as Node's: the same validation, `this` and
 * arguments, `length`, and an `asyncResource` accessor that still warns
 * (DEP0172, once) and whose setter, as Node's, changes only what the getter
 * returns. Its getter and setter are shared by every bound function (the
 * resource kept under a symbol), so all bound functions share one map.
 */
export function installAsyncResourceBindFix(): void {
  if (AsyncResource.prototype.bind !== NODE_BIND) return;
  (AsyncResource.prototype as unknown as Record<PropertyKey, unknown>).bind = bind;
}

/** Node's own `bind`, as this module found it (tests compare the two). */
export const NODE_BIND: AsyncResource['bind'] = AsyncResource.prototype.bind;

const RESOURCE = Symbol('outrigger.asyncResource');
const DEPRECATED = 'The asyncResource property on bound functions is deprecated';
let warned = false;

function warnOnce(): void {
  if (warned) return;
  warned = true;
  process.emitWarning(DEPRECATED, 'DeprecationWarning', 'DEP0172');
}

type Bound = ((...args: unknown[]) => unknown) & { [RESOURCE]: AsyncResource };

const ASYNC_RESOURCE: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: Bound): AsyncResource {
    warnOnce();
    return this[RESOURCE];
  },
  set(this: Bound, v: AsyncResource): void {
    warnOnce();
    this[RESOURCE] = v;
  },
};

function bind(this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown): Bound {
  if (typeof fn !== 'function') {
    const err = new TypeError(`The "fn" argument must be of type function. Received ${fn === null ? 'null' : typeof fn}`) as TypeError & { code: string };
    err.code = 'ERR_INVALID_ARG_TYPE';
    throw err;
  }
  const resource = this;
  // As Node's: without thisArg, fn sees the bound function's own `this` at call time.
  const bound = (
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]): unknown {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : function (...args: unknown[]): unknown {
          return resource.runInAsyncScope(fn, thisArg, ...args);
        }
  ) as Bound;
  bound[RESOURCE] = this;
  Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
  Object.defineProperty(bound, 'asyncResource', ASYNC_RESOURCE);
  return bound;
}
