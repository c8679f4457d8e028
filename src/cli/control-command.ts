import { readFileSync } from 'node:fs';
import { systemClock } from '../core/clock.js';
import { parseDurationFlag } from '../core/duration.js';
import { createLogger } from '../observability/logger.js';
import { startControlServer } from '../control/server/control-server.js';
import { openStore } from '../control/store/open-store.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger control --store file:DIR|redis://HOST:PORT [--port 15010] [--metrics-port 15014]
       [--token-file FILE] [--tls-cert F --tls-key F [--client-ca F]] [--no-auth] [--replica-id ID] [--status-ttl 15s]

Runs the control plane: stores resource documents (validated exactly as the
sidecar validates them), serves the operator API (apply/get/delete/validate/
history/rollback/status) and streams config to sidecars (xDS-style, SotW and
delta). See docs/control-plane.md.

flags:
  --store SPEC          file:DIR (one replica) or redis://HOST:PORT (replicas share state; needs AOF)
  --port N              control API, gRPC/gRPC-Web/Connect on h2c or TLS (default 15010)
  --host H              bind address (default 0.0.0.0)
  --metrics-port N      /metrics (default 15014)
  --token-file FILE     bearer token operators must send
  --tls-cert F, --tls-key F   serve TLS
  --client-ca F         accept operator client certificates signed by this CA (mTLS)
  --no-auth             accept unauthenticated operator calls (local development only)
  --debounce D          quiet period before a push (default 0.1s)
  --max-delay D         longest a push waits for changes to settle (default 10s)
  --replica-id ID       this replica's name in status (default HOSTNAME-PID-RANDOM)
  --status-ttl D        with redis: how long a killed replica's sidecars stay in status
                        (its entry is rewritten every TTL/3 and removed on shutdown; default 15s)
  --allow-ephemeral-ports  accept listener port 0 (tests)`;

export const controlCommand: Command = {
  summary: 'run the control plane',
  async run(args) {
    const values = parseFlags(
      args,
      {
        store: { type: 'string' },
        port: { type: 'string', default: '15010' },
        host: { type: 'string', default: '0.0.0.0' },
        'metrics-port': { type: 'string', default: '15014' },
        'token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        'no-auth': { type: 'boolean', default: false },
        debounce: { type: 'string', default: '0.1s' },
        'max-delay': { type: 'string', default: '10s' },
        'replica-id': { type: 'string' },
        'status-ttl': { type: 'string', default: '15s' },
        'allow-ephemeral-ports': { type: 'boolean', default: false },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values.store) {
      throw new UsageError(`--store is required`, USAGE);
    }
    const token = values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : undefined;
    if (token === '') {
      process.stderr.write(`outrigger control: --token-file ${values['token-file']} is empty\n`);
      return 2;
    }
    const mtls = !!values['client-ca'];
    if (token === undefined && !mtls && !values['no-auth']) {
      process.stderr.write('outrigger control: give --token-file or --client-ca (or --no-auth for local development)\n');
      return 2;
    }
    if (!!values['tls-cert'] !== !!values['tls-key'] || (mtls && !values['tls-cert'])) {
      process.stderr.write('outrigger control: --tls-cert and --tls-key go together, and --client-ca needs them\n');
      return 2;
    }
    let statusTtlMs: number;
    try {
      statusTtlMs = parseDurationFlag(values['status-ttl']!);
      if (statusTtlMs < 300) throw new Error(`--status-ttl ${values['status-ttl']} is too short (at least 300ms)`);
    } catch (err) {
      process.stderr.write(`outrigger control: ${(err as Error).message}\n`);
      return 2;
    }
    const logger = createLogger();
    let server;
    try {
      const store = await openStore(values.store);
      server = await startControlServer({
        store,
        clock: systemClock(),
        logger,
        port: Number(values.port),
        host: values.host,
        metricsPort: Number(values['metrics-port']),
        auth: { token, mtls },
        tls: values['tls-cert']
          ? {
              cert: readFileSync(values['tls-cert'], 'utf8'),
              key: readFileSync(values['tls-key']!, 'utf8'),
              clientCa: values['client-ca'] ? readFileSync(values['client-ca'], 'utf8') : undefined,
            }
          : undefined,
        validate: { allowEphemeralPorts: values['allow-ephemeral-ports'] },
        debounceMs: parseDurationFlag(values.debounce!),
        maxDelayMs: parseDurationFlag(values['max-delay']!),
        identifier: values['replica-id'],
        statusTtlMs,
      });
    } catch (err) {
      process.stderr.write(`outrigger control: ${(err as Error).message}\n`);
      return 1;
    }
    process.stdout.write(JSON.stringify({ msg: 'control plane ready', port: server.port, metricsPort: server.metricsPort, replica: server.plane.identifier }) + '\n');
    await new Promise<void>((resolve) => {
      const stop = (): void => void server.close().then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};
