import { expect } from 'chai';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpcJs from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { BookSchema, CreateBookRequestSchema, GetBookRequestSchema, GetShelfRequestSchema } from '../../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { cluster, listener, type Doc } from '../../support/config-docs.js';
import { metricValue } from '../../support/prom-text.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { RecordingBackend } from '../../support/traffic-backend.js';
import { waitFor } from '../../support/wait.js';
import { outrigger } from '../../support/control-harness.js';
import { readFile } from 'node:fs/promises';
import { encodeFrame, FrameReader } from '../../../src/core/grpc-framing.js';

const EXAMPLE = resolve(fileURLToPath(new URL('../../../examples/plugins/redact-field/', import.meta.url)));

/** A request-message plugin: GetShelf of shelf 13 is refused locally, shelf 99 is rewritten to shelf 1. */
const GATE_PLUGIN = `
export function compile() {
  return {
    // A watch ends (with the plugin's status) at its second message.
    onResponseMessage(msg, ctx) {
      if (ctx.method.name === 'WatchShelf' && ctx.index === 1) return { reply: { code: 10, message: 'watch ended by plugin' } };
    },
    onRequestMessage(msg, ctx) {
      // Client streaming: each message as it passes, changed in place.
      if (ctx.method.name === 'BulkCreateBooks') { msg.book.title = msg.book.title.toUpperCase() + ' #' + ctx.index; return; }
      if (ctx.method.name !== 'GetShelf') return;
      if (msg.shelf === 13n) return { reply: { code: 7, message: 'shelf 13 is off limits' } };
      if (msg.shelf === 99n) msg.shelf = 1n;
    },
  };
}
`;

/** A header-phase plugin: refuses x-deny, adds a request header, stamps the response; throws on x-boom. */
const HEADER_PLUGIN = `
export default {
  validate(config) {
    return typeof config.stamp === 'string' ? [] : [{ path: 'stamp', message: 'a string is required' }];
  },
  compile(config, name) {
    if (config.explode) throw new Error('cannot compile this');
    return {
      onRequestHeaders(ds) {
        if (ds.headers['x-boom'] !== undefined) throw new Error('boom');
        if (ds.headers['x-deny'] !== undefined) return { status: 403, headers: { 'content-type': 'text/plain' }, body: 'denied by plugin\\n' };
        ds.headers['x-from-plugin'] = name;
      },
      onResponseHeaders(ds, status, headers) {
        headers['x-plugin-stamp'] = config.stamp;
      },
    };
  },
};
`;

/** A response-message plugin that throws on shelf 2 (INTERNAL for that call only). */
const THROWING_PLUGIN = `
export function compile() {
  return {
    onRequestMessage(msg, ctx) {
      if (ctx.method.name === 'GetShelf' && msg.shelf === 3n) throw new Error('cannot ask for shelf 3');
    },
    onResponseMessage(msg, ctx) {
      if (ctx.method.name === 'GetShelf' && msg.id === 2n) throw new Error('cannot handle shelf 2');
    },
  };
}
`;

const versioned = (v: number): string => `
const loadedAt = Math.random();
export function compile() {
  return { onResponseHeaders(ds, status, headers) { headers['x-plugin-version'] = '${v}'; headers['x-plugin-instance'] = String(loadedAt); } };
}
`;

/**
 * Plugins through real sockets: the example redacting a decoded response
 * message for a real grpc-js client, a request hook replying locally and
 * rewriting a request, a header-phase plugin over HTTP/1.1, a throwing plugin
 * costing one request, validation and import failures rejecting the config
 * with field paths, and a changed module re-imported on reload.
 */
describe('filters: plugins', function () {
  this.timeout(20_000);
  let store: BookstoreServer;
  let rec: RecordingBackend;
  let sc: TestSidecar;
  let grpc: BookstoreClient;
  let base: string;

  const storeHost = (filters?: Record<string, unknown>) => ({
    ...(transcodeHost('store', ['store.test'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR }) as object),
    ...(filters ? { filters } : {}),
  });
  const appHost = { name: 'app', domains: ['app.test'], routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster: 'rec' } }] };
  const docs = (httpFilters: unknown[], storeFilters?: Record<string, unknown>, note = ''): Doc[] => [
    { ...listener('main', { httpFilters }), metadata: { name: 'main', annotations: { note } } } as Doc,
    hosts('main', [appHost, storeHost(storeFilters)]),
    grpcCluster('store', store.port),
    cluster('rec', [rec.port], 'UPSTREAM_PROTOCOL_HTTP1'),
  ];
  const redact = { name: 'redact', plugin: { module: join(EXAMPLE, 'redact-field.ts'), config: { field: 'author' } } };
  let applied = 0;
  /** Writes a config and waits until the sidecar applied or rejected it. */
  const reload = async (d: Doc[]): Promise<'applied' | 'rejected'> => {
    const seen = sc.logs.length;
    await sc.writeConfig(d);
    let outcome: 'applied' | 'rejected' | undefined;
    await waitFor(() => {
      for (const l of sc.logs.slice(seen)) {
        if (l['msg'] === 'config applied' && l['path'] !== undefined) outcome = 'applied';
        if (String(l['msg']).startsWith('config rejected')) outcome = 'rejected';
      }
      return outcome !== undefined;
    }, 'the config applied or rejected');
    if (outcome === 'applied') applied++;
    return outcome!;
  };
  const lastRejection = (): string[] => {
    const l = [...sc.logs].reverse().find((x) => String(x['msg']).startsWith('config rejected'));
    return (l?.['errors'] as string[]) ?? [];
  };
  const h1 = async (headers: Record<string, string> = {}) => {
    const r = await request(`${base}/hello`, { headers: { host: 'app.test', ...headers } });
    return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
  };

  before(async () => {
    store = await startBookstore();
    rec = await new RecordingBackend().start();
    sc = await startTestSidecar(docs([redact]));
    base = `http://127.0.0.1:${sc.port()}`;
    grpc = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'store.test' });
  });
  after(async () => {
    grpc?.raw.close();
    await sc?.close();
    await store?.close();
    await rec?.close();
  });

  it('the example (.ts, compiled on load) redacts a field of decoded response messages for a grpc-js client', async () => {
    const book = await grpc.unary('getBook', { shelf: 1n, book: 1n });
    expect(book.response.author).to.equal('[redacted]');
    expect(book.response.title).to.equal('Moby-Dick');
    // Nested: every book of a list.
    const list = await grpc.unary('listBooks', { shelf: 1n });
    expect(list.response.books.map((b) => b.author)).to.deep.equal(['[redacted]', '[redacted]']);
    expect(list.response.books.map((b) => b.title)).to.deep.equal(['Moby-Dick', 'Frankenstein']);
    // Messages without the field pass unchanged.
    expect((await grpc.unary('getShelf', { shelf: 1n })).response.theme).to.equal('Fiction');
  });

  it('REST transcoding runs the same hooks on the messages it decodes', async () => {
    const r = await request(`${base}/v1/shelves/1/books/2`, { headers: { host: 'store.test' } });
    expect(r.statusCode).to.equal(200);
    expect(await r.body.json()).to.deep.equal({ id: '2', author: '[redacted]', title: 'Frankenstein' });
  });

  it('Connect and gRPC-Web run the same hooks on the messages they carry', async () => {
    const svc = '/outrigger.examples.bookstore.v1.BookstoreService';
    const c = await request(`${base}${svc}/GetBook`, { method: 'POST', headers: { host: 'store.test', 'content-type': 'application/json' }, body: '{"shelf":"1","book":"2"}' });
    expect(c.statusCode).to.equal(200);
    expect(await c.body.json()).to.deep.equal({ id: '2', author: '[redacted]', title: 'Frankenstein' });
    const w = await request(`${base}${svc}/GetBook`, {
      method: 'POST',
      headers: { host: 'store.test', 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: encodeFrame(0, Buffer.from(toBinary(GetBookRequestSchema, create(GetBookRequestSchema, { shelf: 1n, book: 1n })))),
    });
    const frames: { flags: number; data: Buffer }[] = [];
    new FrameReader().each(Buffer.from(await w.body.arrayBuffer()), (f) => (frames.push({ flags: f.flags, data: Buffer.from(f.data) }), true));
    expect(frames.map((f) => f.flags)).to.deep.equal([0, 0x80]);
    expect(fromBinary(BookSchema, frames[0]!.data)).to.include({ author: '[redacted]', title: 'Moby-Dick' });
    expect(frames[1]!.data.toString('latin1')).to.contain('grpc-status: 0');
  });

  it('Connect and gRPC-Web: a request hook\'s reply answers in the dialect (gate plugin)', async () => {
    await writeFile(join(sc.dir, 'gate.mjs'), GATE_PLUGIN);
    expect(await reload(docs([redact, { name: 'gate', plugin: { module: './gate.mjs' } }]))).to.equal('applied');
    const svc = '/outrigger.examples.bookstore.v1.BookstoreService';
    const c = await request(`${base}${svc}/GetShelf`, { method: 'POST', headers: { host: 'store.test', 'content-type': 'application/json' }, body: '{"shelf":"13"}' });
    expect(c.statusCode).to.equal(403);
    expect(await c.body.json()).to.include({ code: 'permission_denied', message: 'shelf 13 is off limits' });
    const w = await request(`${base}${svc}/GetShelf`, {
      method: 'POST',
      headers: { host: 'store.test', 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: encodeFrame(0, Buffer.from(toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 13n })))),
    });
    await w.body.arrayBuffer();
    expect([w.headers['grpc-status'], w.headers['grpc-message']]).to.deep.equal(['7', 'shelf 13 is off limits']);
    expect(await reload(docs([redact]))).to.equal('applied');
  });

  it('a request hook replies locally (the upstream never called) and rewrites a request message', async () => {
    const dir = sc.dir;
    await writeFile(join(dir, 'gate.mjs'), GATE_PLUGIN);
    expect(await reload(docs([redact, { name: 'gate', plugin: { module: './gate.mjs' } }]))).to.equal('applied');
    await grpc.unary('getShelf', { shelf: 1n });
    await waitFor(() => sc.access.some((l) => l['upstream'] !== undefined), 'a proxied call logged with its upstream');
    const before = sc.access.length;
    const err = await callFailure(grpc.unary('getShelf', { shelf: 13n }));
    expect(err.code).to.equal(grpcJs.status.PERMISSION_DENIED);
    expect(err.details).to.equal('shelf 13 is off limits');
    await waitFor(() => sc.access.length > before, 'the access-log line');
    const line = sc.access[sc.access.length - 1]!;
    expect(line['upstream'], 'no upstream was picked').to.equal(undefined);
    expect(String(line['grpc_status'])).to.equal('7');
    // Rewritten: the upstream answers the shelf the plugin asked for.
    expect((await grpc.unary('getShelf', { shelf: 99n })).response.theme).to.equal('Fiction');
    // Client streaming: every message of the stream through the hook (split across DATA frames or not).
    const { call, result } = grpc.clientStream('bulkCreateBooks');
    for (const title of ['dune', 'emma']) call.write(create(CreateBookRequestSchema, { shelf: 2n, book: create(BookSchema, { author: 'x', title }) }));
    call.end();
    expect((await result).response.created).to.equal(2n);
    const titles = (await grpc.unary('listBooks', { shelf: 2n })).response.books.map((b) => b.title);
    expect(titles).to.include.members(['DUNE #0', 'EMMA #1']);
    // REST server streaming: the first message redacted by the example, the second ends the stream with the gate's status.
    const watch = await request(`${base}/v1/shelves/1:watch`, { headers: { host: 'store.test', accept: 'application/x-ndjson' } });
    expect(watch.statusCode).to.equal(200);
    const lines: string[] = [];
    let buf = '';
    let created = false;
    for await (const chunk of watch.body) {
      buf += String(chunk);
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      if (lines.length >= 1 && !created) {
        created = true;
        await grpc.unary('createBook', { shelf: 1n, book: { author: 'Ann Radcliffe', title: 'Udolpho' } });
      }
    }
    expect(lines).to.have.length(2);
    expect(JSON.parse(lines[0]!).books.map((b: { author: string }) => b.author)).to.deep.equal(['[redacted]', '[redacted]']);
    expect(JSON.parse(lines[1]!)).to.deep.include({ error: { code: 10, message: 'watch ended by plugin' } });
    // The same over REST: the reply in the REST dialect (403 + google.rpc.Status JSON), the rewrite.
    const denied = await request(`${base}/v1/shelves/13`, { headers: { host: 'store.test' } });
    expect(denied.statusCode).to.equal(403);
    expect(await denied.body.json()).to.deep.include({ code: 7, message: 'shelf 13 is off limits' });
    const rewritten = await request(`${base}/v1/shelves/99`, { headers: { host: 'store.test' } });
    expect(await rewritten.body.json()).to.deep.equal({ id: '1', theme: 'Fiction' });
  });

  it('a header-phase plugin on HTTP/1.1: changes request headers, stamps responses, stops with a reply', async () => {
    await writeFile(join(sc.dir, 'headers.mjs'), HEADER_PLUGIN);
    expect(await reload(docs([{ name: 'hdr', plugin: { module: './headers.mjs', config: { stamp: 'v1' } } }]))).to.equal('applied');
    const r = await h1();
    expect(r.status).to.equal(200);
    expect(r.headers['x-plugin-stamp']).to.equal('v1');
    expect(rec.seen[rec.seen.length - 1]!.headers['x-from-plugin']).to.equal('hdr');
    const seen = rec.seen.length;
    const denied = await h1({ 'x-deny': '1' });
    expect(denied.status).to.equal(403);
    expect(denied.body).to.equal('denied by plugin\n');
    expect(denied.headers['x-plugin-stamp'], 'local replies pass the response phases too').to.equal('v1');
    expect(rec.seen.length, 'the upstream never saw it').to.equal(seen);
  });

  it('a plugin that throws gets 500 / INTERNAL for that request only, counted per plugin and phase', async () => {
    await writeFile(join(sc.dir, 'throws.mjs'), THROWING_PLUGIN);
    expect(
      await reload(docs([{ name: 'hdr', plugin: { module: './headers.mjs', config: { stamp: 'v1' } } }, { name: 'thrower', plugin: { module: './throws.mjs' } }])),
    ).to.equal('applied');
    const boom = await h1({ 'x-boom': '1' });
    expect(boom.status).to.equal(500);
    expect((await h1()).status, 'the next request succeeds').to.equal(200);
    expect(metricValue(await sc.metrics(), 'outrigger_plugin_errors_total', { plugin: 'hdr', phase: 'onRequestHeaders' })).to.equal(1);
    expect(sc.logs.filter((l) => l['msg'] === 'plugin threw' && l['plugin'] === 'hdr')).to.have.length(1);

    const err = await callFailure(grpc.unary('getShelf', { shelf: 2n }));
    expect(err.code).to.equal(grpcJs.status.INTERNAL);
    expect((await grpc.unary('getShelf', { shelf: 1n })).response.theme, 'the next call succeeds').to.equal('Fiction');
    expect(metricValue(await sc.metrics(), 'outrigger_plugin_errors_total', { plugin: 'thrower', phase: 'onResponseMessage' })).to.equal(1);

    // A request hook that throws: INTERNAL as a trailers-only answer, before any upstream contact.
    const before = sc.access.length;
    const reqErr = await callFailure(grpc.unary('getShelf', { shelf: 3n }));
    expect(reqErr.code).to.equal(grpcJs.status.INTERNAL);
    expect(reqErr.details).to.equal('filter failed: plugin thrower failed in onRequestMessage');
    await waitFor(() => sc.access.length > before, 'the access-log line');
    expect(sc.access[sc.access.length - 1]!['flags']).to.equal('FE');
    expect(sc.access[sc.access.length - 1]!['upstream']).to.equal(undefined);
    expect(metricValue(await sc.metrics(), 'outrigger_plugin_errors_total', { plugin: 'thrower', phase: 'onRequestMessage' })).to.equal(1);
    expect((await grpc.unary('getShelf', { shelf: 1n })).response.theme).to.equal('Fiction');
  });

  it('a config the plugin refuses, and a module that cannot be imported, are rejected with field paths; the last good config serves', async () => {
    expect(await reload(docs([{ name: 'r', plugin: { module: join(EXAMPLE, 'redact-field.ts'), config: { replacement: 7 } } }]))).to.equal('rejected');
    const errs = lastRejection().join('\n');
    expect(errs).to.include('spec.httpFilters[0].plugin.config.field: required: the name of a string field');
    expect(errs).to.include('spec.httpFilters[0].plugin.config.replacement: must be a string');

    expect(await reload(docs([{ plugin: { module: './nowhere.mjs' } }]))).to.equal('rejected');
    expect(lastRejection().join('\n')).to.match(/spec\.httpFilters\[0\]\.plugin\.module: cannot read .*nowhere\.mjs: ENOENT/);

    await writeFile(join(sc.dir, 'broken.mjs'), 'export function compile( {');
    // A virtual host's override of the listener's plugin entry.
    expect(await reload(docs([redact], { redact: { plugin: { module: './broken.mjs' } } }))).to.equal('rejected');
    expect(lastRejection().join('\n')).to.match(/spec\.virtualHosts\[1\]\.filters\.redact\.plugin\.module: cannot import .*broken\.mjs/);

    // compile() throwing refuses the version too, naming the listener.
    expect(await reload(docs([{ name: 'hdr', plugin: { module: './headers.mjs', config: { stamp: 'v1', explode: true } } }]))).to.equal('rejected');
    expect(lastRejection().join('\n')).to.match(/Listener\/main: filters: .*headers\.mjs: compile threw: cannot compile this/);

    // An empty module name is a load-time (validation) error.
    expect(await reload(docs([{ plugin: { module: '' } }]))).to.equal('rejected');
    expect(lastRejection().join('\n')).to.include('spec.httpFilters[0].plugin.module: required');

    // Still the last good config: the header plugin stamps, the request succeeds.
    expect((await h1()).headers['x-plugin-stamp']).to.equal('v1');
  });

  it('outrigger validate imports the example sidecar.yaml\'s plugins and reports their config problems with field paths', async () => {
    const ok = await outrigger(['validate', '-f', join(EXAMPLE, 'sidecar.yaml')]);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/^valid: 3 documents/);
    // A copy beside the plugins (their paths are relative to the file), with configs the plugins refuse.
    const bad = join(EXAMPLE, '.bad-sidecar.test.yaml');
    const text = (await readFile(join(EXAMPLE, 'sidecar.yaml'), 'utf8')).replace('config: {field: author, replacement: "[redacted]"}', 'config: {feild: author}').replace('degradedAfterMs: 250', 'degradedAfterMs: -1');
    await writeFile(bad, text);
    try {
      const r = await outrigger(['validate', '-f', bad]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include('Listener/plugins: spec.httpFilters[0].plugin.config.field: required: the name of a string field');
      expect(r.stderr).to.include('Listener/plugins: spec.httpFilters[0].plugin.config.feild: unknown field');
      expect(r.stderr).to.include('Cluster/bookstore: spec.healthCheck.custom.config.degradedAfterMs: a positive integer of milliseconds');
    } finally {
      await rm(bad, { force: true });
    }
  });

  it('hot reload: a changed module file is re-imported with the next config; an unchanged one is reused', async () => {
    const file = join(sc.dir, 'versioned.mjs');
    await writeFile(file, versioned(1));
    expect(await reload(docs([{ name: 'v', plugin: { module: './versioned.mjs' } }], undefined, 'a'))).to.equal('applied');
    const first = await h1();
    expect(first.headers['x-plugin-version']).to.equal('1');
    // Config changed, module file not: the same module instance.
    expect(await reload(docs([{ name: 'v', plugin: { module: './versioned.mjs' } }], undefined, 'b'))).to.equal('applied');
    const same = await h1();
    expect(same.headers['x-plugin-instance']).to.equal(first.headers['x-plugin-instance']);
    // New file content, then a reload: the new version.
    await writeFile(file, versioned(2));
    expect(await reload(docs([{ name: 'v', plugin: { module: './versioned.mjs' } }], undefined, 'c'))).to.equal('applied');
    const second = await h1();
    expect(second.headers['x-plugin-version']).to.equal('2');
    expect(second.headers['x-plugin-instance']).to.not.equal(first.headers['x-plugin-instance']);
    expect(applied).to.be.greaterThan(0);
  });
});
