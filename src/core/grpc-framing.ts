/**
 * The gRPC length-prefixed message framing (PROTOCOLS.md b2), shared by every
 * place that reads or writes it: the transcoder's upstream calls, gRPC-Web,
 * Connect streaming (same 5-byte envelope, other flag bits), filters that look
 * at messages, the control plane's raw ADS streams and the status port's gRPC
 * health probe. One byte of flags, a 4-byte big-endian length, the bytes.
 */
export const FRAME_HEADER_BYTES = 5;
/** gRPC: the message is compressed with the call's grpc-encoding. */
export const FLAG_COMPRESSED = 0x01;

export interface Frame {
  readonly flags: number;
  readonly data: Buffer;
}

/** One framed message. */
export function encodeFrame(flags: number, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + data.length);
  b[0] = flags;
  b.writeUInt32BE(data.length, 1);
  b.set(data, FRAME_HEADER_BYTES);
  return b;
}

export class FrameTooLargeError extends Error {
  constructor(
    readonly maxBytes: number,
    /** The length the frame header announced. */
    readonly lengthBytes: number,
  ) {
    super(`message larger than ${maxBytes} bytes`);
  }
}

/**
 * Splits a byte stream into frames as chunks arrive (a frame may span chunks,
 * a chunk may hold several frames). Frames are subarrays of the input: no
 * copy unless a frame spans chunks.
 */
export class FrameReader {
  private buf: Buffer = EMPTY;

  constructor(private readonly maxBytes = Infinity) {}

  /** Complete frames in `chunk` (and what was pending); throws FrameTooLargeError past the limit. */
  push(chunk: Buffer): Frame[] {
    const out: Frame[] = [];
    this.each(chunk, (f) => {
      out.push(f);
      return true;
    });
    return out;
  }

  /**
   * Calls `fn` for each complete frame; stops early when it returns false and
   * keeps the rest for the next call to `each` or `push` (an empty chunk
   * continues). Allocation-free for frames that sit inside one chunk.
   * Throws FrameTooLargeError past the limit (before buffering the frame).
   */
  each(chunk: Buffer, fn: (f: Frame) => boolean): void {
    this.buf = this.buf.length === 0 ? chunk : chunk.length === 0 ? this.buf : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= FRAME_HEADER_BYTES) {
      const len = this.buf.readUInt32BE(1);
      if (len > this.maxBytes) throw new FrameTooLargeError(this.maxBytes, len);
      if (this.buf.length < FRAME_HEADER_BYTES + len) break;
      const f = { flags: this.buf[0]!, data: this.buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len) };
      this.buf = this.buf.subarray(FRAME_HEADER_BYTES + len);
      if (!fn(f)) return;
    }
    // A partial frame left in the caller's chunk is copied: the chunk is not ours to keep.
    if (this.buf.length > 0 && this.buf.buffer === chunk.buffer) this.buf = Buffer.from(this.buf);
  }

  /** Bytes of an incomplete frame are waiting. */
  get pending(): boolean {
    return this.buf.length > 0;
  }
}

const EMPTY = Buffer.alloc(0);
