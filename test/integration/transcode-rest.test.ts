import { expect } from 'chai';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { routes } from '../support/config-docs.js';
import { startEchoBackend, type EchoBackend } from '../support/echo-backend.js';
import { waitFor } from '../support/wait.js';
import type { TestSidecar } from '../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, ECHO_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, startTranscodeSidecar, transcodeHost, transcodeRoute } from '../support/transcode-harness.js';

/**
 * The REST conformance matrix (issue 3 points 1–6): real undici client → real
 * sidecar → real grpc-js backends. The echo backend returns its request, so
 * each binding case checks exactly what the transcoder built.
 */
describe('transcode: REST → gRPC conformance', function () {
  let echo: EchoBackend;
  let store: BookstoreServer;
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    echo = await startEchoBackend();
    store = await startBookstore();
    sc = await startTranscodeSidecar(
      hosts('main', [
        transcodeHost('store', ['store'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR }),
        transcodeHost('relaxed', ['relaxed'], 'echo', {
          descriptorBin: ECHO_DESCRIPTOR,
          relax: { ignoreUnknownQueryParameters: true, ignoreUnknownJsonFields: true, allowPathBodyConflicts: true },
          print: { emitDefaults: false, protoNames: true, enumsAsInts: true, indent: 2 },
          maxRequestBodyBytes: 64,
          pathUnescape: 'PATH_UNESCAPE_MODE_ALL',
          defaultStreamFormat: 'STREAM_FORMAT_NDJSON',
        }),
        transcodeHost('echo', ['*'], 'echo', { descriptorBin: ECHO_DESCRIPTOR, forwardHeaders: ['x-custom'], maxResponseBodyBytes: 2000 }),
      ]),
      grpcCluster('echo', echo.port),
      grpcCluster('store', store.port),
    );
    base = baseUrl(sc);
  });
  after(async () => {
    await sc?.close();
    await echo?.close();
    await store?.close();
  });

  function call(method: string, path: string, opts: { body?: string; headers?: Record<string, string>; host?: string } = {}) {
    return requestJson(base + path, {
      method: method as 'GET',
      body: opts.body,
      headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers },
    });
  }

  function violation(r: { json: any }): { field: string; description: string } {
    const d = r.json.details.find((x: any) => x['@type'] === 'type.googleapis.com/google.rpc.BadRequest');
    return d.fieldViolations[0];
  }

  describe('point 1: google.api.http bindings', () => {
    it('binds a single-segment path variable (int64)', async () => {
      const r = await call('GET', '/v1/samples/42');
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ id: '42' });
    });
    it('binds a multi-segment variable {name=projects/*/samples/*} (additional_bindings), reserved escapes kept', async () => {
      const r = await call('GET', '/v1/projects/p1/samples/s%2F2');
      expect(r.json).to.deep.equal({ name: 'projects/p1/samples/s%2F2' });
    });
    it('binds {path=**} to the rest of the path', async () => {
      expect((await call('GET', '/v1/files/a/b/c.txt')).json).to.deep.equal({ path: 'a/b/c.txt' });
      expect((await call('GET', '/v1/files/')).status).to.equal(200);
    });
    it('binds dotted nested fields in the path', async () => {
      expect((await call('GET', '/v1/subs/xx/n/7')).json).to.deep.equal({ sub: { subfield: 'xx', n: 7 } });
    });
    it('unescapes non-reserved characters in path variables', async () => {
      expect((await call('GET', '/v1/subs/a%20b%C3%A9/n/1')).json.sub.subfield).to.equal('a bé');
    });
    it('decodes every escape with PATH_UNESCAPE_MODE_ALL', async () => {
      const r = await call('GET', '/v1/projects/p1/samples/s%2F2', { host: 'relaxed' });
      expect(r.json).to.deep.equal({ name: 'projects/p1/samples/s/2' });
    });
    it('matches a custom verb (:archive) apart from the plain path', async () => {
      expect((await call('POST', '/v1/samples/5:archive', { body: '{"name":"a"}' })).json).to.deep.equal({ id: '5', name: 'a' });
    });
    it('serves custom { kind: "SEARCH" }', async () => {
      expect((await call('SEARCH', '/v1/search?name=z')).json).to.deep.equal({ name: 'z' });
    });
    it('DELETE without a body', async () => {
      expect((await call('DELETE', '/v1/samples/9')).json).to.deep.equal({ id: '9' });
    });
    it('body "*" takes the whole message; json_name and proto name both accepted', async () => {
      const r = await call('POST', '/v1/samples', { body: '{"id":"3","alias":"x","fail_code":0,"failAfter":0}' });
      expect(r.json).to.deep.equal({ id: '3', alias: 'x' });
      expect((await call('POST', '/v1/samples', { body: '{"renamed":"y"}' })).json).to.deep.equal({ alias: 'y' });
    });
    it('body "field" fills that field; response_body returns one field', async () => {
      expect((await call('POST', '/v1/samples/5/sub', { body: '{"subfield":"q","n":2}' })).json).to.deep.equal({ subfield: 'q', n: 2 });
    });
    it('PATCH fills the FieldMask from the body keys', async () => {
      const r = await call('PATCH', '/v1/samples/5', { body: '{"name":"q","sub":{"n":3},"labels":{"a":"b"}}' });
      expect(r.json.updateMask).to.equal('name,sub.n,labels');
      expect(r.json.sample).to.deep.equal({ name: 'q', sub: { n: 3 }, labels: { a: 'b' } });
    });
    it('PATCH keeps an explicit update_mask query parameter', async () => {
      const r = await call('PATCH', '/v1/samples/5?update_mask=name', { body: '{"name":"q","flag":true}' });
      expect(r.json.updateMask).to.equal('name');
      const camel = await call('PATCH', '/v1/samples/5?updateMask=sub.n,tags', { body: '{"name":"q","sub":{"n":1,"subfield":"s"}}' });
      expect(camel.json.updateMask).to.equal('sub.n,tags');
    });
    it('PATCH mask: proto names, nested messages to their leaves; maps, repeated fields and well-known types stop at the field', async () => {
      const body = {
        sub: { subfield: 's', n: 3 },
        labels: { a: 'b', c: 'd' },
        tags: ['x', 'y'],
        at: '2024-01-01T00:00:00Z',
        wait: '1.5s',
        meta: { k: { deep: 1 } },
        value: { v: [1] },
        count: 4,
        alias: 'r',
        failCode: 0,
      };
      const r = await call('PATCH', '/v1/samples/5', { body: JSON.stringify(body) });
      expect(r.status).to.equal(200);
      // The echo prints the FieldMask in its JSON form (lowerCamel paths).
      expect(r.json.updateMask).to.equal('sub.subfield,sub.n,labels,tags,at,wait,meta,value,count,renamed,failCode');
      expect(r.json.id).to.equal('5');
    });
    it('PATCH mask: an empty or null message field is the field itself', async () => {
      const r = await call('PATCH', '/v1/samples/5', { body: '{"sub":{},"name":null,"flag":false}' });
      expect(r.json.updateMask).to.equal('sub,name,flag');
    });
    it('PATCH mask: a field of the body message bound by the path is not in the mask', async () => {
      const r = await call('PATCH', '/v1/named/n1', { body: '{"id":"7","sub":{"n":1}}' });
      expect(r.status).to.equal(200);
      expect(r.json.updateMask).to.equal('id,sub.n');
      expect(r.json.sample).to.deep.equal({ id: '7', name: 'n1', sub: { n: 1 } });
    });
    it('PATCH mask: a field both in the path and in the body (body wins, relaxed) is in the mask, as the body sent it', async () => {
      const r = await call('PATCH', '/v1/named/n1', { host: 'relaxed', body: '{"name":"b","flag":true}' });
      expect(r.status).to.equal(200);
      expect(r.json.update_mask).to.equal('name,flag');
      expect(r.json.sample).to.deep.equal({ name: 'b', flag: true });
    });
    it('PATCH mask: no body, no mask', async () => {
      const r = await call('PATCH', '/v1/named/n1');
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ sample: { name: 'n1' } });
    });
    it('query: repeated keys, nested fields, enums by name and number, maps, int64, bool, bytes, double', async () => {
      const r = await call(
        'GET',
        '/v1/query?tags=a&tags=b&sub.subfield=s&kind=KIND_SHELF&kinds=1&kinds=KIND_SHELF&labels[k]=v&counts[x]=4&big=18446744073709551615&id=-7&flag=true&data=AQI%3D&ratio=2.5&nums=1&nums=2&name=a+b',
      );
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({
        tags: ['a', 'b'],
        sub: { subfield: 's' },
        kind: 'KIND_SHELF',
        kinds: ['KIND_BOOK', 'KIND_SHELF'],
        labels: { k: 'v' },
        counts: { x: 4 },
        big: '18446744073709551615',
        id: '-7',
        flag: true,
        data: 'AQI=',
        ratio: 2.5,
        nums: [1, 2],
        name: 'a b',
      });
    });
    it('query: well-known types (Timestamp, Duration incl. Go form, FieldMask, wrapper, Struct, Value)', async () => {
      const q = new URLSearchParams({
        at: '2020-01-02T03:04:05Z',
        wait: '1m30.5s',
        mask: 'fail_code,sub.subfield',
        count: '5',
        meta: '{"a":[1,"x"]}',
        value: 'hello',
      });
      const r = await call('GET', `/v1/query?${q}`);
      expect(r.json).to.deep.equal({
        at: '2020-01-02T03:04:05Z',
        wait: '90.500s',
        mask: 'failCode,sub.subfield',
        count: 5,
        meta: { a: [1, 'x'] },
        value: 'hello',
      });
      expect((await call('GET', '/v1/query?wait=2.5s')).json.wait).to.equal('2.500s');
    });
    it('HttpBody in and out: raw body, content type from the message', async () => {
      const r = await call('POST', '/v1/uploads/f', { body: 'raw \x01 bytes', headers: { 'content-type': 'text/plain' } });
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('text/plain');
      expect(r.text).to.equal('raw \x01 bytes');
    });
    it('HttpBody server streaming: chunks concatenated into one raw body, content type from the first', async () => {
      const r = await call('GET', '/v1/download/f?count=4');
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.equal('text/plain');
      expect(r.text).to.equal('f-0;f-1;f-2;f-3;');
    });
    it('the bookstore REST bindings work end to end', async () => {
      const created = await call('POST', '/v1/shelves', { host: 'store', body: '{"theme":"Poetry"}' });
      expect(created.status).to.equal(200);
      expect(created.json.theme).to.equal('Poetry');
      const got = await call('GET', `/v1/shelves/${created.json.id}`, { host: 'store' });
      expect(got.json).to.deep.equal(created.json);
      const book = await call('POST', `/v1/shelves/${created.json.id}/books`, { host: 'store', body: '{"author":"A","title":"T"}' });
      expect(book.json).to.include({ author: 'A', title: 'T' });
      expect((await call('GET', `/v1/shelves/${created.json.id}/books`, { host: 'store' })).json.books).to.have.length(1);
      expect((await call('DELETE', `/v1/shelves/${created.json.id}`, { host: 'store' })).status).to.equal(200);
      expect((await call('GET', `/v1/shelves/${created.json.id}`, { host: 'store' })).status).to.equal(404);
    });
  });

  describe('point 2: print options', () => {
    it('proto names, enums as ints, indentation per route', async () => {
      const r = await call('GET', '/v1/query?fail_after=2&kind=KIND_BOOK', { host: 'relaxed' });
      expect(r.text).to.equal('{\n  "kind": 1,\n  "fail_after": 2\n}');
    });
  });

  describe('point 3: strict by default', () => {
    it('malformed JSON → 400 BadRequest, nothing sent upstream', async () => {
      const r = await call('POST', '/v1/samples', { body: '{"id":' });
      expect(r.status).to.equal(400);
      expect(r.json.code).to.equal(3);
      expect(violation(r).description).to.match(/malformed JSON/);
    });
    it('unknown JSON field → 400 naming the field path', async () => {
      const r = await call('POST', '/v1/samples', { body: '{"sub":{"bogus":1}}' });
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('sub.bogus');
    });
    it('unknown query parameter → 400', async () => {
      const r = await call('GET', '/v1/samples/1?nope=1');
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('nope');
    });
    it('wrong type in query → 400 naming the parameter', async () => {
      const r = await call('GET', '/v1/query?id=abc');
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('id');
    });
    it('wrong type in the body → 400', async () => {
      const r = await call('POST', '/v1/samples', { body: '{"flag":"yes"}' });
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('flag');
    });
    it('bad enum name in the query → 400', async () => {
      expect((await call('GET', '/v1/query?kind=KIND_NOPE')).status).to.equal(400);
    });
    it('a field bound by both path and body → 400', async () => {
      const r = await call('POST', '/v1/samples/5:archive', { body: '{"id":"6"}' });
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('id');
    });
    it('query parameters with body "*" or covering the body field → 400', async () => {
      expect((await call('POST', '/v1/samples?name=x', { body: '{}' })).status).to.equal(400);
      expect((await call('POST', '/v1/samples/5/sub?sub.n=1', { body: '{}' })).status).to.equal(400);
      expect((await call('GET', '/v1/samples/5?id=6')).status).to.equal(400);
    });
    it('a body on a method without one → 400', async () => {
      expect((await call('DELETE', '/v1/samples/9', { body: '{"x":1}' })).status).to.equal(400);
    });
    it('unknown path → 404, wrong method → 405 with Allow', async () => {
      const nf = await call('GET', '/v1/nowhere');
      expect(nf.status).to.equal(404);
      expect(nf.json.code).to.equal(5);
      const na = await call('PUT', '/v1/samples/5');
      expect(na.status).to.equal(405);
      expect(na.headers['allow']).to.equal('DELETE, GET, PATCH');
    });
    it('each rule can be relaxed per route (unknown query/JSON ignored, body wins)', async () => {
      expect((await call('GET', '/v1/samples/1?nope=1', { host: 'relaxed' })).status).to.equal(200);
      expect((await call('POST', '/v1/samples', { host: 'relaxed', body: '{"bogus":1,"name":"n"}' })).json).to.deep.equal({ name: 'n' });
      expect((await call('POST', '/v1/samples/5:archive', { host: 'relaxed', body: '{"id":"6"}' })).json).to.deep.equal({ id: '6' });
    });
    it('request body over the limit → 413; response over the limit → 500', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(100) });
      expect((await call('POST', '/v1/samples', { host: 'relaxed', body: big })).status).to.equal(413);
      const r = await call('POST', '/v1/samples', { body: JSON.stringify({ name: 'y'.repeat(3000) }) });
      expect(r.status).to.equal(500);
      expect(r.json.code).to.equal(13);
    });
  });

  describe('point 4: errors', () => {
    const table: Array<[number, number]> = [
      [1, 499], [2, 500], [3, 400], [4, 504], [5, 404], [6, 409], [7, 403], [8, 429],
      [9, 400], [10, 409], [11, 400], [12, 501], [13, 500], [14, 503], [15, 500], [16, 401],
    ];
    for (const [code, http] of table) {
      it(`gRPC ${code} → HTTP ${http} with a google.rpc.Status body`, async () => {
        const r = await call('GET', `/v1/samples/1?failCode=${code}`);
        expect(r.status).to.equal(http);
        expect(r.json.code).to.equal(code);
        expect(r.json.message).to.equal(`failed as asked (${code})`);
        expect(r.json.details[0]['@type']).to.equal('type.googleapis.com/google.rpc.ResourceInfo');
        if (code === 16) expect(r.headers['www-authenticate']).to.equal(`failed as asked (${code})`);
      });
    }
    it('an upstream without a valid grpc-status → 502 with an INTERNAL body', async () => {
      const http2 = await import('node:http2');
      const raw = http2.createServer();
      raw.on('stream', (s) => {
        s.on('error', () => {});
        s.respond({ ':status': 200, 'content-type': 'application/grpc' });
        s.end();
      });
      await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
      const port = (raw.address() as { port: number }).port;
      const sc2 = await startTranscodeSidecar(routes('main', [transcodeRoute('r', 'raw', { descriptorBin: ECHO_DESCRIPTOR })]), grpcCluster('raw', port));
      try {
        const r = await request(`http://127.0.0.1:${sc2.port()}/v1/samples/1`);
        expect(r.statusCode).to.equal(502);
        expect(((await r.body.json()) as any).code).to.equal(13);
      } finally {
        await sc2.close();
        raw.close();
      }
    });
    it('bookstore NOT_FOUND carries its ResourceInfo detail', async () => {
      const r = await call('GET', '/v1/shelves/999999', { host: 'store' });
      expect(r.status).to.equal(404);
      expect(r.json.details[0]).to.include({ '@type': 'type.googleapis.com/google.rpc.ResourceInfo' });
    });
  });

  describe('point 5: headers and metadata', () => {
    it('maps Grpc-Metadata-*, permanent headers, Authorization, configured headers, -bin; echoes metadata back', async () => {
      const r = await call('GET', '/v1/samples/1', {
        headers: {
          'grpc-metadata-x-echo-metadata': '1',
          'grpc-metadata-trace-bin': Buffer.from([1, 2, 3]).toString('base64'),
          authorization: 'Bearer t',
          'user-agent': 'ua/1',
          'x-custom': 'c',
          'x-dropped': 'd',
        },
      });
      expect(r.status).to.equal(200);
      const h = r.headers;
      expect(h['grpc-metadata-echo-authorization']).to.equal('Bearer t');
      expect(h['grpc-metadata-echo-grpcgateway-user-agent']).to.equal('ua/1');
      expect(h['grpc-metadata-echo-grpcgateway-authorization']).to.equal('Bearer t');
      expect(h['grpc-metadata-echo-x-custom']).to.equal('c');
      expect(h['grpc-metadata-echo-x-dropped']).to.equal(undefined);
      expect(h['grpc-metadata-echo-x-forwarded-for']).to.equal('127.0.0.1');
      expect(h['grpc-metadata-echo-x-forwarded-host']).to.match(/^127\.0\.0\.1:\d+$/);
      expect(h['grpc-metadata-echo-trace-bin']).to.equal(Buffer.from([1, 2, 3]).toString('base64'));
    });
    it('Grpc-Timeout reaches the backend as a deadline → 504', async () => {
      const r = await call('GET', '/v1/samples/1', { headers: { 'grpc-timeout': '50m', 'grpc-metadata-x-delay-ms': '500' } });
      expect(r.status).to.equal(504);
      expect(r.json.code).to.equal(4);
    });
  });

  describe('point 6: streaming', () => {
    it('server streaming as a JSON array by default', async () => {
      const r = await call('GET', '/v1/repeat/r?count=2');
      expect(r.headers['content-type']).to.equal('application/json');
      expect(r.json).to.deep.equal([{ name: 'r', count: 2 }, { id: '1', name: 'r', count: 2 }]);
    });
    it('empty stream is []', async () => {
      expect((await call('GET', '/v1/repeat/r?count=0')).json).to.deep.equal([]);
    });
    it('NDJSON on Accept: application/x-ndjson (and as a route default)', async () => {
      const r = await call('GET', '/v1/repeat/r?count=2', { headers: { accept: 'application/x-ndjson' } });
      expect(r.headers['content-type']).to.equal('application/x-ndjson');
      expect(r.text.trim().split('\n').map((l) => JSON.parse(l).id ?? '0')).to.deep.equal(['0', '1']);
      const d = await call('GET', '/v1/repeat/r?count=1', { host: 'relaxed' });
      expect(d.headers['content-type']).to.equal('application/x-ndjson');
    });
    it('SSE with data: and id:', async () => {
      const r = await call('GET', '/v1/repeat/r?count=2', { headers: { accept: 'text/event-stream' } });
      expect(r.headers['content-type']).to.equal('text/event-stream');
      expect(r.text).to.equal('id: 1\ndata: {"name":"r","count":2}\n\nid: 2\ndata: {"id":"1","name":"r","count":2}\n\n');
    });
    it('failure before the first message → mapped status and Status body', async () => {
      const r = await call('GET', '/v1/repeat/r?count=2&failCode=5&failAfter=0');
      expect(r.status).to.equal(404);
      expect(r.json.code).to.equal(5);
    });
    it('failure after messages → terminal error frame (array, NDJSON, SSE) and trailers with TE: trailers', async () => {
      const q = '/v1/repeat/r?count=3&failCode=9&failAfter=1';
      const a = await call('GET', q, { headers: { te: 'trailers' } });
      expect(a.status).to.equal(200);
      expect(a.json).to.have.length(2);
      expect(a.json[1].error.code).to.equal(9);
      expect(a.trailers['grpc-status']).to.equal('9');
      const n = await call('GET', q, { headers: { accept: 'application/x-ndjson' } });
      const lines = n.text.trim().split('\n').map((l) => JSON.parse(l));
      expect(lines[1].error).to.include({ code: 9, message: 'stream failed after 1' });
      const s = await call('GET', q, { headers: { accept: 'text/event-stream' } });
      expect(s.text).to.match(/event: error\ndata: \{"code":9,/);
    });
    it('a ":" in a segment of a binding without a verb is part of the value (here: not an int64 → 400)', async () => {
      expect((await call('GET', '/v1/shelves/1:other', { host: 'store' })).status).to.equal(400);
    });
    it('client streaming from a JSON array body and from NDJSON', async () => {
      expect((await call('POST', '/v1/collect', { body: '[{"name":"a"}, {"name":"b"},{"name":"c"}]' })).json).to.deep.equal({
        id: '3',
        name: 'a,b,c',
      });
      const n = await call('POST', '/v1/collect', { body: '{"name":"x"}\n{"name":"y"}\n', headers: { 'content-type': 'application/x-ndjson' } });
      expect(n.json).to.deep.equal({ id: '2', name: 'x,y' });
    });
    it('client streaming streams the body without buffering it (slow producer)', async () => {
      const { Readable } = await import('node:stream');
      // Each element is sent only once the backend has the one before it (the parser sees where an
      // element ends at the next ',' or ']'): a sidecar that buffered the body would never forward the
      // first, and the wait would time out.
      const from = echo.collected.length;
      async function* gen() {
        yield '[';
        for (let i = 0; i < 50; i++) {
          yield `${i ? ',' : ''}{"name":"n${i}"}`;
          if (i > 0) await waitFor(() => echo.collected.length >= from + i, `element ${i - 1} at the backend before the body ends`, 2000);
        }
        yield ']';
      }
      const r = await request(`${base}/v1/collect`, { method: 'POST', body: Readable.from(gen()) });
      expect(((await r.body.json()) as any).id).to.equal('50');
    });
    it('a bad element in a client stream → 400 naming the element', async () => {
      const r = await call('POST', '/v1/collect', { body: '[{"name":"a"},{"bogus":1}]' });
      expect(r.status).to.equal(400);
      expect(violation(r).field).to.equal('[1].bogus');
    });
  });

  it('gRPC clients still pass through a transcoding route; HTTP/2 REST clients are transcoded', async () => {
    const http2 = await import('node:http2');
    const s = http2.connect(base);
    try {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const st = s.request({ ':path': '/v1/samples/77' });
        let body = '';
        let status = 0;
        st.on('response', (h) => (status = Number(h[':status'])));
        st.on('data', (c) => (body += c));
        st.on('end', () => resolve({ status, body }));
        st.on('error', reject);
      });
      expect(res.status).to.equal(200);
      expect(JSON.parse(res.body)).to.deep.equal({ id: '77' });
    } finally {
      s.close();
    }
  });
});
