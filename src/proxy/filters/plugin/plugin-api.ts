import type { DescMethod, Message } from '@bufbuild/protobuf';
import type { JsonValue } from '@bufbuild/protobuf';
import type { Downstream } from '../../downstream/downstream.js';
import type { HttpFilter } from '../filter.js';

/**
 * The contract between the sidecar and a plugin module (docs/plugins.md),
 * published as `outrigger/plugin`. A filter plugin's module exports (named,
 * or as properties of its default export):
 *
 * - `compile(config, name)` → a `PluginFilter`: the same shape as a built-in
 *   filter's factory (FilterFactory.compile), run once per config version;
 * - optionally `validate(config)` → problems, run when a config naming the
 *   plugin is applied; any problem rejects that config with its field path.
 */
export interface FilterPlugin<C = JsonValue> {
  validate?(config: C): readonly PluginConfigProblem[];
  compile(config: C, name: string): PluginFilter;
}

/**
 * A problem with a plugin's config: a message, or one at a dotted path inside
 * the config (`fields[0]`), reported as `…plugin.config.fields[0]: message`.
 */
export type PluginConfigProblem = string | { readonly path: string; readonly message: string };

/**
 * A built-in filter's phases (HttpFilter, minus `name`: the sidecar names
 * the filter after its config entry, and minus the decoded-message phases,
 * which the sidecar builds from the hooks) plus typed hooks on the decoded
 * messages of gRPC calls whose method descriptor the route knows.
 */
export interface PluginFilter extends Omit<HttpFilter, 'name' | 'onDecodedRequest' | 'onDecodedResponse'>, MessageHooks {}

export interface MessageHooks {
  /**
   * Each request message of a native gRPC call (HTTP/2 `application/grpc`)
   * on a route with descriptors. Change `msg` in place, return another
   * message of the method's input type, or reply locally (unary and
   * server-streaming calls: the upstream is never contacted). Synchronous:
   * async work belongs in `onRequestHeaders`.
   */
  onRequestMessage?(msg: Message, ctx: MessageContext): MessageHookResult;
  /**
   * Each response message. Change it, replace it, or end the call with a
   * status of the plugin's (the messages still to come are dropped).
   */
  onResponseMessage?(msg: Message, ctx: MessageContext): MessageHookResult;
}

/** Nothing (keep `msg`, changed or not), another message, or a local reply. */
export type MessageHookResult = void | undefined | Message | { readonly reply: MessageReply };

/** A gRPC status of the plugin's own (`code` from google.rpc.Code: 7 PERMISSION_DENIED…). */
export interface MessageReply {
  readonly code: number;
  readonly message?: string;
}

export interface MessageContext {
  /** The exchange, as built-in filters see it (headers, auth facts, the access-log record). */
  readonly ds: Downstream;
  /** The call's method: `method.input` / `method.output` are the message schemas. */
  readonly method: DescMethod;
  /** 0-based index of this message in its direction. */
  readonly index: number;
}

/** Health of one endpoint as a custom check reports it. */
export type HealthVerdict = 'healthy' | 'unhealthy' | 'degraded';

/** An endpoint a custom health check probes. */
export interface CheckedEndpoint {
  readonly host: string;
  readonly port: number;
  /** `host:port`. */
  readonly key: string;
}

/**
 * A custom health check's module (Cluster.healthCheck.custom) exports
 * `create(config)` → a `HealthCheck`, or `check` directly (then `config` is
 * passed in each call's options); optionally `validate(config)`. A check
 * that throws, rejects, or outlives the cluster's `timeout` (then `signal`
 * aborts) fails.
 */
export interface HealthCheckPlugin<C = JsonValue> {
  validate?(config: C): readonly PluginConfigProblem[];
  create?(config: C): HealthCheck;
  check?: HealthCheck;
}

export type HealthCheck = (endpoint: CheckedEndpoint, opts: { readonly signal: AbortSignal; readonly config: JsonValue }) => Promise<HealthVerdict>;
