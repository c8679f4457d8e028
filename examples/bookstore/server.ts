import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { Health } from '../../src/gen/grpc/health/v1/health_pb.js';
import { BookstoreService } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { bookstoreHandlers } from './bookstore-handlers.js';
import { serviceDefinitionFor } from './grpc-service.js';
import { healthHandlers } from './health.js';
import { OpenStreams } from './open-streams.js';
import { BookstoreStore } from './store.js';
import { withTestHooks } from './test-hooks.js';

/**
 * The bundled demo backend: a real grpc-js server for BookstoreService and
 * grpc.health.v1.Health, with the test switches of test-hooks.ts. Everything
 * (store, logger, clock) is created per call or passed in; nothing is global.
 */

/** Large enough that 16 MiB messages (the sidecar's size tests) pass both ways. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface BookstoreOptions {
  /** Interface to bind (default 127.0.0.1). */
  readonly host?: string;
  /** Port to bind; 0 picks an ephemeral one (default 0). */
  readonly port?: number;
  readonly logger?: Logger;
  /** Drives `x-delay-ms` and the shutdown grace timer. */
  readonly clock?: Clock;
  /** State to serve; a fresh seeded store by default. */
  readonly store?: BookstoreStore;
  /** How long close() lets in-flight unary calls finish before cutting them (default 1000). */
  readonly shutdownGraceMs?: number;
  /** Adds more services before the server binds (tests: gRPC server reflection). */
  readonly register?: (server: grpc.Server) => void;
}

export interface BookstoreEvents {
  /** A delayed (`x-delay-ms`) unary handler answered, whether or not its call was still open. */
  'delayed-call-done': [path: string];
}

export interface BookstoreServer {
  readonly port: number;
  /** `host:port` to dial (IPv6 hosts bracketed). */
  readonly address: string;
  readonly server: grpc.Server;
  readonly store: BookstoreStore;
  readonly events: EventEmitter<BookstoreEvents>;
  /** Ends long-lived streams (UNAVAILABLE), drains, then force-closes after the grace period. Idempotent. */
  close(): Promise<void>;
}

export async function startBookstore(opts: BookstoreOptions = {}): Promise<BookstoreServer> {
  const host = opts.host ?? '127.0.0.1';
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'bookstore' });
  const clock = opts.clock ?? systemClock();
  const store = opts.store ?? new BookstoreStore();
  const streams = new OpenStreams();
  const events = new EventEmitter<BookstoreEvents>();
  const hooks = { clock, onDelayedDone: (path: string) => events.emit('delayed-call-done', path) };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const bookstoreDef = serviceDefinitionFor(BookstoreService);
  server.addService(bookstoreDef, withTestHooks(bookstoreDef, bookstoreHandlers({ store, streams, logger }), hooks));
  const healthDef = serviceDefinitionFor(Health);
  server.addService(healthDef, withTestHooks(healthDef, healthHandlers([BookstoreService.typeName], streams), hooks));
  opts.register?.(server);

  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${hostPart}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  const address = `${hostPart}:${port}`;
  logger.info({ address }, 'bookstore listening');

  const graceMs = opts.shutdownGraceMs ?? 1000;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      streams.closeAll();
      const force = clock.setTimer(graceMs, () => {
        logger.warn({ address, graceMs }, 'bookstore shutdown grace expired; cutting calls');
        server.forceShutdown();
        resolve();
      });
      server.tryShutdown(() => {
        force.cancel();
        logger.info({ address }, 'bookstore stopped');
        resolve();
      });
    });
    return closing;
  };

  return { port, address, server, store, events, close };
}
