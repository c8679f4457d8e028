import { expect } from 'chai';
import http2 from 'node:http2';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { listener, routes } from '../support/config-docs.js';
import { startEchoBackend, type EchoBackend } from '../support/echo-backend.js';
import type { TestSidecar } from '../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, ECHO_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, startTranscodeSidecar, transcodeHost } from '../support/transcode-harness.js';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/**
 * Structural checks an OpenAPI 3.1 validator would make on what we emit:
 * required top-level fields, every $ref resolves, unique operationIds, every
 * {param} of a path declared once as a required path parameter and vice versa.
 */
function validateOpenApi(doc: any): string[] {
  const errs: string[] = [];
  if (doc.openapi !== '3.1.0') errs.push(`openapi: ${doc.openapi}`);
  if (typeof doc.info?.title !== 'string' || typeof doc.info?.version !== 'string') errs.push('info.title/version');
  if (typeof doc.paths !== 'object') errs.push('paths');
  const refs: string[] = [];
  (function walk(v: any, at: string): void {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (v && typeof v === 'object') {
      if (typeof v.$ref === 'string') refs.push(v.$ref);
      for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`);
    }
  })(doc, '$');
  for (const r of refs) {
    const m = /^#\/components\/(schemas|responses)\/(.+)$/.exec(r);
    if (!m || !doc.components?.[m[1]!]?.[m[2]!]) errs.push(`unresolved $ref ${r}`);
  }
  const ids = new Set<string>();
  for (const [p, item] of Object.entries<any>(doc.paths)) {
    if (!p.startsWith('/')) errs.push(`path ${p}`);
    const vars = [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]!);
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      if (ids.has(op.operationId)) errs.push(`duplicate operationId ${op.operationId}`);
      ids.add(op.operationId);
      if (!op.responses || Object.keys(op.responses).length === 0) errs.push(`${m} ${p}: no responses`);
      const pp = (op.parameters ?? []).filter((x: any) => x.in === 'path');
      for (const v of vars) if (!pp.some((x: any) => x.name === v && x.required === true)) errs.push(`${m} ${p}: path param ${v} undeclared`);
      for (const x of pp) if (!vars.includes(x.name)) errs.push(`${m} ${p}: path param ${x.name} not in the path`);
      const seen = new Set<string>();
      for (const x of op.parameters ?? []) {
        if (!['path', 'query', 'header', 'cookie'].includes(x.in)) errs.push(`${m} ${p}: param in ${x.in}`);
        if (seen.has(`${x.in}:${x.name}`)) errs.push(`${m} ${p}: duplicate param ${x.name}`);
        seen.add(`${x.in}:${x.name}`);
        if (!x.schema) errs.push(`${m} ${p}: param ${x.name} without schema`);
      }
    }
  }
  return errs;
}

describe('transcode: live OpenAPI 3.1 document (issue 3 point 10)', function () {
  this.timeout(10_000);
  let store: BookstoreServer;
  let echo: EchoBackend;
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    store = await startBookstore();
    echo = await startEchoBackend();
    sc = await startTranscodeSidecar(
      hosts('main', [
        transcodeHost('echo', ['echo'], 'echo', { descriptorBin: ECHO_DESCRIPTOR, openapi: { path: '/api/openapi.json' } }),
        transcodeHost('off', ['off'], 'echo', { descriptorBin: ECHO_DESCRIPTOR, openapi: { disabled: true } }),
        transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR }),
      ]),
      grpcCluster('store', store.port),
      grpcCluster('echo', echo.port),
      // Transcoding routes that do not cover /.well-known/: the listener-wide document answers there.
      listener('side', { routeConfig: 'side' }),
      routes('side', [
        { name: 'side-store', match: { prefix: '/v1/shelves' }, route: { cluster: 'store', transcode: { descriptorBin: BOOKSTORE_DESCRIPTOR } } },
        { name: 'side-echo', match: { prefix: '/v1/samples' }, route: { cluster: 'echo', transcode: { descriptorBin: ECHO_DESCRIPTOR } } },
      ]),
    );
    base = baseUrl(sc);
  });
  after(async () => {
    await sc?.close();
    await store?.close();
    await echo?.close();
  });

  async function fetchDoc(path: string, host?: string): Promise<{ status: number; headers: Record<string, unknown>; doc: any }> {
    const { status, headers, json: doc } = await requestJson(base + path, { headers: host ? { host } : {} });
    return { status, headers, doc };
  }

  it('serves the Bookstore document at /.well-known/openapi.json through the sidecar, structurally valid', async () => {
    const { status, headers, doc } = await fetchDoc('/.well-known/openapi.json');
    expect(status).to.equal(200);
    expect(headers['content-type']).to.equal('application/json');
    expect(validateOpenApi(doc)).to.deep.equal([]);
    expect(doc.info.title).to.equal('outrigger.examples.bookstore.v1.BookstoreService');
    expect(doc.tags).to.deep.equal([{ name: 'outrigger.examples.bookstore.v1.BookstoreService' }]);
  });

  it('has every binding as path + method, with path parameters from the templates', async () => {
    const { doc } = await fetchDoc('/.well-known/openapi.json');
    const ops = Object.entries<any>(doc.paths).flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${p}`));
    expect(ops.sort()).to.deep.equal(
      [
        'GET /v1/shelves',
        'POST /v1/shelves',
        'GET /v1/shelves/{shelf}',
        'DELETE /v1/shelves/{shelf}',
        'GET /v1/shelves/{shelf}/books',
        'POST /v1/shelves/{shelf}/books',
        'GET /v1/shelves/{shelf}/books/{book}',
        'DELETE /v1/shelves/{shelf}/books/{book}',
        'GET /v1/shelves/{shelf}:watch',
      ].sort(),
    );
    const getBook = doc.paths['/v1/shelves/{shelf}/books/{book}'].get;
    expect(getBook.operationId).to.equal('BookstoreService_GetBook');
    expect(getBook['x-grpc-method']).to.equal('/outrigger.examples.bookstore.v1.BookstoreService/GetBook');
    expect(getBook.parameters).to.deep.equal([
      { name: 'shelf', in: 'path', required: true, schema: { type: 'string', format: 'int64', pattern: '^-?[0-9]+$' } },
      { name: 'book', in: 'path', required: true, schema: { type: 'string', format: 'int64', pattern: '^-?[0-9]+$' } },
    ]);
    expect(getBook.requestBody).to.equal(undefined);
  });

  it('has request/response schemas from the message descriptors and Status error responses', async () => {
    const { doc } = await fetchDoc('/.well-known/openapi.json');
    const create = doc.paths['/v1/shelves/{shelf}/books'].post;
    expect(create.requestBody.content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/outrigger.examples.bookstore.v1.Book' });
    expect(create.responses['200'].content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/outrigger.examples.bookstore.v1.Book' });
    expect(create.responses.default).to.deep.equal({ $ref: '#/components/responses/Error' });
    expect(create.responses['400']).to.deep.equal({ $ref: '#/components/responses/BadRequest' });
    const s = doc.components.schemas;
    expect(s['outrigger.examples.bookstore.v1.Book'].properties).to.deep.equal({
      id: { type: 'string', format: 'int64', pattern: '^-?[0-9]+$' },
      author: { type: 'string' },
      title: { type: 'string' },
    });
    expect(s['outrigger.examples.bookstore.v1.ListShelvesResponse'].properties.shelves).to.deep.equal({
      type: 'array',
      items: { $ref: '#/components/schemas/outrigger.examples.bookstore.v1.Shelf' },
    });
    const del = doc.paths['/v1/shelves/{shelf}'].delete;
    expect(del.responses['200'].content['application/json'].schema).to.deep.equal({ type: 'object', properties: {}, additionalProperties: false });
    expect(doc.components.responses.Error.content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/google.rpc.Status' });
    expect(s['google.rpc.Status'].properties.code).to.deep.equal({ type: 'integer', format: 'int32', description: 'The google.rpc.Code.' });
    expect(s['google.rpc.Status'].properties.details.items.required).to.deep.equal(['@type']);
  });

  it('the document describes what the transcoder really accepts: a call built from it succeeds', async () => {
    const { doc } = await fetchDoc('/.well-known/openapi.json');
    expect(doc.paths['/v1/shelves'].get).to.have.property('operationId', 'BookstoreService_ListShelves');
    const r = await request(`${base}/v1/shelves/1`);
    expect(r.statusCode).to.equal(200);
    expect(await r.body.json()).to.have.property('id', '1');
  });

  it('query parameters for the unbound fields, well-known types in JSON form, streaming and HttpBody, at a configured path', async () => {
    expect((await fetchDoc('/.well-known/openapi.json', 'echo')).status).to.equal(404);
    const { status, doc } = await fetchDoc('/api/openapi.json', 'echo');
    expect(status).to.equal(200);
    expect(validateOpenApi(doc)).to.deep.equal([]);
    const q = doc.paths['/v1/query'].get.parameters;
    const byName = new Map<string, any>(q.map((p: any) => [p.name, p]));
    expect(q.every((p: any) => p.in === 'query')).to.equal(true);
    expect(byName.get('at').schema).to.deep.equal({ type: 'string', format: 'date-time' });
    expect(byName.get('mask').schema.type).to.equal('string');
    expect(byName.get('count').schema).to.deep.equal({ type: ['integer', 'null'], format: 'int32' });
    expect(byName.get('sub.subfield')).to.not.equal(undefined);
    // Path-bound and body fields are not query parameters.
    const getById = doc.paths['/v1/samples/{id}'].get.parameters;
    expect(getById.filter((p: any) => p.name === 'id').map((p: any) => p.in)).to.deep.equal(['path']);
    expect(doc.paths['/v1/samples'].post.parameters).to.deep.equal([]);
    expect(doc.paths['/v1/samples/{id}:archive']).to.have.property('post');
    expect(doc.paths['/v1/files/{path}'].get.parameters[0].description).to.match(/\//);
    expect(doc.paths['/v1/repeat/{name}'].get.responses['200'].content).to.have.keys('application/json', 'application/x-ndjson', 'text/event-stream');
    expect(doc.paths['/v1/collect'].post.requestBody.content['application/json'].schema.type).to.equal('array');
    expect(doc.paths['/v1/uploads/{name}'].post.requestBody.content).to.have.key('*/*');
    const sample = Object.entries<any>(doc.components.schemas).find(([k]) => k.endsWith('.Sample'))![1];
    expect(sample.properties.wait.type).to.equal('string');
    expect(sample.properties.meta).to.deep.equal({ type: 'object', additionalProperties: true });
  });

  it('a listener whose transcoding routes do not cover the path serves one merged document of all of them (h1 and h2)', async () => {
    const side = `http://127.0.0.1:${sc.port('side')}`;
    const r = await request(`${side}/.well-known/openapi.json`);
    expect(r.statusCode).to.equal(200);
    const doc = (await r.body.json()) as any;
    expect(validateOpenApi(doc)).to.deep.equal([]);
    expect(doc.paths).to.include.keys('/v1/shelves/{shelf}', '/v1/query', '/v1/samples/{id}');
    expect(doc.tags.map((t: any) => t.name)).to.have.members(['outrigger.examples.bookstore.v1.BookstoreService', 'outrigger.examples.transcoding.v1.EchoService']);
    expect(doc.info.title).to.include('BookstoreService').and.include('EchoService');
    const post = await request(`${side}/.well-known/openapi.json`, { method: 'POST', body: '{}' });
    await post.body.dump();
    expect(post.statusCode).to.equal(404);
    const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = http2.connect(side);
      s.on('error', reject);
      const st = s.request({ ':path': '/.well-known/openapi.json' });
      let body = '';
      let status = 0;
      st.on('response', (h) => (status = Number(h[':status'])));
      st.setEncoding('utf8');
      st.on('data', (d: string) => (body += d));
      st.on('end', () => {
        s.close();
        resolve({ status, body });
      });
    });
    expect(h2.status).to.equal(200);
    expect(JSON.parse(h2.body).paths).to.have.property('/v1/shelves');
  });

  it('is not served when disabled (the path falls through to the REST bindings)', async () => {
    const r = await fetchDoc('/.well-known/openapi.json', 'off');
    expect(r.status).to.equal(404);
    expect(r.doc).to.have.property('code', 5);
  });
});
