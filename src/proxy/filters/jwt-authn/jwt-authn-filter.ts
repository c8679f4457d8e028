import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet, JWTPayload, JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../../../core/clock.js';
import { durationMs } from '../../../core/duration.js';
import type { JwtAuthn, JwtProvider } from '../../../gen/outrigger/filters/jwt_authn/v1/jwt_authn_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { JwksUnavailable, RemoteJwks, httpJwksFetcher, type JwksFetcher } from './remote-jwks.js';
import { jose } from './jose-library.js';

/** Only asymmetric algorithms: `none` and HMAC (a public key used as a shared secret) never verify. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const DEFAULT_SKEW_MS = 60_000;
const DEFAULT_CACHE_MS = 300_000;
const DEFAULT_TIMEOUT_MS = 5_000;
/** A token without `exp` is re-verified at least this often. */
const NO_EXP_CACHE_MS = 300_000;
const TOKEN_CACHE_MAX = 10_000;

export interface JwtAuthnDeps {
  readonly clock: Clock;
  readonly audit: AuditLog;
  /** Default: HTTP(S) GET with the provider's timeout. */
  readonly fetcher?: JwksFetcher;
}

interface Provider {
  readonly name: string;
  readonly issuer: string | undefined;
  readonly audiences: readonly string[] | undefined;
  readonly keys: JWTVerifyGetKey;
  readonly remote: RemoteJwks | undefined;
  readonly fromHeaders: readonly { name: string; prefix: string }[];
  readonly fromParams: readonly string[];
  readonly forwardPayloadHeader: string;
  readonly claimToHeaders: readonly { claim: string; header: string }[];
  readonly skewMs: number;
  readonly forward: boolean;
}

interface Verified {
  readonly payload: JWTPayload;
  /** Monotonic ms after which the cached entry is no longer trusted. */
  readonly untilMono: number;
  /** Wall ms before which the token is not yet valid (nbf − skew). */
  readonly notBeforeMs: number;
}

type Outcome = { ok: true; payload: JWTPayload } | { ok: false; missing: true } | { ok: false; missing: false; reason: string };

/**
 * The jwtAuthn filter factory. Remote JWKS caches live here, shared across
 * config versions by URI, so a reload neither refetches keys nor opens a
 * window without them.
 */
export function jwtAuthnFactory(deps: JwtAuthnDeps): FilterFactory<JwtAuthn> {
  const remotes = new Map<string, RemoteJwks>();
  const fetcher = deps.fetcher ?? httpJwksFetcher(deps.clock);
  const remoteFor = (uri: string, cacheMs: number, timeoutMs: number): RemoteJwks => {
    const key = `${uri} ${cacheMs} ${timeoutMs}`;
    let r = remotes.get(key);
    if (!r) remotes.set(key, (r = new RemoteJwks(uri, cacheMs, timeoutMs, deps.clock, fetcher)));
    return r;
  };
  return {
    name: 'jwtAuthn',
    compile(config, name) {
      const providers = new Map<string, Provider>();
      config.providers.forEach((p, i) => providers.set(p.name, compileProvider(p, `providers[${i}]`, remoteFor)));
      const req = config.requires;
      let mode: 'any' | 'all' = 'any';
      let required: string[] = [...providers.keys()];
      if (req?.providerName) required = [req.providerName];
      else if (req && req.allOf.length > 0) [mode, required] = ['all', req.allOf];
      else if (req && req.anyOf.length > 0) required = req.anyOf;
      const set = required.map((n) => {
        const p = providers.get(n);
        if (!p) throw new Error(`requires: unknown provider "${n}"`);
        return p;
      });
      return jwtAuthnFilter(name, set, mode, config.allowMissing, deps);
    },
  };
}

function compileProvider(p: JwtProvider, at: string, remoteFor: (uri: string, cacheMs: number, timeoutMs: number) => RemoteJwks): Provider {
  let keys: JWTVerifyGetKey;
  let remote: RemoteJwks | undefined;
  switch (p.jwks.case) {
    case 'remoteJwks': {
      const r = p.jwks.value;
      if (!/^https?:\/\//.test(r.uri)) throw new Error(`${at}.remoteJwks.uri: must be an http:// or https:// URL`);
      remote = remoteFor(r.uri, durationMs(r.cacheDuration, DEFAULT_CACHE_MS), durationMs(r.timeout, DEFAULT_TIMEOUT_MS));
      keys = remote.resolve;
      break;
    }
    case 'localJwks': {
      const src = p.jwks.value.source;
      let text: string;
      if (src.case === 'inline') text = src.value;
      else if (src.case === 'file') {
        try {
          text = readFileSync(src.value, 'utf8');
        } catch (err) {
          throw new Error(`${at}.localJwks.file: ${(err as Error).message}`);
        }
      } else throw new Error(`${at}.localJwks: set inline or file`);
      let doc: JSONWebKeySet;
      try {
        doc = JSON.parse(text) as JSONWebKeySet;
        keys = jose().createLocalJWKSet(doc);
      } catch (err) {
        throw new Error(`${at}.localJwks: not a JWKS document: ${(err as Error).message}`);
      }
      break;
    }
    default:
      throw new Error(`${at}: set remoteJwks or localJwks`);
  }
  const fromHeaders = p.fromHeaders.map((h) => ({ name: h.name.toLowerCase(), prefix: h.valuePrefix }));
  return {
    name: p.name,
    issuer: p.issuer || undefined,
    audiences: p.audiences.length > 0 ? p.audiences : undefined,
    keys,
    remote,
    fromHeaders: fromHeaders.length > 0 || p.fromParams.length > 0 ? fromHeaders : [{ name: 'authorization', prefix: 'Bearer ' }],
    fromParams: p.fromParams,
    forwardPayloadHeader: p.forwardPayloadHeader.toLowerCase(),
    claimToHeaders: p.claimToHeaders.map((c) => ({ claim: c.claim, header: c.header.toLowerCase() })),
    skewMs: durationMs(p.clockSkew, DEFAULT_SKEW_MS),
    forward: p.forward,
  };
}

function jwtAuthnFilter(name: string, providers: readonly Provider[], mode: 'any' | 'all', allowMissing: boolean, deps: JwtAuthnDeps): HttpFilter {
  const { clock, audit } = deps;
  // Keyed by provider + SHA-256 of the token: the steady-state cost of a known token is one hash and one lookup.
  const cache = new LRUCache<string, Verified>({ max: TOKEN_CACHE_MAX });
  const providerNames = providers.map((p) => p.name).join(',');

  const cached = (p: Provider, token: string): { key: string; hit: Verified | undefined } => {
    const key = `${p.name}\0${createHash('sha256').update(token).digest('base64')}`;
    const hit = cache.get(key);
    if (hit && (clock.monotonicMs() >= hit.untilMono || clock.nowMs() < hit.notBeforeMs)) {
      cache.delete(key);
      return { key, hit: undefined };
    }
    return { key, hit };
  };

  const verify = async (p: Provider, token: string, key: string): Promise<Outcome> => {
    try {
      const { payload } = await jose().jwtVerify(token, p.keys, {
        algorithms: ALGORITHMS,
        ...(p.issuer !== undefined ? { issuer: p.issuer } : {}),
        ...(p.audiences !== undefined ? { audience: [...p.audiences] } : {}),
        clockTolerance: p.skewMs / 1000,
        currentDate: new Date(clock.nowMs()),
      });
      const now = clock.nowMs();
      const lifeMs = payload.exp !== undefined ? payload.exp * 1000 + p.skewMs - now : NO_EXP_CACHE_MS;
      const notBeforeMs = payload.nbf !== undefined ? payload.nbf * 1000 - p.skewMs : 0;
      if (lifeMs > 0) cache.set(key, { payload, untilMono: clock.monotonicMs() + Math.min(lifeMs, NO_EXP_CACHE_MS * 12), notBeforeMs });
      return { ok: true, payload };
    } catch (err) {
      return { ok: false, missing: false, reason: reasonOf(err) };
    }
  };

  const settle = (ds: Downstream, results: readonly { p: Provider; o: Outcome }[]): FilterVerdict => {
    const oks = results.filter((r) => r.o.ok);
    const failed = results.find((r) => !r.o.ok && !r.o.missing);
    const passed = mode === 'any' ? oks.length > 0 : oks.length === results.length;
    if (passed) {
      for (const r of oks) accept(ds, r.p, (r.o as { payload: JWTPayload }).payload);
      return undefined;
    }
    if (failed === undefined) {
      // No token anywhere (any), or only missing ones (all).
      if (allowMissing && oks.length === 0) return undefined;
      audit.record(ds, name, { outcome: 'unauthenticated', reason: 'missing', provider: providerNames });
      return { code: 'unauthenticated', detail: 'Jwt is missing', extras: { headers: { 'www-authenticate': 'Bearer' } } };
    }
    const reason = (failed.o as { reason: string }).reason;
    audit.record(ds, name, { outcome: 'unauthenticated', reason, provider: failed.p.name });
    return { code: 'unauthenticated', detail: `Jwt verification fails: ${reason}`, extras: { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } } };
  };

  return {
    name,
    onRequestHeaders(ds) {
      const results: { p: Provider; o: Outcome }[] = [];
      let pending: Promise<void>[] | undefined;
      for (const p of providers) {
        const token = tokenOf(ds, p);
        if (token === undefined) {
          results.push({ p, o: { ok: false, missing: true } });
          continue;
        }
        const { key, hit } = cached(p, token);
        if (hit) {
          results.push({ p, o: { ok: true, payload: hit.payload } });
          continue;
        }
        const slot = { p, o: { ok: false, missing: true } as Outcome };
        results.push(slot);
        (pending ??= []).push(verify(p, token, key).then((o) => void (slot.o = o)));
      }
      if (pending === undefined) return settle(ds, results);
      return Promise.all(pending).then(() => settle(ds, results));
    },
  };
}

/** The first token found in the provider's locations (header with its prefix, then query parameters). */
function tokenOf(ds: Downstream, p: Provider): string | undefined {
  for (const h of p.fromHeaders) {
    const v = ds.headers[h.name];
    const s = Array.isArray(v) ? v[0] : v;
    if (s === undefined) continue;
    if (h.prefix === '') return s.trim() || undefined;
    if (s.length > h.prefix.length && s.slice(0, h.prefix.length).toLowerCase() === h.prefix.toLowerCase()) return s.slice(h.prefix.length).trim();
  }
  if (p.fromParams.length > 0) {
    const q = ds.target.indexOf('?');
    if (q >= 0) {
      const params = new URLSearchParams(ds.target.slice(q + 1));
      for (const n of p.fromParams) {
        const v = params.get(n);
        if (v) return v;
      }
    }
  }
  return undefined;
}

/** Records the caller on the exchange and writes the headers the provider asks for. */
function accept(ds: Downstream, p: Provider, payload: JWTPayload): void {
  const auth = (ds.auth ??= { principal: undefined, claims: undefined, apiKey: undefined });
  if (auth.claims === undefined) {
    auth.claims = payload;
    if (payload.iss !== undefined || payload.sub !== undefined) auth.principal = `${payload.iss ?? ''}/${payload.sub ?? ''}`;
  }
  const h = ds.headers as Record<string, string | string[] | undefined>;
  if (!p.forward) for (const fh of p.fromHeaders) delete h[fh.name];
  if (p.forwardPayloadHeader) h[p.forwardPayloadHeader] = Buffer.from(JSON.stringify(payload)).toString('base64url');
  for (const c of p.claimToHeaders) {
    const v = claimAt(payload, c.claim);
    if (v === undefined || v === null) continue;
    h[c.header] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
}

/** A claim by dotted path (`realm.roles`); a claim whose own name holds a dot is found first. */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (path in claims) return claims[path];
  let cur: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A short reason for the audit log and the caller; jose's messages never include the token. */
function reasonOf(err: unknown): string {
  const joseErrors = jose().errors;
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'not_yet_valid';
    if (err.claim === 'aud') return 'audience_not_allowed';
    if (err.claim === 'iss') return 'issuer_not_allowed';
    return `claim_${err.claim}_invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'unknown_key';
  if (err instanceof JwksUnavailable) return 'jwks_unavailable';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed';
  return 'invalid';
}
