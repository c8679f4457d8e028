import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort } from './redis-server.js';
import { waitFor } from './wait.js';

/** Whether a NATS server answers on `port` (its INFO line arrives on connect). */
async function sendsInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    sock.once('error', () => resolve(false));
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.startsWith('INFO '));
      }
    });
  });
}

/** A real nats-server (Debian package) on 127.0.0.1; stop() and start() again keep the port (a restart). */
export class NatsServer {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(port?: number): Promise<NatsServer> {
    const s = new NatsServer(port ?? (await freePort()));
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    this.child = child;
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`nats-server exited: ${log}`);
      return sendsInfo(this.port);
    }, 'nats-server ready', 5000);
  }

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
