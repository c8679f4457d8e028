import { expect } from 'chai';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { listener } from '../../support/config-docs.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { create } from '@bufbuild/protobuf';
import { CreateBookRequestSchema } from '../../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';

/**
 * rbac conditions over `request.message`: gRPC calls on a route whose
 * descriptors are known wait for their first request message, decoded for
 * CEL; the bytes read go upstream unchanged and the rest streams on
 * (client streaming included). A first message over the limit is refused
 * with RESOURCE_EXHAUSTED; an empty-body HTTP/2 stream still ends.
 */
const bookReq = (shelf: bigint, author: string, title: string) => create(CreateBookRequestSchema, { shelf, book: { author, title } });

describe('filters: rbac request.message (real grpc-js backend)', function () {
  this.timeout(30000);
  let store: BookstoreServer;
  let sc: TestSidecar;
  let client: BookstoreClient;
  const audit: Record<string, unknown>[] = [];
  const svc = BOOKSTORE_SVC.slice(1);

  before(async () => {
    store = await startBookstore();
    sc = await startTestSidecar(
      [
        listener('main', {
          httpFilters: [
            {
              rbac: {
                action: 'RBAC_ACTION_ALLOW',
                maxRequestMessageBytes: 1024,
                policies: {
                  publicShelves: {
                    permissions: [{ grpc: { service: svc, method: 'CreateShelf' } }],
                    principals: [{ any: true }],
                    condition: "request.message.shelf.theme.startsWith('public')",
                  },
                  books: {
                    permissions: [{ grpc: { service: svc, method: 'BulkCreateBooks' } }],
                    principals: [{ any: true }],
                    condition: "request.message.book.author != 'mallory'",
                  },
                  listing: {
                    permissions: [{ grpc: { service: svc, method: 'ListShelves' } }],
                    principals: [{ any: true }],
                    condition: "!has(request.message) || request.message == {}",
                  },
                },
              },
            },
          ],
        }),
        hosts('main', [transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR })]),
        grpcCluster('store', store.port),
      ],
      { auditLog: collector(audit) },
    );
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client?.raw.close();
    await sc?.close();
    await store?.close();
  });

  it('unary: the decoded message decides; what the backend gets is unchanged', async () => {
    const ok = await client.unary('createShelf', { shelf: { theme: 'public-fiction' } });
    expect(ok.response.theme).to.equal('public-fiction');
    const err = await callFailure(client.unary('createShelf', { shelf: { theme: 'secret' } }));
    expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(audit.at(-1)).to.include({ outcome: 'denied', reason: 'no_policy_matched' });
  });

  it('a first message over maxRequestMessageBytes: RESOURCE_EXHAUSTED, audited', async () => {
    const err = await callFailure(client.unary('createShelf', { shelf: { theme: `public-${'x'.repeat(2000)}` } }));
    expect(err.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).to.match(/maxRequestMessageBytes/);
    expect(audit.at(-1)).to.include({ outcome: 'denied', reason: 'message_too_large' });
  });

  it('client streaming: the first message decides, every message reaches the backend', async () => {
    const shelf = (await client.unary('createShelf', { shelf: { theme: 'public-stream' } })).response.id;
    const { call, result } = client.clientStream('bulkCreateBooks');
    // Later messages may be larger than the limit: only the first is buffered.
    for (let i = 0; i < 200; i++) call.write(bookReq(shelf, i === 0 ? 'alice' : 'bob', `t${i}-${'y'.repeat(i === 7 ? 4000 : 100)}`));
    call.end();
    expect((await result).response.created).to.equal(200n);

    const bad = client.clientStream('bulkCreateBooks');
    bad.call.write(bookReq(shelf, 'mallory', 'x'));
    bad.call.write(bookReq(shelf, 'alice', 'y'));
    bad.call.end();
    expect((await callFailure(bad.result)).code).to.equal(grpc.status.PERMISSION_DENIED);
    const books = await client.unary('listBooks', { shelf }).catch((e: grpc.ServiceError) => e);
    expect('code' in books ? books.code : -1, 'listBooks has no policy').to.equal(grpc.status.PERMISSION_DENIED);
  });

  it('an HTTP/2 stream that ends with its HEADERS (no body) still ends behind the waiting filter', async () => {
    const s = http2.connect(`http://127.0.0.1:${sc.port()}`);
    try {
      const req = s.request(
        { ':method': 'POST', ':path': `${BOOKSTORE_SVC}/ListShelves`, 'content-type': 'application/grpc', te: 'trailers' },
        { endStream: true },
      );
      const status = await new Promise<string>((resolve, reject) => {
        let st: string | undefined;
        req.on('response', (h) => (st = h['grpc-status'] as string | undefined));
        req.on('trailers', (t) => (st = t['grpc-status'] as string | undefined));
        req.on('error', reject);
        req.on('close', () => (st === undefined ? reject(new Error('no grpc-status')) : resolve(st)));
        req.resume();
      });
      // The backend saw a request that ended without a message: it says so itself (not our deadline or refusal).
      expect(Number(status)).to.not.equal(grpc.status.PERMISSION_DENIED);
      expect(Number(status)).to.not.equal(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      s.close();
    }
  });

  it('a unary call with an empty message passes (request.message == {})', async () => {
    expect((await client.unary('listShelves', {})).status.code).to.equal(grpc.status.OK);
  });
});
