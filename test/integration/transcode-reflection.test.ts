import { create, fromBinary, setExtension, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { expect } from 'chai';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { http } from '../../src/gen/google/api/annotations_pb.js';
import { HttpRuleSchema } from '../../src/gen/google/api/http_pb.js';
import {
  BookstoreService,
  file_outrigger_examples_bookstore_v1_bookstore as BOOKSTORE_FILE,
} from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { listener, routes } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { descriptorSetOf } from '../support/echo-backend.js';
import { addReflection, type ReflectionVersion } from '../support/reflection-server.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { baseUrl, grpcCluster, startTranscodeSidecar, transcodeRoute } from '../support/transcode-harness.js';
import { waitFor } from '../support/wait.js';

/** The Bookstore set with GetShelf moved from /v1/shelves/{shelf} to /v2/shelves/{shelf}: a descriptor change. */
function movedGetShelfSet(): Uint8Array {
  const files = fromBinary(FileDescriptorSetSchema, descriptorSetOf(BOOKSTORE_FILE)).file;
  const fp = files.find((f) => f.name === BOOKSTORE_FILE.proto.name)!;
  const m = fp.service[0]!.method.find((x) => x.name === 'GetShelf')!;
  setExtension(m.options!, http, create(HttpRuleSchema, { pattern: { case: 'get', value: '/v2/shelves/{shelf}' } }));
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
}

async function status(url: string): Promise<number> {
  const r = await request(url);
  await r.body.dump();
  return r.statusCode;
}

describe('transcode: descriptors without redeploys (issue 3 point 9)', function () {
  this.timeout(15_000);

  describe('from the upstream by gRPC server reflection', () => {
    // The refresh timer runs on this clock: a 30 s interval passes when the test says so.
    let clock: FakeClock;
    beforeEach(() => {
      clock = new FakeClock();
    });
    /** Shutdown drains on the sidecar's clock: start it, then move past the drain timeout. */
    const closeOnClock = async (sc: TestSidecar | undefined): Promise<void> => {
      const closing = sc?.close();
      clock.advance(60_000);
      await closing;
    };
    for (const [versions, withImports] of [
      [['v1'], true],
      [['v1alpha'], false],
    ] as [ReflectionVersion[], boolean][]) {
      it(`fetches the descriptors (${versions[0]} server${withImports ? '' : ', imports asked by file name'}), then applies a changed answer as a swap on the same port`, async () => {
        let current = { set: descriptorSetOf(BOOKSTORE_FILE), services: [BookstoreService.typeName] };
        let store: BookstoreServer | undefined;
        let sc: TestSidecar | undefined;
        try {
          store = await startBookstore({ register: (s) => addReflection(s, () => current, versions, withImports) });
          sc = await startTestSidecar([listener('main'), routes('main', [transcodeRoute('store', 'store', { reflection: { refreshInterval: '30s' } })]), grpcCluster('store', store.port)], { clock });
          const port = sc.port();
          const base = baseUrl(sc);
          const r = await request(`${base}/v1/shelves/1`);
          expect(r.statusCode).to.equal(200);
          expect(await r.body.json()).to.have.property('id', '1');
          const doc = (await (await request(`${base}/.well-known/openapi.json`)).body.json()) as any;
          expect(doc.paths).to.have.property('/v1/shelves/{shelf}');

          current = { set: movedGetShelfSet(), services: [BookstoreService.typeName] };
          // Nothing changes before the refresh interval has passed on the sidecar's clock...
          expect(await status(`${base}/v2/shelves/1`)).to.equal(404);
          // ...and once it has, the next refresh applies the change (the fetch itself is real I/O).
          // (Advanced once: the fetch's own deadline is on this clock too, so advancing again could cut it.)
          clock.advance(30_000);
          await waitFor(async () => (await status(`${base}/v2/shelves/1`)) === 200, 'the moved binding');
          expect(await status(`${base}/v1/shelves/1`)).to.equal(405); // DELETE is still bound there
          expect(sc.port()).to.equal(port);
          expect(sc.logs.some((l) => l['msg'] === 'reflected descriptors changed')).to.equal(true);
          const doc2 = (await (await request(`${base}/.well-known/openapi.json`)).body.json()) as any;
          expect(doc2.paths['/v2/shelves/{shelf}']).to.have.property('get');
        } finally {
          await closeOnClock(sc);
          await store?.close();
        }
      });
    }

    it('answers 503 until the upstream can be reflected, then serves without a config change', async () => {
      let store: BookstoreServer | undefined;
      let sc: TestSidecar | undefined;
      // Reserve a port, free it, and start the backend there later.
      const probe = await startBookstore();
      const port = probe.port;
      await probe.close();
      try {
        sc = await startTestSidecar(
          [listener('main'), routes('main', [transcodeRoute('store', 'store', { reflection: { refreshInterval: '30s' } })]), grpcCluster('store', port, { connectTimeout: '0.2s' })],
          { clock },
        );
        const base = baseUrl(sc);
        const r = await request(`${base}/v1/shelves/1`);
        expect(r.statusCode).to.equal(503);
        expect(((await r.body.json()) as any).code).to.equal(14);
        store = await startBookstore({
          port,
          register: (s) => addReflection(s, () => ({ set: descriptorSetOf(BOOKSTORE_FILE), services: [BookstoreService.typeName] })),
        });
        // The failed first fetch armed the refresh (the 503 above came after it); one interval later it succeeds.
        clock.advance(30_000);
        await waitFor(async () => (await status(`${base}/v1/shelves/1`)) === 200, 'reflected descriptors');
      } finally {
        await closeOnClock(sc);
        await store?.close();
      }
    });
  });

  describe('from a watched descriptor file', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'outrigger-desc-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('picks up a replaced file as a swap; a broken file keeps the last good descriptors', async () => {
      const file = join(dir, 'bookstore.binpb');
      await writeFile(file, descriptorSetOf(BOOKSTORE_FILE));
      const store = await startBookstore();
      let sc: TestSidecar | undefined;
      try {
        sc = await startTranscodeSidecar(routes('main', [transcodeRoute('store', 'store', { descriptorFile: file })]), grpcCluster('store', store.port));
        const base = baseUrl(sc);
        expect(await status(`${base}/v1/shelves/1`)).to.equal(200);
        expect(await status(`${base}/v2/shelves/1`)).to.equal(404);

        await writeFile(join(dir, 'tmp1'), movedGetShelfSet());
        await rename(join(dir, 'tmp1'), file);
        await waitFor(async () => (await status(`${base}/v2/shelves/1`)) === 200, 'the moved binding');

        await writeFile(join(dir, 'tmp2'), Buffer.from('not a descriptor set'));
        await rename(join(dir, 'tmp2'), file);
        await waitFor(async () => sc!.logs.some((l) => l['msg'] === 'descriptor change rejected; the last good descriptors keep serving'), 'the rejection');
        expect(await status(`${base}/v2/shelves/1`)).to.equal(200);
      } finally {
        await sc?.close();
        await store.close();
      }
    });
  });
});
