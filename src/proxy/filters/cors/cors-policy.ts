import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { addVary } from '../../http/vary.js';

/** What a CORS policy is compiled from: the `cors` filter's config, or a transcoding route's `allowedOrigins`. */
export interface CorsPolicyInit {
  readonly allowOrigins: readonly string[];
  readonly allowOriginRegexes?: readonly string[];
  readonly allowMethods?: readonly string[];
  readonly allowHeaders?: readonly string[];
  readonly exposeHeaders?: readonly string[];
  /** Seconds; undefined: no Access-Control-Max-Age. */
  readonly maxAgeSeconds?: number | undefined;
  readonly allowCredentials?: boolean;
  readonly allowPrivateNetwork?: boolean;
  /** Adds what gRPC-Web and Connect browser clients need (methods, request headers, exposed headers). */
  readonly grpcWebConnect?: boolean;
  /** An origin whose host is the request's Host is allowed (a transcoding route with no origin list). */
  readonly sameOrigin?: boolean;
}

/** The gRPC-Web / Connect preset (docs/filters.md#cors): what their browser clients send and must read. */
export const GRPC_WEB_CONNECT_PRESET = {
  methods: ['POST', 'GET'],
  requestHeaders: [
    'content-type',
    'x-grpc-web',
    'x-user-agent',
    'grpc-timeout',
    'connect-protocol-version',
    'connect-timeout-ms',
    'connect-accept-encoding',
    'connect-content-encoding',
  ],
  exposeHeaders: ['grpc-status', 'grpc-message', 'grpc-status-details-bin', 'connect-content-encoding', 'content-encoding'],
} as const;

const DEFAULT_METHODS = ['GET', 'HEAD', 'POST'];

/** A parsed `scheme://*.suffix` origin pattern. */
interface SuffixPattern {
  readonly scheme: string;
  readonly suffix: string;
}

const LABELS = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/;

/**
 * The one CORS engine (the `cors` filter and a transcoding route's
 * `allowedOrigins` both compile to it), built once per config version:
 * origin sets, patterns, regexes and the preflight answer's constant headers
 * are prepared here, so a request costs a few map lookups and string joins.
 *
 * - `preflight()` answers an `OPTIONS` + `Access-Control-Request-Method`
 *   request locally: 204 with the allowances, or 403 for an origin not
 *   allowed (never forwarded: an upstream that does not know CORS would
 *   answer it with 404 or 405, which tells the browser nothing).
 * - `decorate()` adds the allowances to an actual response.
 * - `Vary: Origin` is set on every answer that depends on the Origin (all but
 *   a plain `*` policy), with or without an Origin in the request, so a shared
 *   cache never serves one origin's answer to another.
 */
export class CorsPolicy {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly patterns: readonly SuffixPattern[];
  private readonly regexes: readonly RegExp[];
  private readonly sameOrigin: boolean;
  private readonly credentials: boolean;
  private readonly privateNetwork: boolean;
  /** `*` without credentials: the literal `*`, which does not depend on the Origin. */
  private readonly literalStar: boolean;
  private readonly methods: string | undefined;
  private readonly methodSet: ReadonlySet<string> | undefined;
  private readonly anyHeader: boolean;
  private readonly headers: string | undefined;
  private readonly expose: string | undefined;
  private readonly maxAge: string | undefined;

  constructor(init: CorsPolicyInit) {
    const exact = new Set<string>();
    const patterns: SuffixPattern[] = [];
    let any = false;
    for (const o of init.allowOrigins) {
      const lower = o.toLowerCase();
      if (lower === '*') any = true;
      else {
        const p = parseSuffixPattern(lower);
        if (p) patterns.push(p);
        else exact.add(lower);
      }
    }
    this.any = any;
    this.exact = exact;
    this.patterns = patterns;
    this.regexes = (init.allowOriginRegexes ?? []).map((r) => new RegExp(`^(?:${r})$`, 'i'));
    this.sameOrigin = init.sameOrigin === true;
    this.credentials = init.allowCredentials === true;
    this.privateNetwork = init.allowPrivateNetwork === true;
    this.literalStar = any && !this.credentials;
    const preset = init.grpcWebConnect === true;
    const methods = uniqUpper([...(init.allowMethods?.length ? init.allowMethods : DEFAULT_METHODS), ...(preset ? GRPC_WEB_CONNECT_PRESET.methods : [])]);
    if (methods.includes('*')) this.methods = undefined;
    else {
      this.methods = methods.join(', ');
      this.methodSet = new Set(methods);
    }
    const hs = uniqLower([...(init.allowHeaders ?? []), ...(preset ? GRPC_WEB_CONNECT_PRESET.requestHeaders : [])]);
    this.anyHeader = hs.includes('*');
    this.headers = this.anyHeader || hs.length === 0 ? undefined : hs.join(', ');
    const ex = uniqLower([...(init.exposeHeaders ?? []), ...(preset ? GRPC_WEB_CONNECT_PRESET.exposeHeaders : [])]);
    this.expose = ex.length === 0 ? undefined : ex.join(', ');
    this.maxAge = init.maxAgeSeconds !== undefined && init.maxAgeSeconds > 0 ? String(Math.floor(init.maxAgeSeconds)) : undefined;
  }

  /** Is this request a CORS preflight (Fetch standard §3.2.2)? */
  static isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
    return method === 'OPTIONS' && headers['origin'] !== undefined && headers['access-control-request-method'] !== undefined;
  }

  /** Is `origin` (the request's `Origin`) allowed? `headers` gives the Host for the same-origin rule. */
  allows(origin: string, headers: IncomingHttpHeaders): boolean {
    if (this.any) return true;
    const o = origin.toLowerCase();
    if (this.exact.has(o)) return true;
    for (const p of this.patterns) {
      if (o.length > p.scheme.length + p.suffix.length && o.startsWith(p.scheme) && o.endsWith(p.suffix)) {
        const label = o.slice(p.scheme.length, o.length - p.suffix.length);
        if (LABELS.test(label)) return true;
      }
    }
    for (const r of this.regexes) if (r.test(origin)) return true;
    if (this.sameOrigin) {
      const host = headers[':authority'] ?? headers['host'];
      try {
        return typeof host === 'string' && new URL(origin).host === host.toLowerCase();
      } catch {
        return false;
      }
    }
    return false;
  }

  /** The answer to a preflight: 204 with the allowances, 403 for an origin that is not allowed. */
  preflight(headers: IncomingHttpHeaders): { status: number; headers: OutgoingHttpHeaders } {
    const out: OutgoingHttpHeaders = { 'content-length': 0 };
    const origin = headers['origin'];
    if (!this.literalStar) out['vary'] = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';
    else out['vary'] = 'Access-Control-Request-Method, Access-Control-Request-Headers';
    if (typeof origin !== 'string' || origin === '' || !this.allows(origin, headers)) return { status: 403, headers: out };
    out['access-control-allow-origin'] = this.literalStar ? '*' : origin;
    if (this.credentials) out['access-control-allow-credentials'] = 'true';
    const reqMethod = String(headers['access-control-request-method']);
    out['access-control-allow-methods'] = this.methods ?? reqMethod;
    const reqHeaders = headers['access-control-request-headers'];
    if (this.anyHeader) {
      if (typeof reqHeaders === 'string' && reqHeaders !== '') out['access-control-allow-headers'] = reqHeaders;
    } else if (this.headers !== undefined) out['access-control-allow-headers'] = this.headers;
    if (this.maxAge !== undefined) out['access-control-max-age'] = this.maxAge;
    if (this.privateNetwork && headers['access-control-request-private-network'] === 'true') {
      out['access-control-allow-private-network'] = 'true';
    }
    return { status: 204, headers: out };
  }

  /** Does the preflight ask for a method this policy allows? (Informational: the browser decides from the answer.) */
  allowsMethod(method: string): boolean {
    return this.methodSet === undefined || this.methodSet.has(method.toUpperCase());
  }

  /**
   * Adds the allowances to an actual response (`Vary: Origin` whenever the
   * answer depends on it). Upstream CORS headers are replaced: the policy,
   * not the backend, decides what a browser may read.
   */
  decorate(reqHeaders: IncomingHttpHeaders, out: OutgoingHttpHeaders): void {
    if (!this.literalStar) addVary(out, 'Origin');
    const origin = reqHeaders['origin'];
    if (typeof origin !== 'string' || origin === '' || !this.allows(origin, reqHeaders)) return;
    out['access-control-allow-origin'] = this.literalStar ? '*' : origin;
    if (this.credentials) out['access-control-allow-credentials'] = 'true';
    if (this.expose !== undefined) out['access-control-expose-headers'] = this.expose;
  }
}

/** `https://*.example.com` → {scheme: 'https://', suffix: '.example.com'}; anything else: undefined. */
export function parseSuffixPattern(o: string): SuffixPattern | undefined {
  const i = o.indexOf('://*.');
  if (i <= 0) return undefined;
  const suffix = o.slice(i + 4);
  if (suffix.length < 2 || suffix.includes('*') || suffix.includes('/')) return undefined;
  return { scheme: o.slice(0, i + 3), suffix };
}

function uniqUpper(xs: readonly string[]): string[] {
  return [...new Set(xs.map((x) => x.trim().toUpperCase()).filter((x) => x !== ''))];
}

function uniqLower(xs: readonly string[]): string[] {
  return [...new Set(xs.map((x) => x.trim().toLowerCase()).filter((x) => x !== ''))];
}
