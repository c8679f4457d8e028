import type { Downstream } from '../../downstream/downstream.js';
import type { FilterVerdict } from '../filter.js';
import type { KeyOf } from '../rate-limit/limit-key.js';

/** One of `limits[]`, compiled: how a request's key value is found. */
export interface CompiledLimit {
  readonly name: string;
  /** The limit's `name` as configured ('' when unset: the service backend then uses the key's default descriptor key). */
  readonly configuredName: string;
  readonly kind: string;
  readonly keyOf: KeyOf;
  /** Its index in `limits[]`. */
  readonly index: number;
}

/**
 * What a backend answers for one request: let it through (maybe with headers
 * to add), or refuse it naming the limit. A backend that cannot answer
 * rejects (or never settles): the filter's timer and failureMode decide then.
 */
export type BackendAnswer =
  | { readonly allowed: true; readonly requestHeaders?: readonly (readonly [string, string])[]; readonly responseHeaders?: readonly (readonly [string, string])[] }
  | {
      readonly allowed: false;
      readonly limit: CompiledLimit;
      readonly verdict: NonNullable<FilterVerdict>;
      readonly responseHeaders?: readonly (readonly [string, string])[];
    };

/** Decides the limits that apply to a request; `values[i]` is the key value of `applied[i]`. */
export interface LimitBackend {
  /** The backend's name in audit reasons (`redis`, `service`). */
  readonly kind: string;
  /** How long a decision may wait before it can be sent (Redis's first connection); 0 when it can be sent now. */
  readonly firstWait?: () => Promise<boolean> | undefined;
  decide(ds: Downstream, applied: readonly CompiledLimit[], values: readonly string[]): Promise<BackendAnswer>;
}

/** A backend failure with a short reason for the audit line (`no_endpoint`, `unavailable`). */
export class BackendUnavailable extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}
