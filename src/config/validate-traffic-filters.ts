import type { Cors } from '../gen/outrigger/filters/cors/v1/cors_pb.js';
import type { HeaderMutation, HeaderOps } from '../gen/outrigger/filters/header_mutation/v1/header_mutation_pb.js';
import { Compression_Encoding, type Compression } from '../gen/outrigger/filters/compression/v1/compression_pb.js';
import type { SecurityHeaders } from '../gen/outrigger/filters/security_headers/v1/security_headers_pb.js';
import type { Cache } from '../gen/outrigger/filters/cache/v1/cache_pb.js';
import { parseHeaderTemplate } from '../core/header-template.js';
import { fromBinary, createFileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

type Report = (path: string, message: string) => void;

/**
 * Load-time checks of the traffic filters (cors, headerMutation, compression,
 * securityHeaders, cache; docs/filters.md), with field paths. Kept apart from
 * validate-filters.ts (the security filters) so each file stays about one family.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/i;

/**
 * Headers no mutation may touch: hop-by-hop and connection-framing ones
 * (RFC 9110 §7.6.1; the proxy's own list is src/proxy/http/headers.ts, which
 * the config layer does not import), and `host`, which routing decided on.
 */
const PROTECTED = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
  'host',
  'content-length',
]);

export function checkCors(c: Cors, at: string, report: Report): void {
  const star = c.allowOrigins.includes('*');
  if (c.allowOrigins.length === 0 && c.allowOriginRegexes.length === 0) report(`${at}.allowOrigins`, 'list at least one origin (or allowOriginRegexes)');
  if (star && c.allowCredentials) report(`${at}.allowCredentials`, 'not with a "*" origin: browsers refuse credentials for a wildcard; list the origins');
  c.allowOrigins.forEach((o, i) => {
    if (o === '*') return;
    const p = `${at}.allowOrigins[${i}]`;
    const wild = o.indexOf('*');
    if (wild >= 0 && !/^[a-z][a-z0-9+.-]*:\/\/\*\.[^*/]+$/i.test(o)) report(p, 'a pattern is scheme://*.domain (one leading wildcard label), e.g. https://*.example.com');
    else if (wild < 0 && !/^[a-z][a-z0-9+.-]*:\/\/[^/]+$/i.test(o) && o !== 'null') report(p, 'an origin is scheme://host[:port], without a path');
  });
  c.allowOriginRegexes.forEach((r, i) => {
    try {
      new RegExp(r);
    } catch (err) {
      report(`${at}.allowOriginRegexes[${i}]`, (err as Error).message);
    }
  });
  c.allowMethods.forEach((m, i) => {
    if (m !== '*' && !TOKEN.test(m)) report(`${at}.allowMethods[${i}]`, `"${m}" is not a method name`);
  });
  c.allowHeaders.forEach((h, i) => {
    if (h !== '*' && !TOKEN.test(h)) report(`${at}.allowHeaders[${i}]`, `"${h}" is not a header name`);
  });
  c.exposeHeaders.forEach((h, i) => {
    if (h !== '*' && !TOKEN.test(h)) report(`${at}.exposeHeaders[${i}]`, `"${h}" is not a header name`);
  });
  if (c.maxAge && (c.maxAge.seconds < 0n || c.maxAge.nanos < 0)) report(`${at}.maxAge`, 'must not be negative');
}

export function checkHeaderMutation(h: HeaderMutation, at: string, report: Report): void {
  const ops = (o: HeaderOps | undefined, p: string, trailers: boolean): void => {
    if (!o) return;
    const name = (n: string, np: string): void => {
      if (n.startsWith(':')) report(np, `pseudo-header ${n} cannot be changed (use route rewrites for :path / :authority)`);
      else if (!TOKEN.test(n)) report(np, `"${n}" is not a header name`);
      else if (PROTECTED.has(n.toLowerCase())) report(np, `${n} is a hop-by-hop or framing header and cannot be changed`);
      else if (trailers && n.toLowerCase() === 'grpc-status') report(np, 'grpc-status is the call outcome and cannot be changed');
    };
    o.remove.forEach((n, i) => name(n, `${p}.remove[${i}]`));
    for (const kind of ['set', 'add'] as const) {
      o[kind].forEach((v, i) => {
        const vp = `${p}.${kind}[${i}]`;
        name(v.name, `${vp}.name`);
        try {
          parseHeaderTemplate(v.value);
        } catch (err) {
          report(`${vp}.value`, (err as Error).message);
        }
        if (/[\r\n\0]/.test(v.value)) report(`${vp}.value`, 'must not contain CR, LF or NUL');
      });
    }
  };
  ops(h.request, `${at}.request`, false);
  ops(h.response, `${at}.response`, false);
  ops(h.responseTrailers, `${at}.responseTrailers`, true);
}

export function checkCompression(c: Compression, at: string, report: Report): void {
  c.encodings.forEach((e, i) => {
    if (e === Compression_Encoding.UNSPECIFIED) report(`${at}.encodings[${i}]`, 'ENCODING_GZIP, ENCODING_BR or ENCODING_ZSTD');
  });
  if (c.gzipLevel !== 0 && (c.gzipLevel < 1 || c.gzipLevel > 9)) report(`${at}.gzipLevel`, 'must be 1..9');
  if (c.brotliQuality !== undefined && c.brotliQuality > 11) report(`${at}.brotliQuality`, 'must be 0..11');
  if (c.zstdLevel !== 0 && (c.zstdLevel < 1 || c.zstdLevel > 19)) report(`${at}.zstdLevel`, 'must be 1..19');
  c.contentTypes.forEach((t, i) => {
    if (!/^[a-z0-9!#$&^_.+-]+\/(?:\*|[a-z0-9!#$&^_.+*-]*)$/i.test(t.trim())) report(`${at}.contentTypes[${i}]`, `"${t}" is not a media type (type/subtype, type/*, type/+suffix)`);
  });
}

export function checkSecurityHeaders(s: SecurityHeaders, at: string, report: Report): void {
  const fields = ['contentTypeOptions', 'frameOptions', 'strictTransportSecurity', 'xssProtection', 'contentSecurityPolicy', 'referrerPolicy', 'permissionsPolicy', 'crossOriginOpenerPolicy'] as const;
  for (const f of fields) {
    const v = s[f];
    if (v !== undefined && /[\r\n\0]/.test(v)) report(`${at}.${f}`, 'must not contain CR, LF or NUL');
  }
  if (s.strictTransportSecurity !== undefined && s.strictTransportSecurity !== '' && !/max-age=\d+/i.test(s.strictTransportSecurity)) {
    report(`${at}.strictTransportSecurity`, 'needs max-age=<seconds> (RFC 6797)');
  }
}

/** A `grpcMethods[].method`: `/package.Service/Method` or `/package.Service/*`. */
const GRPC_METHOD = /^\/[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*\/(?:[A-Za-z_]\w*|\*)$/;

export function checkCache(c: Cache, at: string, report: Report): void {
  const negative = (d: { seconds: bigint; nanos: number } | undefined): boolean => d !== undefined && (d.seconds < 0n || d.nanos < 0);
  if (c.storage.case === 'redis') {
    const url = c.storage.value.url;
    let ok = /^rediss?:\/\//.test(url);
    if (ok) {
      try {
        new URL(url);
      } catch {
        ok = false;
      }
    }
    if (!ok) report(`${at}.redis.url`, 'a redis://host:port or rediss://host:port URL is required');
  }
  const maxBytes = c.storage.case === 'memory' ? c.storage.value.maxBytes : 0n;
  if (c.maxBodyBytes !== undefined) {
    if (c.maxBodyBytes === 0n) report(`${at}.maxBodyBytes`, 'must be at least 1 (omit it for the 1 MiB default)');
    else if (maxBytes > 0n && c.maxBodyBytes > maxBytes) report(`${at}.maxBodyBytes`, `is larger than memory.maxBytes (${maxBytes}): no such response could be stored`);
  }
  if (negative(c.defaultTtl)) report(`${at}.defaultTtl`, 'must not be negative');
  if (/[\s\0*?[\]]/.test(c.keyPrefix)) report(`${at}.keyPrefix`, 'must not contain whitespace or glob characters (* ? [ ])');
  const seen = new Set<string>();
  c.grpcMethods.forEach((m, i) => {
    const p = `${at}.grpcMethods[${i}]`;
    if (!GRPC_METHOD.test(m.method)) report(`${p}.method`, `"${m.method}" is not /package.Service/Method or /package.Service/*`);
    else if (seen.has(m.method)) report(`${p}.method`, `"${m.method}" is listed twice`);
    seen.add(m.method);
    if (negative(m.ttl)) report(`${p}.ttl`, 'must not be negative');
  });
  if (c.descriptorBin.length > 0) {
    try {
      createFileRegistry(fromBinary(FileDescriptorSetSchema, c.descriptorBin));
    } catch (err) {
      report(`${at}.descriptorBin`, `not a usable FileDescriptorSet: ${(err as Error).message}`);
    }
  }
}
