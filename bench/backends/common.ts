/** Small helpers shared by the benchmark backends. */
import { parseArgs } from 'node:util';

export interface BackendArgs {
  host: string;
  port: number;
}

export function backendArgs(): BackendArgs {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
    },
  });
  return { host: values.host ?? '127.0.0.1', port: Number(values.port ?? '0') };
}

/** The orchestrator waits for this exact line on stdout. */
export function announce(port: number, extra = ''): void {
  process.stdout.write(`LISTENING ${port}${extra ? ' ' + extra : ''}\n`);
}

export function onTerminate(stop: () => void): void {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      stop();
      // Do not wait for idle keep-alive connections to drain.
      setTimeout(() => process.exit(0), 200).unref();
    });
  }
}
