import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../src/core/clock.js';
import { rpcError, resourceInfo } from './rpc-status.js';

/**
 * Request-metadata switches that turn the bookstore into a misbehaving
 * upstream for the sidecar's proxy tests. They wrap any grpc-js service
 * implementation, so the bookstore and health handlers stay plain.
 *
 * - `x-echo-metadata: 1` (every call kind): each incoming metadata entry comes
 *   back in the response headers as `echo-<key>` (values repeated, `-bin`
 *   keys as bytes), so a test can check what survived the proxy.
 * - `x-fail-with: <code>` (unary): fails at once with that status and
 *   "forced failure"; code 5 also carries a ResourceInfo detail.
 * - `x-delay-ms: <n>` (unary): answers n ms late and on purpose ignores the
 *   call's deadline and cancellation, like a backend that never looks at
 *   them. grpc-js itself still ends the call at the deadline; the handler just
 *   keeps running, which `onDelayedDone` reports.
 */
export const ECHO_METADATA_KEY = 'x-echo-metadata';
export const FAIL_WITH_KEY = 'x-fail-with';
export const DELAY_MS_KEY = 'x-delay-ms';
export const FORCED_FAILURE_MESSAGE = 'forced failure';

/** Longest accepted delay; anything longer is a typo, not a test. */
const MAX_DELAY_MS = 10 * 60_000;

// Hop-by-hop and HTTP/2 connection headers never belong to the call, and a
// proxy may legitimately rewrite them; grpc-js already drops the pseudo-headers
// and its own reserved ones (grpc-timeout, grpc-encoding, te, content-type).
const NOT_ECHOED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host']);

export interface TestHookOptions {
  readonly clock: Clock;
  /** Called when a delayed unary handler has answered, even if the call already ended. */
  readonly onDelayedDone?: (path: string) => void;
}

type AnyHandler = (call: any, callback?: grpc.sendUnaryData<unknown>) => void;

export function withTestHooks(
  definition: grpc.ServiceDefinition,
  implementation: grpc.UntypedServiceImplementation,
  options: TestHookOptions,
): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = (implementation[name] ?? (method.originalName && implementation[method.originalName])) as
      | AnyHandler
      | undefined;
    if (!handler) continue;
    const unary = !method.requestStream && !method.responseStream;
    wrapped[name] = (unary ? wrapUnary(handler, options) : wrapStreaming(handler)) as grpc.UntypedHandleCall;
  }
  return wrapped;
}

function wrapStreaming(handler: AnyHandler): AnyHandler {
  return (call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>, callback) => {
    echoMetadata(call);
    handler(call, callback);
  };
}

function wrapUnary(handler: AnyHandler, options: TestHookOptions): AnyHandler {
  return (call: grpc.ServerUnaryCall<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
    const respond = callback!;
    echoMetadata(call);
    const failWith = first(call.metadata, FAIL_WITH_KEY);
    if (failWith !== undefined) return respond(forcedFailure(failWith, call.getPath()));
    const delay = first(call.metadata, DELAY_MS_KEY);
    if (delay === undefined) return handler(call, respond);
    const delayMs = Number(delay);
    if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
      return respond(rpcError(grpc.status.INVALID_ARGUMENT, `${DELAY_MS_KEY} must be an integer 0-${MAX_DELAY_MS}`));
    }
    // Deliberately no listener on 'cancelled' and no deadline check: see above.
    options.clock.setTimer(delayMs, () => {
      handler(call, (...args) => {
        respond(...args);
        options.onDelayedDone?.(call.getPath());
      });
    });
  };
}

function forcedFailure(value: string, path: string): grpc.ServerErrorResponse {
  const code = Number(value);
  if (!Number.isInteger(code) || code < 1 || code > 16) {
    return rpcError(grpc.status.INVALID_ARGUMENT, `${FAIL_WITH_KEY} must be a gRPC status code 1-16`);
  }
  if (code === grpc.status.NOT_FOUND) {
    return rpcError(code, FORCED_FAILURE_MESSAGE, [resourceInfo('grpc method', path, FORCED_FAILURE_MESSAGE)]);
  }
  return rpcError(code, FORCED_FAILURE_MESSAGE);
}

function echoMetadata(call: { metadata: grpc.Metadata; sendMetadata(md: grpc.Metadata): void }): void {
  if (first(call.metadata, ECHO_METADATA_KEY) !== '1') return;
  const echo = new grpc.Metadata();
  // getMap() is only used for its keys: it keeps the first value of each,
  // while get() returns them all.
  for (const key of Object.keys(call.metadata.getMap())) {
    if (key.startsWith(':') || NOT_ECHOED.has(key)) continue;
    for (const value of call.metadata.get(key)) echo.add(`echo-${key}`, value);
  }
  call.sendMetadata(echo);
}

function first(metadata: grpc.Metadata, key: string): string | undefined {
  const [value] = metadata.get(key);
  return value === undefined ? undefined : value.toString();
}
