import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { waitFor } from './wait.js';

/** A free TCP port on 127.0.0.1 (bound once and released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    sock.once('error', () => resolve(false));
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

/**
 * A real redis-server on 127.0.0.1 with AOF (`--appendonly yes`, no RDB
 * snapshots), its data in `dir`. stop() shuts it down gracefully (the AOF is
 * flushed); start() again on the same port and dir reloads the AOF.
 */
export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(dir: string, port?: number): Promise<RedisServer> {
    const r = new RedisServer(port ?? (await freePort()), dir);
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir, '--save', '', '--protected-mode', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    this.child = child;
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`redis-server exited: ${log}`);
      return answersPing(this.port);
    }, 'redis-server ready', 5000);
  }

  /** SIGTERM: redis flushes the AOF and exits. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill('SIGTERM');
    });
  }
}
