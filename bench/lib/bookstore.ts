/**
 * The one gRPC method the benchmark drives (BookstoreService/GetShelf), with
 * serializers built from the project's @bufbuild generated code. Shared by the
 * stand-in backend, the grpc-js verification client and the h2load body.
 */
import type * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  GetShelfRequestSchema,
  ShelfSchema,
  type GetShelfRequest,
  type Shelf,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';

export const SERVICE = 'outrigger.examples.bookstore.v1.BookstoreService';
export const GET_SHELF_PATH = `/${SERVICE}/GetShelf`;

export const serializeRequest = (m: GetShelfRequest): Buffer => Buffer.from(toBinary(GetShelfRequestSchema, m));
export const deserializeRequest = (b: Buffer): GetShelfRequest => fromBinary(GetShelfRequestSchema, b);
export const serializeShelf = (m: Shelf): Buffer => Buffer.from(toBinary(ShelfSchema, m));
export const deserializeShelf = (b: Buffer): Shelf => fromBinary(ShelfSchema, b);

export function getShelfRequest(shelf: bigint): GetShelfRequest {
  return create(GetShelfRequestSchema, { shelf });
}

export function shelf(id: bigint, theme: string): Shelf {
  return create(ShelfSchema, { id, theme });
}

/** A grpc-js service definition holding GetShelf only. */
export const getShelfDefinition: grpc.ServiceDefinition = {
  GetShelf: {
    path: GET_SHELF_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: serializeRequest,
    requestDeserialize: deserializeRequest,
    responseSerialize: serializeShelf,
    responseDeserialize: deserializeShelf,
  },
};

/**
 * A gRPC length-prefixed message (1 byte compressed flag = 0, 4 bytes
 * big-endian length, then the serialized GetShelfRequest), as h2load posts it.
 */
export function framedGetShelfRequest(shelfId: bigint): Buffer {
  const msg = serializeRequest(getShelfRequest(shelfId));
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}
