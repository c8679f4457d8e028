import type { IncomingHttpHeaders } from 'node:http2';
import type { Timer } from '../../../core/clock.js';
import type { UpstreamAttempt } from '../attempt.js';
import type { AttemptFailure } from '../retry/retry-policy.js';

/** The response head of an attempt. */
export interface UpstreamHead {
  readonly status: number;
  /** As received (HTTP/2: pseudo-headers included; HTTP/1.1: node's lower-cased object). */
  readonly headers: IncomingHttpHeaders;
  /** HTTP/2 END_STREAM on the HEADERS frame: the head is the whole answer (gRPC trailers-only). */
  readonly endStream: boolean;
  /** HTTP/1.1 reason phrase. */
  readonly statusMessage?: string | undefined;
}

/** How an attempt failed: before its head (no answer) or after it (the answer was cut off). */
export interface CallFailure {
  readonly kind: AttemptFailure;
  /** For the local reply (`upstream connect error: <detail>`). */
  readonly detail: string | undefined;
  /** HTTP/2 RST_STREAM code the upstream sent, when it reset the stream. */
  readonly rstCode?: number | undefined;
}

/**
 * What an upstream call reports. Before an answer is chosen, the attempt
 * runner receives these; once a call's head is the answer, its relayer does
 * (`call.events` is swapped). Each receives the call, so one object serves
 * several calls.
 */
export interface CallEvents {
  onHead(call: UpstreamCall, head: UpstreamHead): void;
  onData(call: UpstreamCall, chunk: Buffer): void;
  onTrailers(call: UpstreamCall, trailers: IncomingHttpHeaders): void;
  /** The response ended cleanly (after its trailers, if any). */
  onEnd(call: UpstreamCall): void;
  /** `afterHead`: the response was already under way. */
  onFail(call: UpstreamCall, f: CallFailure, afterHead: boolean): void;
  /** The request side can take more bytes. */
  onWritable(call: UpstreamCall): void;
}

/**
 * One attempt's request/response exchange with an endpoint, whatever the
 * upstream protocol: HTTP/2 stream (h2-call.ts) or HTTP/1.1 request
 * (h1-call.ts). After `cancel` (or a failure) no event follows.
 */
export interface UpstreamCall {
  events: CallEvents;
  readonly attempt: UpstreamAttempt;
  /** The per-try timer of the attempt runner, if any. */
  tryTimer: Timer | undefined;
  write(chunk: Buffer): boolean;
  end(): void;
  /** Response-side flow control. */
  pause(): void;
  resume(): void;
  /** Drops the call: RST_STREAM (`h2Code`, default CANCEL) or the HTTP/1.1 socket destroyed. */
  cancel(h2Code?: number): void;
  /** Whether the call is over (ended, failed or cancelled). */
  readonly closed: boolean;
  /** The verified SPIFFE ID of the upstream, when the call went over mesh mTLS. */
  peerPrincipal(): string | undefined;
}
