import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startBookstore } from './server.js';

/**
 * Runs the demo bookstore on its own:
 *   node --import tsx examples/bookstore/main.ts [--host 127.0.0.1] [--port 50051] [--log-level info]
 * The listening address goes to stdout (for scripts to read); logs go to stderr.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '50051' },
      'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port "${values.port}"`);
  const logger = pino({ level: values['log-level'] }, pino.destination(2));

  const bookstore = await startBookstore({ host: values.host, port, logger });
  process.stdout.write(`bookstore listening on ${bookstore.address}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    // A second signal means "now": skip the drain.
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'stopping bookstore');
    void bookstore.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`bookstore: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
