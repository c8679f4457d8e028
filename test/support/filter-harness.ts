import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

/** Helpers for the security filter tests (test/integration/filters). */

export interface SigningKey {
  readonly alg: string;
  readonly kid: string;
  readonly publicJwk: JWK;
  sign(claims: JWTPayload, opts?: { kid?: string; alg?: string }): Promise<string>;
}

/** A fresh key pair of `alg` (RS256, ES256, EdDSA) whose public half is published with `kid`. */
export async function signingKey(alg: 'RS256' | 'ES256' | 'EdDSA', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return {
    alg,
    kid,
    publicJwk,
    sign: (claims, opts = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? alg, kid: opts.kid ?? kid, typ: 'JWT' }).sign(privateKey),
  };
}

export interface JwksServer {
  readonly url: string;
  /** Requests served so far. */
  readonly hits: () => number;
  setKeys(keys: JWK[]): void;
  close(): Promise<void>;
}

/** An HTTP JWKS endpoint on loopback whose key list the test changes. */
export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  let current = keys;
  let hits = 0;
  const server = http.createServer((_req, res) => {
    hits++;
    const body = JSON.stringify({ keys: current });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    hits: () => hits,
    setKeys: (k) => void (current = k),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
