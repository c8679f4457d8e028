import http from 'node:http';
import { parseDurationFlag } from '../core/duration.js';
import { parseFlags } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger wait-ready [--url http://127.0.0.1:15000/ready] [--timeout 5m] [--interval 200ms]

Polls the sidecar's readiness endpoint until it answers 200, then exits 0;
exits 1 at the timeout. The injector runs it as the proxy container's
postStart hook (non-native sidecars): the kubelet starts the app containers
only after it returns, so apps never start before the proxy is ready.`;

export const waitReadyCommand: Command = {
  summary: 'wait until the local sidecar is ready (postStart hook)',
  async run(args) {
    const values = parseFlags(
      args,
      {
        url: { type: 'string', default: 'http://127.0.0.1:15000/ready' },
        timeout: { type: 'string', default: '5m' },
        interval: { type: 'string', default: '200ms' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    const deadline = Date.now() + parseDurationFlag(values.timeout!);
    const intervalMs = parseDurationFlag(values.interval!);
    let last = 'not tried';
    while (Date.now() < deadline) {
      last = await probe(values.url!, Math.min(2000, Math.max(1, deadline - Date.now())));
      if (last === '200') return 0;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    process.stderr.write(`outrigger wait-ready: ${values.url} not ready after ${values.timeout} (last: ${last})\n`);
    return 1;
  },
};

function probe(url: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(err.message));
  });
}
