import { parseArgs } from 'node:util';
import { parseDurationFlag } from '../core/duration.js';
import { startSidecar } from '../../sidecar/main.js';
import type { Command } from './main.js';

const USAGE = `usage: outrigger sidecar --config FILE|DIR [--admin-port 15000] [--drain-timeout 5s] [--state-dir DIR]

Runs the data plane with the listeners, routes and clusters of the config
(resource documents, see docs/config.md). The config is watched and hot
reloaded; an invalid change is rejected and the running config keeps serving.
SIGTERM drains: /ready turns 503, listeners stop accepting, in-flight requests
finish up to --drain-timeout, then the process exits 0.

flags:
  --config FILE|DIR     resource documents (YAML or JSON)
  --admin-port N        admin API on 127.0.0.1 (default 15000; 0 picks a free port)
  --drain-timeout D     how long in-flight requests may take on shutdown (default 5s)
  --state-dir DIR       where the last good config is persisted
  --allow-ephemeral-ports  accept listener port 0 (tests)`;

export const sidecarCommand: Command = {
  summary: 'run the data-plane proxy',
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        'admin-port': { type: 'string', default: '15000' },
        'drain-timeout': { type: 'string', default: '5s' },
        'state-dir': { type: 'string' },
        'allow-ephemeral-ports': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (!values.config) {
      process.stderr.write('outrigger sidecar: --config is required\n\n' + USAGE + '\n');
      return 2;
    }
    let sidecar;
    try {
      sidecar = await startSidecar({
        configPath: values.config,
        adminPort: Number(values['admin-port']),
        drainTimeoutMs: parseDurationFlag(values['drain-timeout']!),
        stateDir: values['state-dir'],
        allowEphemeralPorts: values['allow-ephemeral-ports'],
      });
    } catch (err) {
      process.stderr.write(`outrigger sidecar: ${(err as Error).message}\n`);
      return 1;
    }
    const listeners = Object.fromEntries(sidecar.addresses());
    // One machine-readable line so scripts and tests can find the ports.
    process.stdout.write(JSON.stringify({ msg: 'sidecar ready', adminPort: sidecar.adminPort, listeners }) + '\n');
    const onSignal = (): void => void sidecar.shutdown();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    await sidecar.closed;
    return 0;
  },
};
