import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Starts the real CLI as a child process and resolves with the ports from its ready line. */
export async function spawnSidecar(
  configPath: string,
  extraArgs: readonly string[] = [],
): Promise<{ proc: ChildProcess; port: number; admin: number; exit: Promise<number | null>; lines: string[] }> {
  const proc = spawn(process.execPath, ['bin/outrigger.js', 'sidecar', '--config', configPath, '--admin-port', '0', '--allow-ephemeral-ports', '--drain-timeout', '5s', ...extraArgs], {
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_LOG_LEVEL: 'warn', OUTRIGGER_CONCURRENCY: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const lines = createInterface({ input: proc.stdout! });
  /** Every stdout line (the ready line, logs at warn and above, access lines). */
  const seen: string[] = [];
  lines.on('line', (l) => seen.push(l));
  const ready = await new Promise<{ adminPort: number; listeners: Record<string, { port: number }> }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('sidecar did not start')), 20000);
    lines.on('line', (l) => {
      if (l.includes('"sidecar ready"')) {
        clearTimeout(t);
        resolve(JSON.parse(l));
      }
    });
    proc.once('exit', () => reject(new Error('sidecar exited early')));
  });
  return { proc, port: ready.listeners.main!.port, admin: ready.adminPort, exit, lines: seen };
}
