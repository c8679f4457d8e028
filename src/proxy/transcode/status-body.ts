import { create, fromBinary, toBinary, toJsonString, type Registry } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { httpStatusFromGrpc } from '../../core/errors.js';
import { BadRequestSchema, BadRequest_FieldViolationSchema } from '../../gen/google/rpc/error_details_pb.js';
import { StatusSchema, type Status } from '../../gen/google/rpc/status_pb.js';
import type { Violation } from './json-shape.js';

/**
 * Error bodies: a google.rpc.Status as proto3 JSON,
 * `{"code":5,"message":"…","details":[{"@type":"type.googleapis.com/…",…}]}`,
 * the same for upstream failures (decoded from grpc-status-details-bin) and
 * for the transcoder's own rejections.
 */
export interface ErrorReply {
  readonly httpStatus: number;
  readonly status: Status;
}

export function statusFrom(code: number, message: string, detailsBin: Uint8Array | undefined): Status {
  if (detailsBin && detailsBin.length > 0) {
    try {
      const s = fromBinary(StatusSchema, detailsBin);
      // The header values are authoritative (gRPC spec); the details ride along.
      return create(StatusSchema, { code, message, details: s.details });
    } catch {
      // Undecodable details are dropped rather than failing the whole reply.
    }
  }
  return create(StatusSchema, { code, message });
}

/** The HTTP status for a gRPC code: the one table of PROTOCOLS.md b3 (core/errors.ts). */
export function httpStatusOf(code: number, protocolError: boolean): number {
  return protocolError ? 502 : httpStatusFromGrpc(code);
}

export function badRequest(violations: readonly Violation[]): Status {
  const message = violations.map((v) => (v.field ? `${v.field}: ${v.description}` : v.description)).join('; ');
  const detail = create(BadRequestSchema, {
    fieldViolations: violations.map((v) => create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description })),
  });
  return create(StatusSchema, { code: 3, message, details: [anyPack(BadRequestSchema, detail)] });
}

/** Status JSON; details whose type the registry lacks print as `{"@type", "value": base64}`. */
export function statusJson(s: Status, registry: Registry): string {
  try {
    return toJsonString(StatusSchema, s, { registry });
  } catch {
    return JSON.stringify({
      code: s.code,
      message: s.message,
      details: s.details.map((d) => ({ '@type': d.typeUrl, value: Buffer.from(d.value).toString('base64') })),
    });
  }
}

export function statusBin(s: Status): string {
  return Buffer.from(toBinary(StatusSchema, s)).toString('base64');
}
