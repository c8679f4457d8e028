import http2 from 'node:http2';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import {
  AggregatedDiscoveryService,
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
} from '../../src/gen/outrigger/control/v1/discovery_pb.js';

const path = (method: string): string => `/${AggregatedDiscoveryService.typeName}/${method}`;

/**
 * The lightest ADS client a benchmark can run a thousand of in one process:
 * one HTTP/2 stream on a session it is given, gRPC framing by hand, every
 * response decoded (so the ACK carries its real version and nonce). What a
 * real sidecar does with the resources is not simulated: this measures the
 * control plane, not a client library.
 */
abstract class RawAds<Req extends DescMessage, Res extends DescMessage> {
  onResponse: ((r: MessageShape<Res>) => void) | undefined;
  error: Error | undefined;
  /** The status the server ended the stream with (from trailers or a trailers-only response). */
  readonly ended: Promise<{ status: string; message: string }>;
  readonly stream: http2.ClientHttp2Stream;
  private pending: Buffer | undefined;
  private held: Buffer[] = [];
  private heldBytes = 0;

  protected constructor(
    session: http2.ClientHttp2Session,
    method: string,
    private readonly reqSchema: Req,
    private readonly resSchema: Res,
  ) {
    this.stream = session.request({ ':method': 'POST', ':path': path(method), 'content-type': 'application/grpc', te: 'trailers' });
    this.stream.on('data', (chunk: Buffer) => this.read(chunk));
    this.ended = new Promise((resolve) => {
      const done = (h: http2.IncomingHttpHeaders): void => {
        if (h['grpc-status'] === undefined) return;
        const r = { status: String(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
        if (r.status !== '0') this.error = new Error(`grpc-status ${r.status}: ${r.message}`);
        resolve(r);
      };
      this.stream.on('response', done); // trailers-only
      this.stream.on('trailers', done);
      this.stream.on('close', () => resolve({ status: 'closed', message: `rst ${this.stream.rstCode}` }));
    });
    this.stream.on('error', (err) => (this.error = err));
  }

  /** Writes raw bytes on the stream (tests of framing and bad input). */
  /** Resolves when the stream has handed the bytes to the session (so the next write is a DATA frame of its own). */
  writeRaw(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.stream.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  send(req: MessageInitShape<Req>): void {
    const bytes = toBinary(this.reqSchema, create(this.reqSchema, req));
    const out = Buffer.allocUnsafe(5 + bytes.length);
    out[0] = 0;
    out.writeUInt32BE(bytes.length, 1);
    out.set(bytes, 5);
    this.stream.write(out);
  }

  close(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private read(chunk: Buffer): void {
    // A large message (a SotW EDS response of a thousand assignments) arrives in many DATA frames:
    // gather them until the whole message is there instead of re-copying what came so far per frame.
    if (this.pending || this.held.length > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      const head = this.pending ?? this.held[0]!;
      if (head.length >= 5 && this.heldBytes + (this.pending?.length ?? 0) < 5 + head.readUInt32BE(1)) return;
    }
    const buf = this.pending || this.held.length > 0 ? Buffer.concat(this.pending ? [this.pending, ...this.held] : this.held) : chunk;
    this.pending = undefined;
    this.held = [];
    this.heldBytes = 0;
    let off = 0;
    while (buf.length - off >= 5) {
      const len = buf.readUInt32BE(off + 1);
      if (buf.length - off - 5 < len) break;
      const msg = fromBinary(this.resSchema, buf.subarray(off + 5, off + 5 + len));
      off += 5 + len;
      this.onResponse?.(msg);
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }
}

export class RawSotw extends RawAds<typeof DiscoveryRequestSchema, typeof DiscoveryResponseSchema> {
  constructor(session: http2.ClientHttp2Session) {
    super(session, AggregatedDiscoveryService.method.streamAggregatedResources.name, DiscoveryRequestSchema, DiscoveryResponseSchema);
  }

  /** ACK: the version and nonce of the response, the same names as subscribed. */
  ack(res: DiscoveryResponse, names: string[]): void {
    this.send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: names });
  }
}

export class RawDelta extends RawAds<typeof DeltaDiscoveryRequestSchema, typeof DeltaDiscoveryResponseSchema> {
  constructor(session: http2.ClientHttp2Session) {
    super(session, AggregatedDiscoveryService.method.deltaAggregatedResources.name, DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema);
  }

  /** ACK: the nonce of the response. */
  ack(res: DeltaDiscoveryResponse): void {
    this.send({ typeUrl: res.typeUrl, responseNonce: res.nonce });
  }
}
