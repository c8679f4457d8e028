import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { DiscoveryRequestSchema, type DiscoveryRequest } from '../../gen/outrigger/control/v1/discovery_pb.js';

const RESOURCE_NAMES_FIELD = 3;
const MAX_TYPES = 8;

/**
 * Decodes one SotW stream's DiscoveryRequests, reusing the previous
 * `resourceNames` array of a type when the request's names are the same
 * bytes. Every ACK repeats the subscription: a sidecar of a 1,000-Service
 * mesh sends 1,000 EDS names with each one, and decoding (then hashing)
 * them per ACK per sidecar was most of a push's cost at the control plane.
 * The same array also lets SotwStream see "no subscription change" by
 * identity. Names are compared as the encoder wrote them (one contiguous run
 * of field 3, as every protobuf encoder writes a repeated field); anything
 * else is decoded whole.
 */
export class SotwRequestDecoder {
  private readonly last = new Map<string, { bytes: Uint8Array; names: string[] }>();

  decode(bytes: Uint8Array): DiscoveryRequest {
    const span = namesSpan(bytes);
    if (span === undefined) return fromBinary(DiscoveryRequestSchema, bytes);
    const [start, end] = span;
    const rest = new Uint8Array(bytes.length - (end - start));
    rest.set(bytes.subarray(0, start));
    rest.set(bytes.subarray(end), start);
    const req = fromBinary(DiscoveryRequestSchema, rest);
    const raw = bytes.subarray(start, end);
    const prev = this.last.get(req.typeUrl);
    if (prev && Buffer.compare(prev.bytes, raw) === 0) {
      req.resourceNames = prev.names;
    } else {
      req.resourceNames = fromBinary(DiscoveryRequestSchema, raw).resourceNames;
      // Bounded: a stream has a handful of types (an unknown type URL is ignored by the stream anyway).
      if (prev || this.last.size < MAX_TYPES) this.last.set(req.typeUrl, { bytes: raw.slice(), names: req.resourceNames });
    }
    return req;
  }
}

/** [start, end) of the request's resource_names when they form one contiguous run (undefined: none, or split). */
function namesSpan(bytes: Uint8Array): [number, number] | undefined {
  try {
    return scan(bytes);
  } catch {
    return undefined; // malformed: fromBinary of the whole message reports it
  }
}

function scan(bytes: Uint8Array): [number, number] | undefined {
  const r = new BinaryReader(bytes);
  let start = -1;
  let end = -1;
  while (r.pos < r.len) {
    const at = r.pos;
    const [no, wireType] = r.tag();
    r.skip(wireType, no);
    if (no !== RESOURCE_NAMES_FIELD) continue;
    if (start < 0) start = at;
    else if (end !== at) return undefined;
    end = r.pos;
  }
  return start < 0 ? undefined : [start, end];
}
