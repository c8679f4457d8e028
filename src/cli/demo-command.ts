import { findUp } from '../core/find-up.js';
import { startSidecar } from '../../sidecar/main.js';
import { startBookstore } from '../../examples/bookstore/server.js';
import { createLogger } from '../observability/logger.js';
import { parseFlags } from './flags.js';
import type { Command } from './command.js';

const DEMO_CONFIG = 'examples/demo/sidecar.yaml';

const USAGE = `usage: outrigger demo [--config FILE] [--backend-port 50051] [--admin-port 15000]

Runs the bundled Bookstore gRPC service and an Outrigger sidecar in front of
it (examples/demo/sidecar.yaml: 127.0.0.1:8080 → 127.0.0.1:50051).`;

export const demoCommand: Command = {
  summary: 'run the Bookstore demo behind a sidecar',
  async run(args) {
    const values = parseFlags(
      args,
      {
        config: { type: 'string' },
        'backend-port': { type: 'string', default: '50051' },
        'admin-port': { type: 'string', default: '15000' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    const configPath = values.config ?? findUp(import.meta.url, DEMO_CONFIG);
    if (!configPath) {
      process.stderr.write(`outrigger demo: ${DEMO_CONFIG} not found above ${import.meta.url}; pass --config FILE\n`);
      return 1;
    }
    const logger = createLogger();
    const backend = await startBookstore({ host: '127.0.0.1', port: Number(values['backend-port']), logger });
    let sidecar;
    try {
      sidecar = await startSidecar({
        configPath,
        adminPort: Number(values['admin-port']),
        drainTimeoutMs: 5000,
        logger,
      });
    } catch (err) {
      process.stderr.write(`outrigger demo: ${(err as Error).message}\n`);
      await backend.close();
      return 1;
    }
    const l = [...sidecar.addresses().values()][0];
    const addr = l ? `${l.host}:${l.port}` : '127.0.0.1:8080';
    process.stdout.write(
      [
        '',
        `Outrigger demo: sidecar on ${addr} → Bookstore gRPC on 127.0.0.1:${backend.port}`,
        `  admin:  curl http://127.0.0.1:${sidecar.adminPort}/ready   (/metrics /config_dump /clusters /routes)`,
        `  gRPC:   grpcurl -plaintext -import-path proto -proto outrigger/examples/bookstore/v1/bookstore.proto ${addr} outrigger.examples.bookstore.v1.BookstoreService/ListShelves`,
        `  h2c:    printf '\\0\\0\\0\\0\\0' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- -o /dev/null -D - http://${addr}/outrigger.examples.bookstore.v1.BookstoreService/ListShelves`,
        `  config: edit ${configPath} and it reloads; Ctrl-C drains and stops`,
        '',
      ].join('\n') + '\n',
    );
    const stop = (): void => void sidecar.shutdown();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    await sidecar.closed;
    await backend.close();
    return 0;
  },
};
