/**
 * Correctness checks run before and after every load: h2load and wrk only
 * count HTTP statuses, so gRPC targets are checked with a real grpc-js client
 * (status and decoded message) and with `nghttp -v` (trailer grpc-status: 0).
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { GET_SHELF_PATH, deserializeShelf, getShelfRequest, serializeRequest } from './bookstore.js';
import { runTool } from './proc.js';

export interface Check {
  ok: boolean;
  detail: string;
}

export function grpcJsCheck(port: number, timeoutMs = 3000): Promise<Check> {
  return new Promise((resolve) => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    client.makeUnaryRequest(
      GET_SHELF_PATH,
      serializeRequest,
      deserializeShelf,
      getShelfRequest(1n),
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, shelf) => {
        client.close();
        if (err) resolve({ ok: false, detail: `grpc-js: ${grpc.status[err.code] ?? err.code} ${err.details}` });
        else if (!shelf || shelf.id !== 1n) resolve({ ok: false, detail: `grpc-js: unexpected reply ${String(shelf?.id)}` });
        else resolve({ ok: true, detail: `grpc-js: OK shelf ${shelf.id} "${shelf.theme}"` });
      },
    );
  });
}

export async function nghttpCheck(port: number, bodyFile: string, cpus?: string): Promise<Check> {
  const r = await runTool(
    'nghttp',
    'nghttp',
    [
      '-v',
      '-n',
      '-H', 'content-type: application/grpc',
      '-H', 'te: trailers',
      '-d', bodyFile,
      `http://127.0.0.1:${port}${GET_SHELF_PATH}`,
    ],
    { cpus, timeoutMs: 5000 },
  );
  const out = r.stdout + r.stderr;
  const statuses = [...out.matchAll(/recv \(stream_id=\d+\) grpc-status: (\d+)/g)].map((m) => m[1]);
  const http = /recv \(stream_id=\d+\) :status: (\d+)/.exec(out)?.[1];
  if (statuses.length === 1 && statuses[0] === '0' && http === '200')
    return { ok: true, detail: 'nghttp: :status 200, grpc-status 0' };
  return {
    ok: false,
    detail: `nghttp: :status ${http ?? 'none'}, grpc-status ${statuses.join(',') || 'none'}${r.timedOut ? ' (timed out)' : ''}`,
  };
}

export async function grpcCheck(port: number, bodyFile: string, cpus?: string): Promise<Check> {
  const a = await grpcJsCheck(port);
  const b = await nghttpCheck(port, bodyFile, cpus);
  return { ok: a.ok && b.ok, detail: `${a.detail}; ${b.detail}` };
}

export function h2cCheck(port: number, timeoutMs = 3000): Promise<Check> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const finish = (c: Check): void => {
      clearTimeout(t);
      session.destroy();
      resolve(c);
    };
    const t = setTimeout(() => finish({ ok: false, detail: 'h2c: timed out' }), timeoutMs);
    session.on('error', (e) => finish({ ok: false, detail: `h2c: ${e.message}` }));
    const req = session.request({ ':path': '/', ':method': 'GET' });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('error', (e) => finish({ ok: false, detail: `h2c: ${e.message}` }));
    req.on('end', () => finish({ ok: status === 200 && body.length > 0, detail: `h2c: ${status} ${JSON.stringify(body.trim())}` }));
  });
}

export function http1Check(port: number, timeoutMs = 3000): Promise<Check> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({ ok: res.statusCode === 200 && body.length > 0, detail: `http/1.1: ${res.statusCode} ${JSON.stringify(body.trim())}` }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ ok: false, detail: `http/1.1: ${e.message}` }));
  });
}

/** REST→gRPC through the transcoder: 200 with the Shelf as JSON (`"id":"1"`). */
export async function restCheck(port: number, post: boolean, timeoutMs = 3000): Promise<Check> {
  const url = post ? `http://127.0.0.1:${port}${CONNECT_GET_SHELF}` : `http://127.0.0.1:${port}${REST_GET_SHELF}`;
  try {
    const r = await fetch(url, {
      method: post ? 'POST' : 'GET',
      ...(post ? { body: REST_POST_BODY, headers: { 'content-type': 'application/json' } } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = await r.text();
    return { ok: r.status === 200 && body.includes('"id":"1"'), detail: `${post ? 'JSON POST' : 'REST GET'}: ${r.status} ${body.trim()}` };
  } catch (e) {
    return { ok: false, detail: `${post ? 'JSON POST' : 'REST GET'}: ${(e as Error).message}` };
  }
}

export const REST_GET_SHELF = '/v1/shelves/1';
export const CONNECT_GET_SHELF = '/outrigger.examples.bookstore.v1.BookstoreService/GetShelf';
export const REST_POST_BODY = '{"shelf":"1"}';

/** The wrk script for the JSON POST. */
export function wrkPostScript(): string {
  return `wrk.method = "POST"\nwrk.body = '${REST_POST_BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`;
}
