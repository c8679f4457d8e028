import { create, equals, fromJson, toJson, type DescMessage, type JsonObject } from '@bufbuild/protobuf';
import { createRegistry } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { BookSchema, ListBooksResponseSchema } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { ListenerSchema } from '../../src/gen/outrigger/config/v1/listener_pb.js';
import { detectProtocol, H2_PREFACE, MAX_DETECT_BYTES, type Detection } from '../../src/proxy/listener/detect.js';
import { RouteTable, validateRouteTemplate, type RouteRequest } from '../../src/proxy/router/index.js';
import { MAX_TEMPLATE_SEGMENTS, parseRouteTemplate } from '../../src/proxy/router/route-template.js';
import { decodeJson } from '../../src/proxy/transcode/request-builder.js';
import { referenceMatch } from '../unit/router/reference-matcher.js';
import { HEADER_MATCH_SAMPLES, routeConfig } from '../unit/router/fixtures.js';

/**
 * Fuzz targets shared by the quick property run in `npm test`
 * (test/unit/fuzz/properties.test.ts: seeded, a few hundred runs each) and
 * `npm run fuzz` (test/fuzz/run.ts: a million inputs or more per target).
 * Each property throws on a crash or a difference from its reference.
 * `inputsPerRun` is how many inputs one run checks (the router checks a
 * batch of requests against each generated table).
 */
export interface FuzzTarget {
  readonly name: string;
  readonly inputsPerRun: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each target has its own input tuple
  property(): fc.IProperty<any>;
}

// ---- protocol detection -------------------------------------------------

const DETECTIONS: readonly Detection[] = ['h2c', 'http1', 'tls', 'opaque', 'need_more'];
const bytesOf = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** Byte strings near the interesting shapes: the preface, request lines, TLS records, noise. */
const detectInput: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.oneof(
      fc.constant(new Uint8Array(H2_PREFACE)),
      fc.constantFrom('GET / HTTP/1.1\r\n', 'POST /x HTTP/1.0\n', 'OPTIONS * HTTP/1.1\r\n', 'GET /a HTTP/2.0\r\n', 'G', 'GET ', 'PRI * HTTP/2.0').map(bytesOf),
      fc.constant(new Uint8Array([0x16, 0x03, 0x01])),
      fc.uint8Array({ maxLength: 64 }),
    ),
    fc.integer({ min: 0, max: 64 }), // where to cut the shape
    fc.uint8Array({ maxLength: 40 }), // bytes after the cut
    fc.constantFrom(0, 0, 0, MAX_DETECT_BYTES - 10, MAX_DETECT_BYTES + 5), // filler length
  )
  .map(([shape, cut, tail, fill]) => Buffer.concat([Buffer.from(shape.subarray(0, Math.max(cut, shape.length - cut))), Buffer.from(tail), Buffer.alloc(fill, 0x61)]));

const detect: FuzzTarget = {
  name: 'protocol detection',
  inputsPerRun: 1,
  property: () =>
    fc.property(detectInput, fc.integer({ min: 1, max: 1100 }), (buf, split) => {
      const whole = detectProtocol(buf);
      if (!DETECTIONS.includes(whole)) throw new Error(`unknown detection ${whole}`);
      if (buf.length >= MAX_DETECT_BYTES && whole === 'need_more') throw new Error('need_more past MAX_DETECT_BYTES');
      // A decision never changes as more bytes arrive (the listener decides on the first decided prefix).
      const prefix = buf.subarray(0, Math.min(split, buf.length));
      const early = detectProtocol(prefix);
      if (early !== 'need_more' && early !== whole) throw new Error(`prefix of ${prefix.length} bytes decided ${early}, the whole ${buf.length} bytes ${whole}`);
    }),
};

// ---- http-rule / route template parser ----------------------------------

const TEMPLATE_TOKENS = ['/', '{', '}', '=', '*', '**', ':', 'a', 'b', 'v1', '.', '_', '1', ' ', '%2F', '?', 'x.y', '{a}', '{a=*}', '{b=**}'];
const templateText = fc.array(fc.constantFrom(...TEMPLATE_TOKENS), { maxLength: 16 }).map((ts) => `/${ts.join('')}`);
const anyText = fc.string({ maxLength: 40 });

const template: FuzzTarget = {
  name: 'http-rule template parser',
  inputsPerRun: 1,
  property: () =>
    fc.property(fc.oneof(templateText, anyText), (t) => {
      const parsed = parseRouteTemplate(t);
      if (validateRouteTemplate(t) !== (typeof parsed === 'string' ? parsed : undefined)) throw new Error('validate and parse disagree');
      if (typeof parsed === 'string') return;
      const segs = parsed.segments;
      if (segs.length > MAX_TEMPLATE_SEGMENTS) throw new Error('too many segments accepted');
      segs.forEach((s, i) => {
        if (s.kind === 'multi' && i !== segs.length - 1) throw new Error('** not last');
        if (s.kind === 'literal' && /[{}*=?#\s]/.test(s.value)) throw new Error(`syntax in a literal: ${s.value}`);
      });
      const names = new Set<string>();
      for (const c of parsed.captures) {
        if (c.start < 0 || c.end > segs.length || c.start >= c.end) throw new Error(`capture ${c.name} out of range`);
        if (names.has(c.name)) throw new Error(`capture ${c.name} twice`);
        names.add(c.name);
      }
      // What parses compiles into a route table.
      RouteTable.compile(routeConfig({ virtualHosts: [{ domains: ['*'], routes: [{ match: { template: t }, route: { cluster: 'c' } }] }] }));
    }),
};

// ---- router against the reference matcher -------------------------------

const LITERALS = ['a', 'b', 'v1', 'x:y'];
const PATH_SEGMENTS = ['a', 'b', 'v1', 'c', '', '%41', '%zz', 'a%2Fb', 'a:go', ':go', 'b:stop', 'x:y', 'x:y:go', '..'];
const VERBS = ['go', 'stop'];
const SERVICES = ['a', 'v1', 'svc.S'];
const METHODS = ['GET', 'POST', 'PUT'];

const pathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('', '*', 'a/b', '//', '/') },
  {
    weight: 29,
    arbitrary: fc
      .tuple(fc.array(fc.constantFrom(...PATH_SEGMENTS), { maxLength: 5 }), fc.option(fc.constantFrom(...VERBS), { freq: 3 }))
      .map(([segs, verb]) => `/${segs.join('/')}${verb ? `:${verb}` : ''}`),
  },
);

const templateArb: fc.Arbitrary<string> = fc
  .tuple(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), fc.option(fc.constantFrom(...VERBS), { freq: 2 }))
  .map(([kinds, picks, verb]) => {
    let v = 0;
    const segs = kinds.map((k0, i) => {
      const last = i === kinds.length - 1;
      const k = last ? k0 : k0 % 5;
      const p = picks[i]!;
      if (k <= 1) {
        const lits = LITERALS.filter((l) => !last || !l.includes(':'));
        return lits[p % lits.length]!;
      }
      if (k === 2) return '*';
      if (k === 3) return `{p${v++}}`;
      if (k === 4) return `{p${v++}=${['a/*', '*/b', '*'][p % 3]}}`;
      if (k === 5) return '**';
      return `{p${v++}=${['**', 'a/**', '*/**'][p % 3]}}`;
    });
    return `/${segs.join('/')}${verb ? `:${verb}` : ''}`;
  });


const matchArb: fc.Arbitrary<JsonObject> = fc
  .tuple(
    fc.oneof(
      pathArb.map((p): JsonObject => ({ path: p || '/' })),
      fc.tuple(pathArb, fc.integer({ min: 1, max: 6 })).map(([p, n]): JsonObject => ({ prefix: p.slice(0, n) })),
      fc.constantFrom('/a/.*', '/[ab]/.*', '.*go', '/v1/[^/]+', '/.*').map((r): JsonObject => ({ regex: r })),
      fc
        .tuple(fc.constantFrom(...SERVICES), fc.option(fc.constantFrom(...LITERALS)), fc.option(templateArb))
        .map(([service, method, t]): JsonObject => ({ grpc: method ? { service, method } : { service }, ...(t ? { template: t } : {}) })),
      templateArb.map((t): JsonObject => ({ template: t })),
    ),
    fc.option(fc.subarray(METHODS), { freq: 4 }),
    fc.option(fc.constantFrom(...HEADER_MATCH_SAMPLES).map((h): JsonObject => ({ ...h })), { freq: 4 }),
  )
  .map(([m, methods, header]) => {
    if (m['grpc'] && !m['template']) return m;
    return { ...m, ...(methods ? { methods } : {}), ...(header ? { headers: [header] } : {}) };
  });

const requestArb: fc.Arbitrary<RouteRequest> = fc
  .tuple(
    fc.oneof({ weight: 1, arbitrary: fc.tuple(fc.constantFrom(...SERVICES), fc.constantFrom(...LITERALS)).map(([s, m]) => `/${s}/${m}`) }, { weight: 3, arbitrary: pathArb }),
    fc.constantFrom(...METHODS),
    fc.constantFrom<RouteRequest['headers']>({}, { 'x-h': '1' }, { 'x-h': '2' }, { 'x-h': ['1', '2'] }),
    fc.boolean(),
  )
  .map(([path, method, headers, isGrpc]) => ({ host: 'h', method, path, headers, isGrpc }));

export const ROUTER_REQUESTS_PER_TABLE = 20;

const router: FuzzTarget = {
  name: 'router vs reference matcher',
  inputsPerRun: ROUTER_REQUESTS_PER_TABLE,
  property: () =>
    fc.property(fc.array(matchArb, { minLength: 1, maxLength: 12 }), fc.array(requestArb, { minLength: ROUTER_REQUESTS_PER_TABLE, maxLength: ROUTER_REQUESTS_PER_TABLE }), (matches, requests) => {
      const routes: JsonObject[] = matches.map((match, i) => ({ name: `r${i}`, match, route: { cluster: 'c' } }));
      const t = RouteTable.compile(routeConfig({ virtualHosts: [{ name: 'vh', domains: ['*'], routes }] }));
      for (const request of requests) {
        const got = t.match(request);
        const want = referenceMatch(routes, request);
        if (got?.route.name !== want?.name) throw new Error(`route ${String(got?.route.name)} != reference ${String(want?.name)} for ${JSON.stringify(request)}`);
        if (want && JSON.stringify(got!.params) !== JSON.stringify(want.params)) {
          throw new Error(`params ${JSON.stringify(got!.params)} != reference ${JSON.stringify(want.params)} for ${JSON.stringify(request)}`);
        }
      }
    }),
};

// ---- JSON <-> protobuf ---------------------------------------------------

const registry = createRegistry();
const INT64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const bookArb = fc.record({ id: INT64, author: fc.string({ unit: 'grapheme', maxLength: 12 }), title: fc.string({ maxLength: 12 }) });

/** Arbitrary JSON, plus JSON shaped like the schemas' fields (right names, wrong or right types). */
const jsonForSchemas: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record(
    {
      id: fc.oneof(fc.string({ maxLength: 22 }), fc.integer(), fc.double(), fc.constant(null), fc.boolean()),
      author: fc.jsonValue({ maxDepth: 1 }),
      title: fc.string(),
      books: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
      nextPageToken: fc.jsonValue({ maxDepth: 1 }),
      detectTimeout: fc.oneof(fc.constantFrom('1s', '0.1s', '-1s', '1.5s', '315576000001s', 's', '1ms', ''), fc.string({ maxLength: 8 })),
      limits: fc.dictionary(fc.constantFrom('maxConnections', 'maxHeaderBytes', 'maxRequestBodyBytes', 'requestHeadersTimeout'), fc.jsonValue({ maxDepth: 1 })),
      address: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  ),
);

const SCHEMAS: readonly DescMessage[] = [BookSchema, ListBooksResponseSchema, ListenerSchema];

const transcode: FuzzTarget = {
  name: 'JSON <-> protobuf',
  inputsPerRun: 2,
  property: () =>
    fc.property(jsonForSchemas, fc.constantFrom(...SCHEMAS), fc.array(bookArb, { maxLength: 4 }), fc.string({ maxLength: 10 }), (json, schema, books, token) => {
      // Any JSON: a message or violations, never an exception; what decodes re-encodes and decodes to the same message.
      const r = decodeJson(schema, json as never, registry);
      if (r.ok) {
        const again = fromJson(schema, toJson(schema, r.message, { registry }), { registry });
        if (!equals(schema, r.message, again)) throw new Error(`JSON round trip changed the message of ${JSON.stringify(json)}`);
      } else if (r.violations.length === 0) throw new Error('a failed decode without violations');
      // A message: to JSON and back is the identity (int64 as strings, proto3 defaults omitted).
      const msg = create(ListBooksResponseSchema, { books: books.map((b) => create(BookSchema, { ...b, title: b.title + token })) });
      const back = decodeJson(ListBooksResponseSchema, toJson(ListBooksResponseSchema, msg), registry);
      if (!back.ok || !equals(ListBooksResponseSchema, msg, back.message as typeof msg)) throw new Error(`round trip failed for ${JSON.stringify(toJson(ListBooksResponseSchema, msg))}`);
    }),
};

export const TARGETS: readonly FuzzTarget[] = [detect, template, router, transcode];
