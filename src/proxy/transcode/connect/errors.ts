import { fromBinary, toJson, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { StatusSchema } from '../../../gen/google/rpc/status_pb.js';
import { connectCode } from '../../../core/errors.js';

export { connectCode };

const unpadded = (b: Uint8Array): string => Buffer.from(b).toString('base64').replace(/=+$/, '');

/**
 * The Connect error JSON, `{"code":"not_found","message":"…","details":[{"type":"google.rpc.ResourceInfo","value":"<b64>","debug":{…}}]}`,
 * with the details taken from a grpc-status-details-bin Status (`debug` when
 * the registry knows the type; unpadded base64 as the protocol asks).
 */
export function connectErrorJson(code: number, message: string, detailsBin: Uint8Array | undefined, registry: Registry): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = { code: connectCode(code) };
  if (message) out['message'] = message;
  if (detailsBin && detailsBin.length > 0) {
    try {
      const st = fromBinary(StatusSchema, detailsBin);
      out['details'] = st.details.map((a) => {
        const type = a.typeUrl.slice(a.typeUrl.lastIndexOf('/') + 1);
        const d: Record<string, JsonValue> = { type, value: unpadded(a.value) };
        const desc = registry.getMessage(type);
        if (desc) {
          try {
            d['debug'] = toJson(desc, fromBinary(desc, a.value), { registry });
          } catch {
            // debug is optional
          }
        }
        return d;
      });
    } catch {
      // Undecodable details are dropped; the code and message still say what happened.
    }
  }
  return out;
}
