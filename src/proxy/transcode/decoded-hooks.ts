import { fromBinary, toBinary, type DescMessage, type DescMethod } from '@bufbuild/protobuf';
import type { DecodedOutcome, Downstream } from '../downstream/downstream.js';

/** A message's bytes after the filters' decoded-message phases, or the gRPC status one answered with (or a filter that threw). */
export type HookedBytes = { readonly bytes: Uint8Array } | { readonly code: number; readonly message: string; readonly failed: boolean };

/**
 * Runs the filters' decoded-message phases (plugins' onRequestMessage) on one
 * request message of a dialect that moves protobuf bytes (Connect, gRPC-Web):
 * decoded, handed over, re-encoded. No decoded phase on the route: the same
 * bytes, nothing decoded.
 */
export function hookRequestBytes(ds: Downstream, method: DescMethod, bytes: Uint8Array): HookedBytes {
  const chain = ds.chain;
  if (chain === undefined || !chain.hasDecodedHooks) return { bytes };
  return outcome(chain.decodedRequest(ds, method, fromBinary(method.input, bytes)), method.input);
}

/** The same for one response message (plugins' onResponseMessage). */
export function hookResponseBytes(ds: Downstream, method: DescMethod, bytes: Uint8Array): HookedBytes {
  const chain = ds.chain;
  if (chain === undefined || !chain.hasDecodedHooks) return { bytes };
  return outcome(chain.decodedResponse(ds, method, fromBinary(method.output, bytes)), method.output);
}

function outcome(o: DecodedOutcome, schema: DescMessage): HookedBytes {
  if ('message' in o) return { bytes: toBinary(schema, o.message) };
  if ('reply' in o) return { code: o.reply.code, message: o.reply.message ?? '', failed: false };
  return { code: 13, message: 'filter failed', failed: true };
}
