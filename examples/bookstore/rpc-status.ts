import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { anyPack, type Any } from '@bufbuild/protobuf/wkt';
import {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  ResourceInfoSchema,
} from '../../src/gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { BOOK_TYPE, SHELF_TYPE, bookName, shelfName, type StoreError } from './store.js';

/**
 * Failures as grpc-js status objects carrying the "richer error model":
 * a `google.rpc.Status` (same code and message, plus typed details packed in
 * Any) in the `grpc-status-details-bin` trailer. Proxies must relay that
 * trailer byte for byte, which is what the bookstore lets the sidecar's
 * tests check.
 */
export type RpcError = grpc.ServerErrorResponse & grpc.StatusObject;

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

/** A failure with optional typed details; no details means no details trailer. */
export function rpcError(code: grpc.status, message: string, details: readonly Any[] = []): RpcError {
  const metadata = new grpc.Metadata();
  if (details.length > 0) {
    const status = create(StatusSchema, { code, message, details: [...details] });
    metadata.set(STATUS_DETAILS_KEY, Buffer.from(toBinary(StatusSchema, status)));
  }
  // grpc-js reads `details` for the status message; `message` keeps it a
  // readable Error-like object in logs.
  return Object.assign(new Error(message), { code, details: message, metadata });
}

export function resourceInfo(resourceType: string, resourceName: string, description: string): Any {
  return anyPack(ResourceInfoSchema, create(ResourceInfoSchema, { resourceType, resourceName, description }));
}

export function notFound(resourceType: string, resourceName: string, message: string): RpcError {
  return rpcError(grpc.status.NOT_FOUND, message, [resourceInfo(resourceType, resourceName, message)]);
}

export function badRequest(violations: ReadonlyArray<{ field: string; description: string }>): RpcError {
  const message = violations.map((v) => `${v.field}: ${v.description}`).join('; ') || 'invalid argument';
  const detail = create(BadRequestSchema, {
    fieldViolations: violations.map((v) => create(BadRequest_FieldViolationSchema, v)),
  });
  return rpcError(grpc.status.INVALID_ARGUMENT, message, [anyPack(BadRequestSchema, detail)]);
}

/** The gRPC status for a store failure; one table so every method agrees. */
export function storeErrorToRpc(error: StoreError): RpcError {
  switch (error.kind) {
    case 'shelf_not_found':
      return notFound(SHELF_TYPE, shelfName(error.shelf), `shelf ${error.shelf} not found`);
    case 'book_not_found':
      return notFound(
        BOOK_TYPE,
        bookName(error.shelf, error.book),
        `book ${error.book} not found on shelf ${error.shelf}`,
      );
    case 'already_exists':
      return rpcError(grpc.status.ALREADY_EXISTS, `${error.resourceName} already exists`, [
        resourceInfo(error.resourceType, error.resourceName, 'already exists'),
      ]);
    case 'invalid_argument':
      return badRequest(error.violations);
  }
}
