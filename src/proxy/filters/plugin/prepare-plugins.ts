import type { JsonObject } from '@bufbuild/protobuf';
import type { ConfigSnapshot } from '../../../config/snapshot.js';
import { exportOf, type ModuleLoader } from '../../../core/module-loader.js';
import type { FilterOverride } from '../../../gen/outrigger/config/v1/filters_pb.js';
import type { PluginConfigProblem } from './plugin-api.js';

/** One place a config version names a plugin module. */
export interface PluginRef {
  /** `Listener/l: spec.httpFilters[0].plugin`, `Cluster/c: spec.healthCheck.custom`. */
  readonly at: string;
  readonly module: string;
  readonly config: JsonObject | undefined;
}

/** Every plugin module a snapshot names: listeners' filters, virtual hosts' and routes' overrides, custom health checks. */
export function pluginRefs(snap: ConfigSnapshot): PluginRef[] {
  const out: PluginRef[] = [];
  for (const [name, l] of snap.listeners) {
    l.httpFilters.forEach((f, i) => {
      if (f.config.case === 'plugin') out.push({ at: `Listener/${name}: spec.httpFilters[${i}].plugin`, module: f.config.value.module, config: f.config.value.config });
    });
  }
  const overrides = (filters: Record<string, FilterOverride>, at: string): void => {
    for (const [k, o] of Object.entries(filters)) {
      if (o.override.case === 'plugin') out.push({ at: `${at}.filters.${k}.plugin`, module: o.override.value.module, config: o.override.value.config });
    }
  };
  for (const [name, rc] of snap.routeConfigs) {
    rc.virtualHosts.forEach((vh, v) => {
      const vp = `RouteConfiguration/${name}: spec.virtualHosts[${v}]`;
      overrides(vh.filters, vp);
      vh.routes.forEach((r, i) => overrides(r.filters, `${vp}.routes[${i}]`));
    });
  }
  for (const [name, c] of snap.clusters) {
    const ch = c.healthCheck?.checker;
    if (ch?.case === 'custom') out.push({ at: `Cluster/${name}: spec.healthCheck.custom`, module: ch.value.module, config: ch.value.config });
  }
  return out;
}

/**
 * The async step before a config version compiles: imports the modules it
 * names (changed files again, unchanged ones reused; ModuleLoader) and runs
 * each plugin's `validate(config)`. Throws one error listing every module
 * that cannot be imported and every config problem, each with its field
 * path, which refuses the version: the running config keeps serving.
 */
export async function preparePlugins(snap: ConfigSnapshot, modules: ModuleLoader): Promise<void> {
  const refs = pluginRefs(snap);
  if (refs.length === 0) return;
  await modules.prepare(refs.map((r) => r.module));
  const problems: string[] = [];
  for (const r of refs) {
    const m = modules.get(r.module);
    if (m === undefined || !m.ok) {
      problems.push(`${r.at}.module: ${m?.error ?? 'not loaded'}`);
      continue;
    }
    const validate = exportOf(m.exports, 'validate');
    if (validate === undefined) continue;
    if (typeof validate !== 'function') {
      problems.push(`${r.at}.module: ${r.module} exports a validate that is not a function`);
      continue;
    }
    let found: readonly PluginConfigProblem[];
    try {
      found = (validate(r.config ?? {}) as readonly PluginConfigProblem[] | undefined) ?? [];
    } catch (err) {
      problems.push(`${r.at}.config: validate threw: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    for (const p of found) {
      if (typeof p === 'string') problems.push(`${r.at}.config: ${p}`);
      else problems.push(`${r.at}.config${p.path.startsWith('[') ? '' : '.'}${p.path}: ${p.message}`);
    }
  }
  if (problems.length > 0) throw new PluginConfigError(problems);
}

export class PluginConfigError extends Error {
  override readonly name = 'PluginConfigError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}
