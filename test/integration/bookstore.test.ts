import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { expect } from 'chai';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { BadRequestSchema, ResourceInfoSchema } from '../../src/gen/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../src/gen/google/rpc/status_pb.js';
import { Health, HealthCheckResponse_ServingStatus } from '../../src/gen/grpc/health/v1/health_pb.js';
import {
  BookSchema,
  ChatMessageSchema,
  CreateBookRequestSchema,
  type ChatMessage,
  type WatchShelfResponse,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import {
  bookstoreClient,
  callFailure,
  collectStream,
  metadataOf,
  nextMessage,
  typedClient,
  type BookstoreClient,
} from '../support/bookstore-client.js';

/** Decodes the google.rpc.Status trailer and unpacks its first detail of the given type. */
function detail<Desc extends DescMessage>(err: grpc.ServiceError, schema: Desc): MessageShape<Desc> {
  const [bin] = err.metadata.get('grpc-status-details-bin');
  expect(bin, 'grpc-status-details-bin trailer').to.be.instanceOf(Buffer);
  const status = fromBinary(StatusSchema, bin as Buffer);
  expect(status.code).to.equal(err.code);
  expect(status.message).to.equal(err.details);
  for (const any of status.details) {
    const unpacked = anyUnpack(any, schema);
    if (unpacked) return unpacked;
  }
  throw new Error(`no ${schema.typeName} in status details`);
}

describe('bookstore example backend', () => {
  let bookstore: BookstoreServer;
  let client: BookstoreClient;

  beforeEach(async () => {
    bookstore = await startBookstore({ host: '127.0.0.1', port: 0 });
    client = bookstoreClient(bookstore.address);
  });

  afterEach(async () => {
    client.close();
    await bookstore.close();
  });

  describe('unary', () => {
    it('lists the seeded shelves and their books', async () => {
      const { response } = await client.unary('listShelves', {});
      expect(response.shelves.map((s) => [s.id, s.theme])).to.deep.equal([
        [1n, 'Fiction'],
        [2n, 'Fantasy'],
      ]);
      const books = await client.unary('listBooks', { shelf: 1n });
      expect(books.response.books.map((b) => b.title)).to.deep.equal(['Moby-Dick', 'Frankenstein']);
    });

    it('creates, gets and deletes a shelf, assigning the next id when it is 0', async () => {
      const created = await client.unary('createShelf', { shelf: { theme: 'Poetry' } });
      expect(created.response.id).to.equal(3n);
      expect(created.status.code).to.equal(grpc.status.OK);
      const got = await client.unary('getShelf', { shelf: 3n });
      expect(got.response.theme).to.equal('Poetry');
      const dup = await callFailure(client.unary('createShelf', { shelf: { id: 3n, theme: 'again' } }));
      expect(dup.code).to.equal(grpc.status.ALREADY_EXISTS);
      await client.unary('deleteShelf', { shelf: 3n });
      const err = await callFailure(client.unary('getShelf', { shelf: 3n }));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
    });

    it('creates, gets and deletes a book', async () => {
      const { response: book } = await client.unary('createBook', {
        shelf: 2n,
        book: { author: 'Ursula K. Le Guin', title: 'A Wizard of Earthsea' },
      });
      expect(book.id > 0n).to.equal(true);
      const got = await client.unary('getBook', { shelf: 2n, book: book.id });
      expect(got.response.title).to.equal('A Wizard of Earthsea');
      await client.unary('deleteBook', { shelf: 2n, book: book.id });
      const err = await callFailure(client.unary('getBook', { shelf: 2n, book: book.id }));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
    });

    it('answers an unknown shelf with NOT_FOUND and a ResourceInfo detail', async () => {
      const err = await callFailure(client.unary('getShelf', { shelf: 9n }));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.details).to.equal('shelf 9 not found');
      const info = detail(err, ResourceInfoSchema);
      expect(info.resourceType).to.equal('outrigger.examples.bookstore.v1.Shelf');
      expect(info.resourceName).to.equal('shelves/9');
      expect(info.description).to.equal('shelf 9 not found');
    });

    it('answers an unknown book with NOT_FOUND and a ResourceInfo detail', async () => {
      const err = await callFailure(client.unary('getBook', { shelf: 1n, book: 7n }));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      const info = detail(err, ResourceInfoSchema);
      expect(info.resourceType).to.equal('outrigger.examples.bookstore.v1.Book');
      expect(info.resourceName).to.equal('shelves/1/books/7');
    });

    it('rejects an empty theme or title with INVALID_ARGUMENT and a BadRequest detail', async () => {
      const shelfErr = await callFailure(client.unary('createShelf', { shelf: { theme: '' } }));
      expect(shelfErr.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(detail(shelfErr, BadRequestSchema).fieldViolations.map((v) => v.field)).to.deep.equal(['shelf.theme']);
      const bookErr = await callFailure(client.unary('createBook', { shelf: 1n, book: { author: 'x' } }));
      expect(bookErr.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(detail(bookErr, BadRequestSchema).fieldViolations.map((v) => v.field)).to.deep.equal(['book.title']);
    });

    it('round-trips a 16 MiB book title', async () => {
      const title = 'x'.repeat(16 * 1024 * 1024);
      const { response: book } = await client.unary('createBook', { shelf: 1n, book: { author: 'big', title } });
      const got = await client.unary('getBook', { shelf: 1n, book: book.id });
      expect(got.response.title.length).to.equal(title.length);
      expect(got.response.title === title).to.equal(true);
    });
  });

  describe('WatchShelf (server streaming)', () => {
    it('sends the current state, then each change, and ends OK after the shelf is deleted', async () => {
      const stream = client.serverStream('watchShelf', { shelf: 2n });
      const first = await nextMessage<WatchShelfResponse>(stream);
      expect(first.change).to.equal('');
      expect(first.shelf?.theme).to.equal('Fantasy');
      expect(first.books.map((b) => b.title)).to.deep.equal(['The Hobbit']);

      const rest = collectStream<WatchShelfResponse>(stream);
      const { response: book } = await client.unary('createBook', {
        shelf: 2n,
        book: { author: 'Terry Pratchett', title: 'Mort' },
      });
      await client.unary('deleteShelf', { shelf: 2n });
      const { messages, error } = await rest;
      expect(error).to.equal(undefined);
      expect(messages.map((m) => m.change)).to.deep.equal([
        `book_created shelves/2/books/${book.id}`,
        'shelf_deleted shelves/2',
      ]);
      expect(messages[0]!.books.map((b) => b.title)).to.deep.equal(['The Hobbit', 'Mort']);
      expect(bookstore.store.watcherCount()).to.equal(0);
    });

    it('stops watching when the client cancels', async () => {
      const stream = client.serverStream('watchShelf', { shelf: 1n });
      await nextMessage(stream);
      expect(bookstore.store.watcherCount()).to.equal(1);
      const ended = collectStream(stream);
      stream.cancel();
      expect((await ended).error?.code).to.equal(grpc.status.CANCELLED);
      await client.unary('listShelves', {}); // a round trip, so the server has seen the RST_STREAM
      expect(bookstore.store.watcherCount()).to.equal(0);
    });

    it('stops watching when the deadline passes', async () => {
      const stream = client.serverStream('watchShelf', { shelf: 1n }, { deadline: Date.now() + 100 });
      const { messages, error } = await collectStream<WatchShelfResponse>(stream);
      expect(messages).to.have.length(1);
      expect(error?.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      await client.unary('listShelves', {});
      expect(bookstore.store.watcherCount()).to.equal(0);
    });

    it('fails an unknown shelf with NOT_FOUND', async () => {
      const { messages, error } = await collectStream(client.serverStream('watchShelf', { shelf: 9n }));
      expect(messages).to.have.length(0);
      expect(error?.code).to.equal(grpc.status.NOT_FOUND);
      expect(detail(error!, ResourceInfoSchema).resourceName).to.equal('shelves/9');
    });
  });

  describe('BulkCreateBooks (client streaming)', () => {
    it('creates every book sent and counts them', async () => {
      const { call, result } = client.clientStream('bulkCreateBooks');
      for (const title of ['A', 'B', 'C']) {
        call.write(create(CreateBookRequestSchema, { shelf: 1n, book: create(BookSchema, { author: 'bulk', title }) }));
      }
      call.end();
      expect((await result).response.created).to.equal(3n);
      const { response } = await client.unary('listBooks', { shelf: 1n });
      expect(response.books.filter((b) => b.author === 'bulk')).to.have.length(3);
    });

    it('answers 0 when no book is sent', async () => {
      const { call, result } = client.clientStream('bulkCreateBooks');
      call.end();
      expect((await result).response.created).to.equal(0n);
    });

    it('fails NOT_FOUND when a request names an unknown shelf', async () => {
      const { call, result } = client.clientStream('bulkCreateBooks');
      call.write(create(CreateBookRequestSchema, { shelf: 1n, book: { title: 'ok' } }));
      call.write(create(CreateBookRequestSchema, { shelf: 9n, book: { title: 'lost' } }));
      call.end();
      const err = await callFailure(result);
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(err.details).to.equal('shelf 9 not found');
    });
  });

  describe('Chat (bidi streaming)', () => {
    it('echoes each message as it arrives and ends OK on half-close', async () => {
      const chat = client.bidiStream('chat');
      chat.write(create(ChatMessageSchema, { text: 'hello' }));
      expect((await nextMessage<ChatMessage>(chat)).text).to.equal('hello');
      chat.write(create(ChatMessageSchema, { text: 'again' }));
      expect((await nextMessage<ChatMessage>(chat)).text).to.equal('again');
      const status = once(chat, 'status');
      const rest = collectStream<ChatMessage>(chat);
      chat.end();
      const { messages, error } = await rest;
      expect(messages).to.have.length(0);
      expect(error).to.equal(undefined);
      expect(((await status)[0] as grpc.StatusObject).code).to.equal(grpc.status.OK);
    });
  });

  describe('grpc.health.v1.Health', () => {
    it('reports SERVING for the server and the bookstore, NOT_FOUND for unknown services', async () => {
      const health = typedClient(Health, bookstore.address);
      try {
        for (const service of ['', 'outrigger.examples.bookstore.v1.BookstoreService']) {
          const { response } = await health.unary('check', { service });
          expect(response.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
        }
        const err = await callFailure(health.unary('check', { service: 'nope' }));
        expect(err.code).to.equal(grpc.status.NOT_FOUND);
        const watch = health.serverStream('watch', { service: '' });
        expect((await nextMessage<{ status: number }>(watch)).status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
        const ended = collectStream(watch);
        watch.cancel();
        await ended;
      } finally {
        health.close();
      }
    });
  });

  describe('test switches in request metadata', () => {
    it('echoes request metadata, including -bin keys and repeated values, as echo-* headers', async () => {
      const md = metadataOf({ 'x-echo-metadata': '1', 'x-team': ['a', 'b'], 'x-blob-bin': Buffer.from([0, 1, 2, 255]) });
      const { metadata } = await client.unary('listShelves', {}, { metadata: md });
      // Node's HTTP/2 layer joins repeated headers with ", " (RFC 9110 list syntax),
      // so the server sees one value; what matters is that both arrive, in order.
      expect(metadata.get('echo-x-team').join(', ')).to.equal('a, b');
      expect(metadata.get('echo-x-blob-bin')).to.deep.equal([Buffer.from([0, 1, 2, 255])]);
      expect(metadata.get('echo-x-echo-metadata')).to.deep.equal(['1']);
      expect(metadata.get('echo-user-agent')[0]).to.match(/grpc-node-js/);
      expect(metadata.get('echo-te')).to.deep.equal([]);
    });

    it('echoes metadata on streaming calls too', async () => {
      const md = metadataOf({ 'x-echo-metadata': '1', 'x-trace-bin': Buffer.from('trace') });
      const chat = client.bidiStream('chat', { metadata: md });
      const [headers] = (await once(chat, 'metadata')) as [grpc.Metadata];
      expect(headers.get('echo-x-trace-bin')).to.deep.equal([Buffer.from('trace')]);
      const done = collectStream(chat);
      chat.end();
      await done;
    });

    it('x-delay-ms answers late, ignoring the deadline: the client times out, the server still finishes', async () => {
      const md = metadataOf({ 'x-delay-ms': '300' });
      const serverDone = once(bookstore.events, 'delayed-call-done');
      const started = performance.now();
      const err = await callFailure(client.unary('getShelf', { shelf: 1n }, { metadata: md, deadline: Date.now() + 50 }));
      expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(performance.now() - started).to.be.below(300);
      const [path] = await serverDone;
      expect(path).to.equal('/outrigger.examples.bookstore.v1.BookstoreService/GetShelf');
      expect(performance.now() - started).to.be.at.least(290);
    });

    it('x-delay-ms without a deadline just answers late', async () => {
      const md = metadataOf({ 'x-delay-ms': '20' });
      const { response } = await client.unary('getShelf', { shelf: 1n }, { metadata: md });
      expect(response.theme).to.equal('Fiction');
    });

    it('x-fail-with fails with that code and "forced failure"; 5 carries a ResourceInfo', async () => {
      const unavailable = metadataOf({ 'x-fail-with': '14' });
      const err = await callFailure(client.unary('listShelves', {}, { metadata: unavailable }));
      expect(err.code).to.equal(grpc.status.UNAVAILABLE);
      expect(err.details).to.equal('forced failure');
      expect(err.metadata.get('grpc-status-details-bin')).to.deep.equal([]);

      const notFound = metadataOf({ 'x-fail-with': '5' });
      const nf = await callFailure(client.unary('getShelf', { shelf: 1n }, { metadata: notFound }));
      expect(nf.code).to.equal(grpc.status.NOT_FOUND);
      expect(nf.details).to.equal('forced failure');
      expect(detail(nf, ResourceInfoSchema).resourceName).to.equal(
        '/outrigger.examples.bookstore.v1.BookstoreService/GetShelf',
      );
    });
  });

  describe('close()', () => {
    it('ends open streams UNAVAILABLE and resolves', async () => {
      const watch = client.serverStream('watchShelf', { shelf: 1n });
      await nextMessage(watch);
      const chat = client.bidiStream('chat');
      chat.write(create(ChatMessageSchema, { text: 'hi' }));
      await nextMessage(chat);
      const watchEnd = collectStream(watch);
      const chatEnd = collectStream(chat);
      await bookstore.close();
      expect((await watchEnd).error?.code).to.equal(grpc.status.UNAVAILABLE);
      expect((await chatEnd).error?.code).to.equal(grpc.status.UNAVAILABLE);
      expect(bookstore.store.watcherCount()).to.equal(0);
    });

    it('cuts unary calls still running after the grace period', async () => {
      const slow = await startBookstore({ shutdownGraceMs: 50 });
      const slowClient = bookstoreClient(slow.address);
      try {
        const md = metadataOf({ 'x-delay-ms': '5000' });
        const call = callFailure(slowClient.unary('listShelves', {}, { metadata: md }));
        const started = performance.now();
        // Give the call a round trip to reach the server before closing.
        await slowClient.unary('listShelves', {});
        await slow.close();
        expect(performance.now() - started).to.be.below(1000);
        expect((await call).code).to.be.oneOf([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL]);
      } finally {
        slowClient.close();
      }
    });
  });
});
