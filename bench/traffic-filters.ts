/**
 * Per-request CPU of the traffic filters (issue 16), measured in-process on
 * the filters' own phases (no sockets: the proxy's share only), and the
 * compression cost per KiB of JSON. `node --import tsx bench/traffic-filters.ts`.
 */
import { create } from '@bufbuild/protobuf';
import zlib from 'node:zlib';
import { Registry } from 'prom-client';
import type { OutgoingHttpHeaders } from 'node:http2';
import { BenchDownstream } from './lib/bench-downstream.js';
import { corsFactory } from '../src/proxy/filters/cors/cors-filter.js';
import { headerMutationFactory } from '../src/proxy/filters/header-mutation/header-mutation-filter.js';
import { securityHeadersFactory } from '../src/proxy/filters/security-headers/security-headers-filter.js';
import { compressionFactory } from '../src/proxy/filters/compression/compression-filter.js';
import { CorsSchema } from '../src/gen/outrigger/filters/cors/v1/cors_pb.js';
import { HeaderMutationSchema } from '../src/gen/outrigger/filters/header_mutation/v1/header_mutation_pb.js';
import { SecurityHeadersSchema } from '../src/gen/outrigger/filters/security_headers/v1/security_headers_pb.js';
import { CompressionSchema } from '../src/gen/outrigger/filters/compression/v1/compression_pb.js';
import type { HttpFilter } from '../src/proxy/filters/filter.js';

const N = 300_000;
function measure(name: string, f: HttpFilter, reqHeaders: Record<string, string>): void {
  // One Downstream reused (its construction is the same with or without filters); the request
  // headers it carries are restored each round, so both loops do the same copying.
  const ds = new BenchDownstream({ ...reqHeaders });
  const reset = (): void => {
    for (const k of Object.keys(ds.headers)) delete ds.headers[k];
    Object.assign(ds.headers, reqHeaders);
  };
  const loop = (n: number, withFilter: boolean): number => {
    const t0 = process.hrtime.bigint();
    let sink = 0;
    for (let i = 0; i < n; i++) {
      reset();
      const h: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': 100 };
      if (withFilter) {
        if (f.onRequestHeaders) f.onRequestHeaders(ds);
        if (f.onResponseHeaders) f.onResponseHeaders(ds, 200, h);
      }
      sink += Object.keys(h).length;
    }
    if (sink < 0) throw new Error();
    return Number(process.hrtime.bigint() - t0) / n;
  };
  let best = Infinity;
  for (let r = 0; r < 7; r++) best = Math.min(best, loop(N, true) - loop(N, false));
  console.log(`${name.padEnd(50)} ${best.toFixed(0).padStart(6)} ns/request`);
}

const origin = { origin: 'https://shop.example.com', 'user-agent': 'bench' };
measure('cors (actual request, suffix-pattern origin)', corsFactory().compile(create(CorsSchema, { allowOrigins: ['https://app.example', 'https://*.example.com'], allowCredentials: true, exposeHeaders: ['x-a'] }), 'cors'), origin);
measure('cors (preflight answered)', corsFactory().compile(create(CorsSchema, { allowOrigins: ['https://*.example.com'], allowHeaders: ['content-type'], maxAge: { seconds: 600n, nanos: 0 } }), 'cors'), { ...origin, 'access-control-request-method': 'PUT' });
measure(
  'headerMutation (2 set with variables, 1 remove)',
  headerMutationFactory().compile(
    create(HeaderMutationSchema, { request: { set: [{ name: 'x-client', value: '%DOWNSTREAM_REMOTE_ADDRESS%' }, { name: 'x-user', value: 'u=%REQ(user-agent)%;r=%ROUTE%' }], remove: ['x-secret'] } }),
    'hm',
  ),
  origin,
);
measure('securityHeaders (defaults, TLS)', securityHeadersFactory().compile(create(SecurityHeadersSchema, {}), 'sh'), origin);
measure('compression (headers phase, response too small)', compressionFactory({ registry: new Registry() }).compile(create(CompressionSchema, {}), 'c'), { ...origin, 'accept-encoding': 'gzip, br' });

// Compression: CPU per KiB of a streamed JSON body (16 KiB chunks, each flushed, as the filter does).
const body = Buffer.from(JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ id: i, title: `book ${i}`, author: 'Someone Else', tags: ['a', 'b'] }))));
for (const [name, mk] of [
  ['gzip level 6', () => zlib.createGzip({ level: 6, flush: zlib.constants.Z_SYNC_FLUSH })],
  ['br quality 4', () => zlib.createBrotliCompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } })],
] as const) {
  const once = async (): Promise<number> => {
    const z = mk();
    let out = 0;
    z.on('data', (c: Buffer) => (out += c.length));
    const done = new Promise((r) => z.on('end', r));
    const cpu0 = process.cpuUsage();
    for (let o = 0; o < body.length; o += 16384) z.write(body.subarray(o, o + 16384));
    z.end();
    await done;
    const cpu = process.cpuUsage(cpu0);
    return ((cpu.user + cpu.system) / (body.length / 1024)) * 1000 + out * 0;
  };
  for (let i = 0; i < 5; i++) await once();
  let best = Infinity;
  for (let i = 0; i < 20; i++) best = Math.min(best, await once());
  console.log(`compression ${name.padEnd(32)} ${best.toFixed(0).padStart(6)} ns CPU per KiB (body ${(body.length / 1024).toFixed(0)} KiB)`);
}
