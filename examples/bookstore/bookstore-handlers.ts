import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import {
  BulkCreateBooksResponseSchema,
  ListBooksResponseSchema,
  ListShelvesResponseSchema,
  WatchShelfResponseSchema,
  type BulkCreateBooksResponse,
  type ChatMessage,
  type CreateBookRequest,
  type CreateShelfRequest,
  type DeleteBookRequest,
  type DeleteShelfRequest,
  type GetBookRequest,
  type GetShelfRequest,
  type ListBooksRequest,
  type WatchShelfRequest,
  type WatchShelfResponse,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import type { OpenStreams } from './open-streams.js';
import { rpcError, storeErrorToRpc } from './rpc-status.js';
import type { BookstoreStore, ShelfChange, StoreResult } from './store.js';

export interface BookstoreDeps {
  readonly store: BookstoreStore;
  readonly streams: OpenStreams;
  readonly logger: Logger;
}

type UnaryHandler = (call: grpc.ServerUnaryCall<any, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/**
 * The `BookstoreService` implementation, keyed by method localName to match
 * `serviceDefinitionFor(BookstoreService)`. Unary methods are one-line
 * mappings onto the store; the store's failures become statuses through
 * `storeErrorToRpc`, the one table all methods share.
 */
export function bookstoreHandlers(deps: BookstoreDeps): grpc.UntypedServiceImplementation {
  const { store, streams, logger } = deps;

  // Turns a store operation into a unary handler. A throw here is a bug in the
  // demo, not a client error: answer INTERNAL rather than crash the process.
  const unary =
    <Req, Res>(op: (request: Req) => StoreResult<Res>): UnaryHandler =>
    (call, callback) => {
      let result: StoreResult<Res>;
      try {
        result = op(call.request as Req);
      } catch (err) {
        logger.error({ err, path: call.getPath() }, 'bookstore handler failed');
        return callback(rpcError(grpc.status.INTERNAL, 'internal error'));
      }
      if (result.ok) callback(null, result.value);
      else callback(storeErrorToRpc(result.error));
    };

  const empty = <T>(r: StoreResult<T>): StoreResult<unknown> => (r.ok ? { ok: true, value: create(EmptySchema) } : r);

  return {
    listShelves: unary(() => ({ ok: true, value: create(ListShelvesResponseSchema, { shelves: store.listShelves() }) })),
    createShelf: unary((req: CreateShelfRequest) => store.createShelf(req.shelf)),
    getShelf: unary((req: GetShelfRequest) => store.getShelf(req.shelf)),
    deleteShelf: unary((req: DeleteShelfRequest) => empty(store.deleteShelf(req.shelf))),
    listBooks: unary((req: ListBooksRequest) => {
      const books = store.listBooks(req.shelf);
      return books.ok ? { ok: true, value: create(ListBooksResponseSchema, { books: books.value }) } : books;
    }),
    createBook: unary((req: CreateBookRequest) => store.createBook(req.shelf, req.book)),
    getBook: unary((req: GetBookRequest) => store.getBook(req.shelf, req.book)),
    deleteBook: unary((req: DeleteBookRequest) => empty(store.deleteBook(req.shelf, req.book))),

    watchShelf(call: grpc.ServerWritableStream<WatchShelfRequest, WatchShelfResponse>) {
      let ended = false;
      let unsubscribe = (): void => {};
      let untrack = (): void => {};
      const finish = (end: () => void): void => {
        if (ended) return;
        ended = true;
        unsubscribe();
        untrack();
        end();
      };
      const watch = store.watchShelf(call.request.shelf, (event) => {
        if (ended) return;
        // No backpressure: changes are small and rare, and a watcher that
        // stops reading is cut off by its deadline or flow control anyway.
        call.write(watchResponse(event));
        if (event.final) finish(() => call.end());
      });
      if (!watch.ok) {
        call.emit('error', storeErrorToRpc(watch.error));
        return;
      }
      unsubscribe = watch.value.unsubscribe;
      call.write(watchResponse(watch.value.initial));
      // grpc-js reports both client cancellation and an expired deadline as 'cancelled'.
      call.on('cancelled', () => finish(() => {}));
      untrack = streams.track(() =>
        finish(() => call.emit('error', rpcError(grpc.status.UNAVAILABLE, 'server shutting down'))),
      );
    },

    bulkCreateBooks(
      call: grpc.ServerReadableStream<CreateBookRequest, BulkCreateBooksResponse>,
      callback: grpc.sendUnaryData<BulkCreateBooksResponse>,
    ) {
      // Books are created as they arrive, so a failure part-way leaves the
      // earlier ones in place; the status names the request that failed.
      let created = 0n;
      let failed = false;
      call.on('data', (req: CreateBookRequest) => {
        if (failed) return;
        const result = store.createBook(req.shelf, req.book);
        if (result.ok) {
          created++;
          return;
        }
        failed = true;
        callback(storeErrorToRpc(result.error));
      });
      call.on('end', () => {
        if (!failed) callback(null, create(BulkCreateBooksResponseSchema, { created }));
      });
    },

    chat(call: grpc.ServerDuplexStream<ChatMessage, ChatMessage>) {
      let ended = false;
      const untrack = streams.track(() => {
        ended = true;
        call.emit('error', rpcError(grpc.status.UNAVAILABLE, 'server shutting down'));
      });
      call.on('data', (msg: ChatMessage) => {
        if (!ended) call.write(msg);
      });
      call.on('end', () => {
        untrack();
        if (ended) return;
        ended = true;
        call.end();
      });
      call.on('cancelled', () => {
        ended = true;
        untrack();
      });
    },
  };
}

function watchResponse(event: ShelfChange): WatchShelfResponse {
  return create(WatchShelfResponseSchema, { shelf: event.shelf, books: [...event.books], change: event.change });
}
