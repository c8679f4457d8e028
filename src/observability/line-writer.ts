import { write as fsWrite, writeSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

export interface LineWriterOptions {
  /** A write is started once this many bytes (as UTF-16 length, close enough) are pending. */
  readonly batchBytes?: number;
  /**
   * Pending bytes kept while a write is in flight or the destination pushes
   * back (a full pipe); past it, lines are dropped and counted rather than
   * growing the heap or blocking requests.
   */
  readonly maxPendingBytes?: number;
  /** Told of each dropped line (a counter). */
  readonly onDrop?: () => void;
}

const RETRY_MS = 10;

/**
 * The access log's destination: lines are appended to a string and written
 * with one asynchronous `fs.write` per batch (64 KiB), at most one in flight.
 *
 * pino's sonic-boom spends ~1.5–2.5 µs per line here (its bookkeeping per
 * write call, and writes capped at 16 KiB); a batch costs ~0.2 µs per line.
 * The access log writes one line per request, so this is on the request path.
 * Nothing blocks: a destination that cannot keep up (EAGAIN on a full pipe,
 * a slow disk) makes lines wait, up to `maxPendingBytes`, then drop (counted).
 * `flush()` — every second from the composition root, and at shutdown —
 * starts a write of whatever is pending; `flushSync()` is for the exit path.
 *
 * It is a pino destination (write / flush / flushSync), so pino's own calls
 * on the access logger land here too.
 */
export class LineWriter {
  private pending = '';
  private writing = false;
  private retry: NodeJS.Timeout | undefined;
  /** The bytes a retry after EAGAIN will write (flushSync writes them first). */
  private retryBuf: Buffer | undefined;
  private waiters: (() => void)[] = [];
  private readonly batch: number;
  private readonly max: number;
  /** Lines dropped because `maxPendingBytes` were pending. */
  dropped = 0;

  constructor(
    private readonly fd: number,
    private readonly opts: LineWriterOptions = {},
  ) {
    this.batch = opts.batchBytes ?? 64 * 1024;
    this.max = opts.maxPendingBytes ?? 16 * 1024 * 1024;
  }

  write(line: string): boolean {
    if (this.pending.length + line.length > this.max) {
      this.dropped++;
      this.opts.onDrop?.();
      return false;
    }
    this.pending += line;
    if (!this.writing && this.pending.length >= this.batch) this.start();
    return true;
  }

  /** Starts writing what is pending; `cb` runs once it is written (or failed). */
  flush(cb?: () => void): void {
    if (cb !== undefined) this.waiters.push(cb);
    if (!this.writing) {
      if (this.pending.length > 0) this.start();
      else this.settle();
    }
  }

  /**
   * Writes everything pending now, blocking (the exit path). EAGAIN is retried for at most a second (a
   * reader that never reads must not hold the exit); other errors drop the rest. A write still in flight
   * is the caller's to await (flush(cb)).
   */
  flushSync(): void {
    let buf = Buffer.from(this.pending, 'utf8');
    if (this.retry !== undefined) {
      clearTimeout(this.retry);
      buf = Buffer.concat([this.retryBuf!, buf]);
      this.retry = undefined;
      this.retryBuf = undefined;
      this.writing = false;
    }
    this.pending = '';
    const giveUpAt = Date.now() + 1000;
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(this.fd, buf));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > giveUpAt) return;
      }
    }
  }

  private start(): void {
    this.writing = true;
    const buf = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    this.writeOut(buf);
  }

  private writeOut(buf: Buffer): void {
    fsWrite(this.fd, buf, 0, buf.length, null, (err, n) => {
      if (err !== null && err.code === 'EAGAIN') {
        // A non-blocking pipe that is full: try again shortly (new lines keep queueing meanwhile).
        this.retryBuf = buf;
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.retryBuf = undefined;
          this.writeOut(buf);
        }, RETRY_MS);
        this.retry.unref();
        return;
      }
      if (err === null && n < buf.length) return this.writeOut(buf.subarray(n));
      // Any other error (EBADF, EPIPE: the reader is gone): the batch is lost; later lines still try.
      this.writing = false;
      // More than a batch came meanwhile, or someone waits on a flush: write on.
      if (this.pending.length >= this.batch || (this.waiters.length > 0 && this.pending.length > 0)) return this.start();
      this.settle();
    });
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    // Lines written since the flush began are in the next batch; a waiter wants what was pending when it asked.
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * `outrigger_access_log_dropped_lines_total`: lines a LineWriter behind `logger` dropped because its
 * destination could not keep up (read at scrape time; 0 for a logger with another destination).
 */
export function registerDroppedLines(logger: Logger, registry: Registry): void {
  const writer = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  new Counter({
    name: 'outrigger_access_log_dropped_lines_total',
    help: 'Access-log lines dropped because the destination could not keep up (16 MiB were pending)',
    registers: [registry],
    collect() {
      this.reset();
      if (writer instanceof LineWriter && writer.dropped > 0) this.inc(writer.dropped);
    },
  });
}
