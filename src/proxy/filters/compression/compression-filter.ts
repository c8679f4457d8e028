import zlib from 'node:zlib';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Transform } from 'node:stream';
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import { Compression_Encoding, type Compression } from '../../../gen/outrigger/filters/compression/v1/compression_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import { addVary } from '../../http/vary.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { negotiate, type Coding } from './negotiate.js';

/** zstd is in node:zlib from Node 22.15 / 23.8; on Node 20 it is dropped from the offered codings (docs/filters.md). */
const z = zlib as typeof zlib & { createZstdCompress?: (o?: object) => Transform; constants: Record<string, number> };
export const ZSTD_AVAILABLE = typeof z.createZstdCompress === 'function';

export const DEFAULT_CONTENT_TYPES = [
  'text/',
  'application/json',
  'application/+json',
  'application/javascript',
  'application/xml',
  'application/+xml',
  'application/x-ndjson',
  'application/json-seq',
  'image/svg+xml',
  'application/wasm',
];
export const DEFAULT_MIN_CONTENT_LENGTH = 1024;

/** Compiled content-type rules: exact types, `type/` prefixes and `type/+suffix` structured-syntax suffixes. */
class TypeMatcher {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly suffixes: { type: string; suffix: string }[] = [];

  constructor(types: readonly string[]) {
    for (const t0 of types) {
      const t = t0.trim().toLowerCase();
      const slash = t.indexOf('/');
      if (t.endsWith('/') || t.endsWith('/*')) this.prefixes.push(t.slice(0, slash + 1));
      else if (t[slash + 1] === '+' || t.slice(slash + 1).startsWith('*+')) this.suffixes.push({ type: t.slice(0, slash + 1), suffix: t.slice(t.indexOf('+')) });
      else this.exact.add(t);
    }
  }

  matches(contentType: string): boolean {
    const semi = contentType.indexOf(';');
    const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
    if (this.exact.has(t)) return true;
    for (const p of this.prefixes) if (t.startsWith(p)) return true;
    for (const s of this.suffixes) if (t.startsWith(s.type) && t.endsWith(s.suffix)) return true;
    return false;
  }
}

export interface CompressionDeps {
  readonly registry: Registry;
}

/**
 * `compression` (docs/filters.md#compression): response bodies compressed as
 * they stream (each chunk flushed, as Envoy's compressor does, so server-sent
 * events and streamed JSON arrive as they are written), chosen by
 * `Accept-Encoding` with q-values. Left alone: gRPC (its messages carry their
 * own `grpc-encoding`), HEAD and bodyless answers, 1xx/204/206/304, bodies
 * already encoded, `Cache-Control: no-transform`, types not listed, bodies
 * known to be shorter than `minContentLength`.
 */
export function compressionFactory(deps: CompressionDeps): FilterFactory<Compression> {
  const bytes = new Counter({
    name: 'outrigger_compression_bytes_total',
    help: 'Response body bytes through the compression filter, before (in) and after (out) compression.',
    labelNames: ['coding', 'direction'],
    registers: [deps.registry],
  });
  const responses = new Counter({
    name: 'outrigger_compression_responses_total',
    help: 'Responses compressed by the compression filter, by coding.',
    labelNames: ['coding'],
    registers: [deps.registry],
  });
  return {
    name: 'compression',
    compile(c: Compression, name: string): HttpFilter {
      const offered = offeredCodings(c.encodings);
      const types = new TypeMatcher(c.contentTypes.length > 0 ? c.contentTypes : DEFAULT_CONTENT_TYPES);
      const min = c.minContentLength === undefined ? DEFAULT_MIN_CONTENT_LENGTH : Number(c.minContentLength);
      const gzipLevel = c.gzipLevel || 6;
      const brQuality = c.brotliQuality ?? 4;
      const zstdLevel = c.zstdLevel || 3;
      const encoder = (coding: Coding): Transform => {
        switch (coding) {
          case 'gzip':
            return zlib.createGzip({ level: gzipLevel, flush: zlib.constants.Z_SYNC_FLUSH });
          case 'br':
            return zlib.createBrotliCompress({
              flush: zlib.constants.BROTLI_OPERATION_FLUSH,
              params: { [zlib.constants.BROTLI_PARAM_QUALITY]: brQuality },
            });
          case 'zstd':
            return z.createZstdCompress!({ flush: z.constants['ZSTD_e_flush'], params: { [z.constants['ZSTD_c_compressionLevel']!]: zstdLevel } });
        }
      };
      const counted = (coding: Coding, t: Transform): Transform => {
        const inC = bytes.labels(coding, 'in');
        const outC = bytes.labels(coding, 'out');
        responses.labels(coding).inc();
        // Counted per chunk on the encoder's own events: no extra stream in the path.
        const write = t.write.bind(t);
        t.write = ((chunk: Buffer, ...rest: never[]) => {
          inC.inc(chunk.length);
          return write(chunk, ...rest);
        }) as typeof t.write;
        t.on('data', (d: Buffer) => outC.inc(d.length));
        return t;
      };
      const rd = c.requestDecompression;
      const maxDecoded = rd?.enabled ? Number(rd.maxBytes || DEFAULT_MAX_DECOMPRESSED_BYTES) : 0;
      return {
        name,
        ...(maxDecoded > 0 ? { onRequestHeaders: (ds: Downstream) => decompressRequest(ds, maxDecoded) } : {}),
        encodesResponseBody: true,
        onResponseHeaders(ds: Downstream, status: number, headers: OutgoingHttpHeaders): void {
          if (ds.grpc || ds.kind === 'ws' || status < 200 || status === 204 || status === 206 || status === 304) return;
          const ct = headers['content-type'];
          if (typeof ct !== 'string' || !types.matches(ct)) return;
          const ce = headers['content-encoding'];
          if (ce !== undefined && String(ce).toLowerCase() !== 'identity') return;
          const cc = headers['cache-control'];
          if (cc !== undefined && /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(String(cc))) return;
          if (headers['content-range'] !== undefined) return;
          const len = headers['content-length'];
          if (len !== undefined && Number(len) < min) return;
          // From here the representation depends on Accept-Encoding, chosen or not.
          addVary(headers, 'Accept-Encoding');
          if (ds.headOnly || ds.method === 'HEAD') return;
          const coding = negotiate(ds.headers['accept-encoding'], offered);
          if (coding === undefined) return;
          headers['content-encoding'] = coding;
          delete headers['content-length'];
          // A strong validator names one byte sequence; the compressed one is another (RFC 9110 §8.8.1).
          const etag = headers['etag'];
          if (typeof etag === 'string' && !etag.startsWith('W/')) headers['etag'] = `W/${etag}`;
          ds.encodeResponse(counted(coding, encoder(coding)));
        },
      };
    },
  };
}

function offeredCodings(encodings: readonly Compression_Encoding[]): Coding[] {
  const list: Coding[] = [];
  const src = encodings.length > 0 ? encodings : [Compression_Encoding.BR, Compression_Encoding.GZIP, Compression_Encoding.ZSTD];
  for (const e of src) {
    const c: Coding | undefined = e === Compression_Encoding.GZIP ? 'gzip' : e === Compression_Encoding.BR ? 'br' : e === Compression_Encoding.ZSTD ? 'zstd' : undefined;
    if (c === undefined || (c === 'zstd' && !ZSTD_AVAILABLE) || list.includes(c)) continue;
    list.push(c);
  }
  return list;
}

export const DEFAULT_MAX_DECOMPRESSED_BYTES = 10 * 1024 * 1024;

type Decoder = (buf: Buffer, opts: zlib.ZlibOptions & zlib.BrotliOptions, cb: (err: Error | null, out: Buffer) => void) => void;
const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: zlib.gunzip,
  'x-gzip': zlib.gunzip,
  deflate: zlib.inflate,
  br: zlib.brotliDecompress,
  ...(ZSTD_AVAILABLE ? { zstd: (z as unknown as { zstdDecompress: Decoder }).zstdDecompress } : {}),
};

/**
 * Request decompression: a body with a Content-Encoding we know is read
 * whole (at most `max` bytes as sent) and decoded with node:zlib's output cap
 * (`maxOutputLength`), so a zip bomb stops at `max` decoded bytes and is
 * refused with 413 before anything reaches the upstream. Buffered, not
 * streamed: the refusal must come before the upstream sees a byte, and an
 * upload that is refused half-way would already have reached it. The upstream
 * gets the decoded body with a matching Content-Length and no Content-Encoding.
 */
function decompressRequest(ds: Downstream, max: number): FilterVerdict | Promise<FilterVerdict> {
  if (ds.grpc || ds.kind === 'ws') return undefined;
  const ce = ds.headers['content-encoding'];
  if (typeof ce !== 'string') return undefined;
  const decode = DECODERS[ce.trim().toLowerCase()];
  if (decode === undefined) return undefined;
  return new Promise<FilterVerdict>((resolve) => {
    const src = ds.rawBody;
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    const finish = (v: FilterVerdict): void => {
      if (done) return;
      done = true;
      src.off('data', onData);
      resolve(v);
    };
    const onData = (c: Buffer): void => {
      n += c.length;
      ds.ex.bytes_in += c.length;
      if (n > max) {
        ds.noKeepAlive();
        return finish({ code: 'request_too_large', detail: `the encoded body is over ${max} bytes` });
      }
      chunks.push(c);
    };
    src.on('data', onData);
    src.once('error', () => finish({ code: 'downstream_reset' }));
    src.once('end', () => {
      if (done) return;
      decode(Buffer.concat(chunks), { maxOutputLength: max }, (err, out) => {
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            return finish({ code: 'request_too_large', detail: `the decoded body is over ${max} bytes` });
          }
          return finish({ code: 'bad_request', detail: `the ${ce} body does not decode: ${err.message}` });
        }
        delete ds.headers['content-encoding'];
        delete ds.headers['transfer-encoding'];
        ds.headers['content-length'] = String(out.length);
        // Counted again as the forwarder relays the decoded copy: undo the raw count.
        ds.ex.bytes_in -= n;
        ds.replaceRequestBody(out);
        finish(undefined);
      });
    });
  });
}
