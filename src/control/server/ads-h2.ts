import { constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';
import { encodeFrame, FLAG_COMPRESSED, FRAME_HEADER_BYTES, FrameReader, FrameTooLargeError } from '../../core/grpc-framing.js';
import { gunzipSync, inflateSync } from 'node:zlib';
import { fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  AggregatedDiscoveryService,
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryResponseSchema,
} from '../../gen/outrigger/control/v1/discovery_pb.js';
import type { ControlPlane } from './control-plane.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';
import { SotwRequestDecoder } from './sotw-request-decoder.js';
import type { ResponseSink } from './response-sink.js';
import type { SidecarAuth } from './ca/sidecar-auth.js';
import type { Peer } from './auth.js';
import type { WorkloadCaller } from './ca/workload-auth.js';

/**
 * The two ADS streams served straight on node:http2 (gRPC framing by hand)
 * instead of through connect's handler. Why: a push to 1,000 sidecars is
 * 1,000 responses and 1,000 ACKs, and connect's generic pipeline spends a
 * chain of async-iterator promises on each message (most of the control
 * plane's CPU and GC in the scale bench). Here a response is one toBinary
 * and one stream.write, and an ACK one fromBinary, synchronously.
 *
 * Only gRPC with protobuf (what sidecars speak) takes this path; gRPC-Web
 * and Connect calls to the same methods still go through connect, as do
 * the operator and health services.
 */
const SOTW_PATH = `/${AggregatedDiscoveryService.typeName}/${AggregatedDiscoveryService.method.streamAggregatedResources.name}`;
const DELTA_PATH = `/${AggregatedDiscoveryService.typeName}/${AggregatedDiscoveryService.method.deltaAggregatedResources.name}`;

/** Larger requests are refused with RESOURCE_EXHAUSTED (a DiscoveryRequest is names and a status). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** Which raw ADS method this request is, if it is one this transport serves. */
export function rawAdsKind(req: Http2ServerRequest): 'sotw' | 'delta' | undefined {
  if (req.httpVersionMajor !== 2 || req.method !== 'POST') return undefined;
  const ct = req.headers['content-type'];
  if (ct !== 'application/grpc' && ct !== 'application/grpc+proto') return undefined;
  const path = req.headers[':path'];
  return path === SOTW_PATH ? 'sotw' : path === DELTA_PATH ? 'delta' : undefined;
}

/** gRPC messages out of DATA chunks (messages may span chunks), decompressed per the stream's grpc-encoding. */
class MessageReader {
  private readonly frames = new FrameReader(MAX_REQUEST_BYTES);

  constructor(
    private readonly encoding: string | undefined,
    private readonly onMessage: (bytes: Uint8Array) => void,
  ) {}

  push(chunk: Buffer): void {
    try {
      this.frames.each(chunk, (f) => {
        this.onMessage(f.flags & FLAG_COMPRESSED ? this.decompress(f.data) : f.data);
        return true;
      });
    } catch (err) {
      if (err instanceof FrameTooLargeError) throw new ConnectError(`request message of ${err.lengthBytes} bytes exceeds ${MAX_REQUEST_BYTES}`, Code.ResourceExhausted);
      throw err;
    }
  }

  /** True when a message was cut off by the end of the stream. */
  get partial(): boolean {
    return this.frames.pending;
  }

  private decompress(body: Buffer): Buffer {
    if (this.encoding === 'gzip') return gunzipSync(body, { maxOutputLength: MAX_REQUEST_BYTES });
    if (this.encoding === 'deflate') return inflateSync(body, { maxOutputLength: MAX_REQUEST_BYTES });
    throw new ConnectError(`compressed message with grpc-encoding ${this.encoding ?? '(none)'}`, Code.Internal);
  }
}

const frame = (bytes: Uint8Array): Buffer => encodeFrame(0, bytes);

/**
 * The response side of one raw gRPC stream: headers at once (the sidecar
 * learns the stream is accepted), messages as written, trailers at the end.
 * An error before anything was sent becomes a trailers-only response.
 */
class GrpcResponder<M extends DescMessage> implements ResponseSink<MessageShape<M>> {
  private trailers: Record<string, string> = { 'grpc-status': '0' };
  private ended = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly schema: M,
  ) {
    // The compat Http2ServerResponse node:http2 made for this stream would send
    // its own (empty) trailers too; this responder owns the stream.
    stream.removeAllListeners('wantTrailers');
    stream.on('wantTrailers', () => {
      if (!stream.destroyed) stream.sendTrailers(this.trailers);
    });
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity,gzip,deflate' }, { waitForTrailers: true });
  }

  push(msg: MessageShape<M>): void {
    if (this.ended || this.stream.destroyed) return;
    this.stream.write(frame(toBinary(this.schema, msg)));
  }

  pushEncoded(msg: MessageShape<M>, fields: readonly Uint8Array[]): void {
    if (this.ended || this.stream.destroyed) return;
    const head = toBinary(this.schema, msg);
    let length = head.length;
    for (const f of fields) length += f.length;
    // The frame header announces the whole message; the shared fields follow as their own writes, uncopied.
    const first = Buffer.allocUnsafe(FRAME_HEADER_BYTES + head.length);
    first[0] = 0;
    first.writeUInt32BE(length, 1);
    first.set(head, FRAME_HEADER_BYTES);
    this.stream.write(first);
    for (const f of fields) if (f.length > 0) this.stream.write(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  }

  close(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    if (err) {
      const ce = ConnectError.from(err);
      this.trailers = { 'grpc-status': String(ce.code), 'grpc-message': encodeURIComponent(ce.rawMessage) };
    }
    if (!this.stream.destroyed) this.stream.end();
  }
}

/**
 * Serves one SotW or delta stream on its HTTP/2 stream until either side ends
 * it. With `auth` the stream's credential is checked first (its DATA is held
 * meanwhile) and the node id of its first request must match it.
 */
export function serveRawAds(cp: ControlPlane, req: Http2ServerRequest, kind: 'sotw' | 'delta', auth?: SidecarAuth, peer?: Peer): void {
  const h2 = req.stream;
  const encoding = req.headers['grpc-encoding'];
  if (!auth) return start(cp, h2, kind, encoding, undefined, undefined, []);
  const held: Buffer[] = [];
  const hold = (c: Buffer): void => void held.push(c);
  h2.on('data', hold);
  h2.on('error', () => {});
  auth.authenticate(req.headers.authorization, peer).then(
    (caller) => {
      h2.removeListener('data', hold);
      if (h2.destroyed) return;
      start(cp, h2, kind, encoding, auth, caller, held);
    },
    (err: Error) => {
      h2.removeListener('data', hold);
      if (h2.destroyed) return;
      // Trailers-only refusal: nothing of the config is sent.
      const ce = ConnectError.from(err);
      h2.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(ce.code), 'grpc-message': encodeURIComponent(ce.rawMessage) }, { endStream: true });
    },
  );
}

function start(
  cp: ControlPlane,
  h2: ServerHttp2Stream,
  kind: 'sotw' | 'delta',
  encoding: string | string[] | undefined,
  auth: SidecarAuth | undefined,
  caller: WorkloadCaller | undefined,
  held: Buffer[],
): void {
  let checked = auth === undefined;
  const check = (nodeId: string | undefined): void => {
    if (checked) return;
    auth!.checkNode(caller, nodeId);
    checked = true;
  };
  if (kind === 'sotw') {
    const out = new GrpcResponder(h2, DiscoveryResponseSchema);
    const stream = new SotwStream(cp, cp.nextId(), out);
    const requests = new SotwRequestDecoder();
    run(cp, h2, stream, out, encoding, held, (b) => {
      const r = requests.decode(b);
      check(r.node?.id);
      stream.handle(r);
    });
  } else {
    const out = new GrpcResponder(h2, DeltaDiscoveryResponseSchema);
    const stream = new DeltaStream(cp, cp.nextId(), out);
    run(cp, h2, stream, out, encoding, held, (b) => {
      const r = fromBinary(DeltaDiscoveryRequestSchema, b);
      check(r.node?.id);
      stream.handle(r);
    });
  }
}

function run(
  cp: ControlPlane,
  h2: ServerHttp2Stream,
  stream: SotwStream | DeltaStream,
  out: ResponseSink<unknown>,
  encoding: string | string[] | undefined,
  held: Buffer[],
  handle: (bytes: Uint8Array) => void,
): void {
  cp.register(stream);
  let done = false;
  const finish = (err?: Error): void => {
    if (done) return;
    done = true;
    h2.removeListener('data', onData);
    out.close(err);
    cp.closed(stream, err);
  };
  const reader = new MessageReader(typeof encoding === 'string' && encoding !== 'identity' ? encoding : undefined, (bytes) => handle(bytes));
  const onData = (chunk: Buffer): void => {
    try {
      reader.push(chunk);
    } catch (err) {
      // A bad message or a protocol violation ends this stream only, with its status.
      const ce = err instanceof ConnectError ? err : new ConnectError(`cannot decode request: ${(err as Error).message}`, Code.InvalidArgument);
      finish(ce);
    }
  };
  for (const c of held) onData(c);
  if (done) return;
  h2.on('data', onData);
  // The sidecar half-closed: the stream ends with OK (or INTERNAL when a message was cut off).
  h2.once('end', () => finish(reader.partial ? new ConnectError('request stream ended inside a message', Code.Internal) : undefined));
  h2.once('close', () => {
    if (!done && h2.rstCode !== constants.NGHTTP2_NO_ERROR) finish(new ConnectError('stream reset by the sidecar', Code.Canceled));
    else finish();
  });
  h2.on('error', () => {}); // 'close' follows; a reset sidecar is not the control plane's error
}
