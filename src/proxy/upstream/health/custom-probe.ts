import type { JsonObject } from '@bufbuild/protobuf';
import { exportOf, type ModuleLoader } from '../../../core/module-loader.js';
import { settleOnce, type Probe, type ProbeResult } from './probes.js';

/** A custom check's function (outrigger/plugin's HealthCheck; declared here, as upstream/ does not import filters/). */
type CheckFn = (ep: { host: string; port: number; key: string }, opts: { signal: AbortSignal; config: JsonObject }) => unknown;

/**
 * `healthCheck.custom {module, config}` (docs/plugins.md): the module's
 * `check(endpoint, {signal, config})`, or the function its `create(config)`
 * returns, run by the cluster's checker on its interval, timeout and
 * thresholds like the built-in probes. 'healthy' passes, 'degraded' passes
 * degraded, anything else (a throw, a rejection, another value, the
 * timeout: `signal` aborts) fails. The module is looked up on each run, so a
 * config reload that re-imported a changed file takes effect at the next
 * check even though the cluster's config did not change.
 */
export function customProbe(spec: string, config: JsonObject, modules: ModuleLoader | undefined): Probe {
  let builtFor: unknown;
  let fn: CheckFn | undefined;
  const resolve = (exports: Readonly<Record<string, unknown>>): CheckFn | undefined => {
    if (builtFor === exports) return fn;
    builtFor = exports;
    const create = exportOf(exports, 'create');
    const check = exportOf(exports, 'check');
    fn = typeof create === 'function' ? (create(config) as CheckFn) : typeof check === 'function' ? (check as CheckFn) : undefined;
    return fn;
  };
  return (ep) => {
    const ac = new AbortController();
    const s = settleOnce(() => ac.abort());
    try {
      const m = modules?.get(spec);
      const check = m?.ok ? resolve(m.exports) : undefined;
      if (typeof check !== 'function') s.finish(false);
      else {
        Promise.resolve(check({ host: ep.host, port: ep.port, key: ep.key }, { signal: ac.signal, config })).then(
          (v) => s.finish(verdictOf(v)),
          () => s.finish(false),
        );
      }
    } catch {
      s.finish(false);
    }
    return { done: s.done, cancel: () => s.finish(false) };
  };
}

function verdictOf(v: unknown): ProbeResult {
  return v === 'healthy' ? true : v === 'degraded' ? 'degraded' : false;
}
