import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { constants, closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { LineWriter, registerDroppedLines } from '../../../src/observability/line-writer.js';
import { createLogger } from '../../../src/observability/logger.js';
import { metricValue } from '../../support/prom-text.js';

/** The access log's batched destination (line-writer.ts), against a real file and a real non-blocking pipe. */
describe('LineWriter', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'line-writer-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const flushed = (w: LineWriter): Promise<void> => new Promise((r) => w.flush(r));
  const line = (i: number): string => `{"n":${i},"pad":"${'x'.repeat(90)}"}\n`;

  it('writes nothing until a batch is full or it is flushed, then every line in order', async () => {
    const file = join(dir, 'a.log');
    const fd = openSync(file, 'w');
    const w = new LineWriter(fd, { batchBytes: 1000 });
    for (let i = 0; i < 5; i++) w.write(line(i));
    await new Promise((r) => setImmediate(r));
    expect(readFileSync(file, 'utf8'), 'under a batch: pending').to.equal('');
    for (let i = 5; i < 25; i++) w.write(line(i));
    await flushed(w);
    w.write(line(25));
    await flushed(w);
    closeSync(fd);
    const got = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { n: number }).n);
    expect(got).to.deep.equal(Array.from({ length: 26 }, (_, i) => i));
  });

  it('drops (and counts) lines past maxPendingBytes while a write is in flight, never blocking', async () => {
    const file = join(dir, 'b.log');
    const fd = openSync(file, 'w');
    let drops = 0;
    const w = new LineWriter(fd, { batchBytes: 200, maxPendingBytes: 500, onDrop: () => drops++ });
    w.write(line(0));
    w.write(line(1)); // a batch: the write starts (its callback cannot run before this test yields)
    const kept = [2, 3, 4, 5, 6, 7].filter((i) => w.write(line(i)));
    expect(kept).to.deep.equal([2, 3, 4, 5]);
    expect([w.dropped, drops]).to.deep.equal([2, 2]);
    await flushed(w);
    closeSync(fd);
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).to.have.length(6);
  });

  it('a full non-blocking pipe (EAGAIN) is retried until the reader drains it; flushSync writes the rest', async function () {
    this.timeout(10000);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const wfd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    const w = new LineWriter(wfd, { batchBytes: 4096 });
    const N = 3000; // ~300 KB: several times a pipe's 64 KiB
    for (let i = 0; i < N; i++) w.write(line(i));
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    const drain = (): void => {
      for (;;) {
        try {
          const n = readSync(rfd, buf);
          if (n === 0) return;
          chunks.push(Buffer.from(buf.subarray(0, n)));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
          throw err;
        }
      }
    };
    // Read slowly: the writer must hit EAGAIN and come back.
    const done = flushed(w);
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      drain();
      await new Promise((r) => setTimeout(r, 5));
    }
    w.write(line(N));
    w.flushSync();
    drain();
    closeSync(wfd);
    closeSync(rfd);
    const got = Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { n: number }).n);
    expect(got).to.deep.equal(Array.from({ length: N + 1 }, (_, i) => i));
  });

  it("the access logger's drops are outrigger_access_log_dropped_lines_total", async () => {
    const file = join(dir, 'c.log');
    const fd = openSync(file, 'w');
    const logger = createLogger({ fd, async: true });
    const registry = new Registry();
    registerDroppedLines(logger, registry);
    expect(metricValue(await registry.metrics(), 'outrigger_access_log_dropped_lines_total', {})).to.equal(0);
    // 20 MiB in one synchronous burst: one 64 KiB write starts, 16 MiB wait behind it, the rest is dropped.
    const big = 'y'.repeat(1024 * 1024);
    for (let i = 0; i < 20; i++) logger.info({ big }, 'access');
    const dropped = metricValue(await registry.metrics(), 'outrigger_access_log_dropped_lines_total', {});
    expect(dropped).to.be.within(3, 5);
    await new Promise<void>((r) => logger.flush(() => r()));
    closeSync(fd);
  });
});
