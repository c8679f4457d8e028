import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMethod } from '@bufbuild/protobuf';
import type { Transcoder } from '../transcoder.js';

export type CodecName = 'json' | 'proto';

/** Connect messages ↔ the gRPC wire (always binary protobuf upstream). */
export interface Codec {
  readonly name: CodecName;
  /** Request bytes in the client's codec → protobuf bytes; throws on a malformed message. */
  toUpstream(method: DescMethod, b: Buffer): Uint8Array;
  /** Upstream protobuf bytes → the client's codec. */
  toClient(method: DescMethod, b: Buffer): Buffer;
}

export function codecFor(name: CodecName, tr: Transcoder): Codec {
  if (name === 'proto') return { name, toUpstream: (_m, b) => b, toClient: (_m, b) => Buffer.from(b) };
  const s = tr.settings;
  return {
    name,
    toUpstream: (m, b) =>
      toBinary(m.input, fromJsonString(m.input, b.toString('utf8'), { registry: tr.pool.json, ignoreUnknownFields: s.ignoreUnknownJson })),
    toClient: (m, b) =>
      Buffer.from(
        toJsonString(m.output, fromBinary(m.output, b), {
          registry: tr.pool.json,
          alwaysEmitImplicit: s.emitDefaults,
          useProtoFieldName: s.protoNames,
          enumAsInteger: s.enumsAsInts,
        }),
      ),
  };
}

/** `application/json[;charset=utf-8]` → json, `application/proto` → proto (the unary content types). */
export function unaryCodecOf(ct: string): CodecName | undefined {
  const base = ct.split(';')[0]!.trim().toLowerCase();
  return base === 'application/json' ? 'json' : base === 'application/proto' ? 'proto' : undefined;
}

/** `application/connect+json|+proto` → the codec; anything else undefined (415). */
export function streamCodecOf(ct: string): CodecName | undefined {
  const base = ct.split(';')[0]!.trim().toLowerCase();
  return base === 'application/connect+json' ? 'json' : base === 'application/connect+proto' ? 'proto' : undefined;
}
