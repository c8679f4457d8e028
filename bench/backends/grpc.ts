/**
 * gRPC backend for the unary benchmark (BookstoreService/GetShelf on grpc-js).
 *
 * `--impl bookstore` runs the project's demo (`startBookstore` from
 * examples/bookstore/server.ts); `--impl standin` runs a minimal grpc-js server
 * that answers GetShelf only; `--impl auto` (the default) uses the demo when it
 * exists and can be started, else the stand-in. The line on stdout says which
 * one runs: `LISTENING <port> impl=<name>`.
 */
import { existsSync } from 'node:fs';
import { freePort } from '../lib/proc.js';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { getShelfDefinition, shelf } from '../lib/bookstore.js';
import type { GetShelfRequest, Shelf } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { announce, onTerminate } from './common.js';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    impl: { type: 'string', default: 'auto' },
  },
});
const host = values.host ?? '127.0.0.1';
const impl = values.impl ?? 'auto';
let port = Number(values.port ?? '0');

const bookstorePath = fileURLToPath(new URL('../../examples/bookstore/server.ts', import.meta.url));


async function startStandin(): Promise<() => void> {
  const server = new grpc.Server();
  server.addService(getShelfDefinition, {
    GetShelf: (
      call: grpc.ServerUnaryCall<GetShelfRequest, Shelf>,
      callback: grpc.sendUnaryData<Shelf>,
    ) => {
      callback(null, shelf(call.request.shelf, 'Fiction'));
    },
  });
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return () => server.forceShutdown();
}

/** Best effort: whatever startBookstore returns, find a way to stop it. */
function stopperOf(handle: unknown): () => void {
  const h = handle as Record<string, unknown> | null | undefined;
  return () => {
    for (const name of ['forceShutdown', 'close', 'stop', 'shutdown']) {
      const fn = h?.[name];
      if (typeof fn === 'function') {
        try {
          const r = (fn as (this: unknown) => unknown).call(h);
          if (r instanceof Promise) r.catch(() => {});
        } catch {
          /* ignore */
        }
        return;
      }
    }
    const server = h?.['server'];
    if (server && typeof server === 'object') stopperOf(server)();
  };
}

async function startBookstore(): Promise<() => void> {
  const mod = (await import(pathToFileURL(bookstorePath).href)) as Record<string, unknown>;
  const start = mod['startBookstore'];
  if (typeof start !== 'function') throw new Error('examples/bookstore/server.ts exports no startBookstore');
  if (port === 0) port = await freePort(host);
  const handle: unknown = await (start as (o: { host: string; port: number }) => unknown)({ host, port });
  const reported = (handle as { port?: unknown } | null | undefined)?.port;
  if (typeof reported === 'number' && reported > 0) port = reported;
  return stopperOf(handle);
}

let stop: () => void;
let used: string;
if (impl === 'bookstore' || (impl === 'auto' && existsSync(bookstorePath))) {
  try {
    stop = await startBookstore();
    used = 'bookstore';
  } catch (err) {
    if (impl === 'bookstore') throw err;
    process.stderr.write(`grpc backend: bookstore demo failed to start (${String(err)}); using the stand-in\n`);
    stop = await startStandin();
    used = 'standin';
  }
} else {
  stop = await startStandin();
  used = 'standin';
}
announce(port, `impl=${used}`);
onTerminate(stop);
