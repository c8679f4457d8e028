/**
 * `outrigger/plugin`: what a plugin module is written against (docs/plugins.md).
 * Types, plus identity helpers that only give an object literal its type.
 */
import type { FilterPlugin, HealthCheckPlugin } from '../proxy/filters/plugin/plugin-api.js';

export type {
  CheckedEndpoint,
  FilterPlugin,
  HealthCheck,
  HealthCheckPlugin,
  HealthVerdict,
  MessageContext,
  MessageHookResult,
  MessageHooks,
  MessageReply,
  PluginConfigProblem,
  PluginFilter,
} from '../proxy/filters/plugin/plugin-api.js';
export type { FilterVerdict, HttpFilter } from '../proxy/filters/filter.js';
export type { Downstream, AuthFacts } from '../proxy/downstream/downstream.js';

/** `export default definePlugin({ compile(config) { … } })`: typed, returned as is. */
export function definePlugin<C>(p: FilterPlugin<C>): FilterPlugin<C> {
  return p;
}

/** `export default defineHealthCheck({ check: async (ep, { signal }) => 'healthy' })`. */
export function defineHealthCheck<C>(p: HealthCheckPlugin<C>): HealthCheckPlugin<C> {
  return p;
}
