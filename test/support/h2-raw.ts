import net from 'node:net';

/**
 * A raw HTTP/2 client on a plain socket, for tests that need frames no
 * well-behaved client sends (streams past the advertised limit, bad frames).
 * It ACKs the server's SETTINGS as every client must, and nothing else.
 */

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

export function h2Frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

/**
 * An HPACK block of a request without dynamic-table state: :method POST
 * (static 3), :scheme http (static 7), :path and :authority as literals
 * without indexing (static names 4 and 1).
 */
export function requestBlock(path = '/', authority = 'x'): Buffer {
  const lit = (nameIndex: number, value: string): Buffer => {
    const v = Buffer.from(value);
    if (v.length > 126) throw new Error('requestBlock: value too long for a one-byte length');
    return Buffer.concat([Buffer.from([nameIndex, v.length]), v]);
  };
  return Buffer.concat([Buffer.from([0x83, 0x86]), lit(4, path), lit(1, authority)]);
}

/** HEADERS opening stream `id` (END_HEADERS; END_STREAM when `end`). */
export function headersFrame(id: number, path = '/', end = false): Buffer {
  return h2Frame(FRAME.HEADERS, FLAG.END_HEADERS | (end ? FLAG.END_STREAM : 0), id, requestBlock(path));
}

/** RST_STREAM of stream `id` with error `code`. */
export function rstFrame(id: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return h2Frame(FRAME.RST_STREAM, 0, id, p);
}

/** An empty DATA frame ending stream `id`. */
export function endStreamFrame(id: number): Buffer {
  return h2Frame(FRAME.DATA, FLAG.END_STREAM, id, Buffer.alloc(0));
}

export interface RawH2 {
  readonly sock: net.Socket;
  /** Every frame received so far, in order. */
  all(): Frame[];
  /** The server's settings as the client applies them: SETTINGS frames in order, later values win. */
  settings(): Map<number, number>;
  /** The first frame received matching `pred` (waits for it). */
  frame(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
}

/** Connects, sends the preface and an empty SETTINGS frame; ACKs the server's SETTINGS unless `ack` is false. */
export function rawH2(port: number, opts: { ack?: boolean } = {}): RawH2 {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  const seen: Frame[] = [];
  let wake: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3);
      const f = { type: buf[3]!, flags: buf[4]!, id: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      seen.push(f);
      buf = buf.subarray(9 + len);
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0 && opts.ack !== false) sock.write(h2Frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
    }
    const w = wake;
    wake = [];
    w.forEach((fn) => fn());
  });
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  void closed.then(() => wake.splice(0).forEach((fn) => fn()));
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
  return {
    sock,
    closed,
    all: () => seen,
    settings(): Map<number, number> {
      const m = new Map<number, number>();
      for (const f of seen.filter((x) => x.type === FRAME.SETTINGS && (x.flags & FLAG.ACK) === 0))
        for (let i = 0; i + 6 <= f.payload.length; i += 6) m.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
      return m;
    },
    async frame(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const f = seen.find(pred);
        if (f) return f;
        if (sock.destroyed || Date.now() > deadline) throw new Error('frame not received');
        await new Promise<void>((r) => {
          wake.push(r);
          setTimeout(r, Math.max(1, deadline - Date.now()) + 1).unref();
        });
      }
    },
  };
}
