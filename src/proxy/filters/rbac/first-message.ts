import { PassThrough, type Readable } from 'node:stream';

/** What reading the start of a gRPC request body found. */
export type FirstMessage =
  /** The first message's bytes (without its 5-byte frame header). */
  | { readonly kind: 'message'; readonly bytes: Buffer }
  /** A compressed first message (not decoded: the filter holds no decompressor). */
  | { readonly kind: 'compressed' }
  /** The body ended before a whole message (no message: a client stream closed at once). */
  | { readonly kind: 'none' }
  /** The frame announces more than the limit. */
  | { readonly kind: 'too_large'; readonly length: number };

/**
 * Reads a gRPC request body up to the end of its first message (at most
 * 5 + `max` bytes buffered), then hands the exchange a body that replays
 * exactly what was read and streams the rest with backpressure (`replace`),
 * so the upstream gets the bytes unchanged. Reading happens in paused mode
 * (`read()`), so nothing is lost and the original stream's end is kept.
 */
export function readFirstMessage(body: Readable, max: number, replace: (b: Readable) => void): Promise<FirstMessage> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let done = false;
    const finish = (r: FirstMessage, ended: boolean): void => {
      if (done) return;
      done = true;
      body.off('readable', onReadable);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onEnd);
      const out = new PassThrough();
      for (const c of chunks) out.write(c);
      if (ended) out.end();
      else {
        body.pipe(out);
        // The client going away mid-body ends the replayed stream too.
        body.once('error', (err) => out.destroy(err));
      }
      replace(out);
      resolve(r);
    };
    const check = (): boolean => {
      if (have < 5) return false;
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (chunks.length !== 1) chunks.splice(0, chunks.length, head);
      const length = head.readUInt32BE(1);
      if (length > max) return finishTrue({ kind: 'too_large', length });
      if (have < 5 + length) return false;
      if (head[0]! & 1) return finishTrue({ kind: 'compressed' });
      return finishTrue({ kind: 'message', bytes: head.subarray(5, 5 + length) });
    };
    const finishTrue = (r: FirstMessage): true => {
      finish(r, false);
      return true;
    };
    const onReadable = (): void => {
      let c: Buffer | null;
      while (!done && (c = body.read() as Buffer | null) !== null) {
        chunks.push(c);
        have += c.length;
        if (check()) return;
      }
    };
    const onEnd = (): void => finish({ kind: 'none' }, true);
    const onError = (): void => finish({ kind: 'none' }, true);
    body.on('readable', onReadable);
    body.once('end', onEnd);
    body.once('error', onError);
    // A stream destroyed midway (client reset) may close without 'end'.
    body.once('close', onEnd);
  });
}
