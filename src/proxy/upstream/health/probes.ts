import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from '../../../gen/grpc/health/v1/health_pb.js';
import type { EndpointAddress } from '../endpoint.js';

/**
 * A check's verdict: failed, passed, or passed but `degraded` (an HTTP check
 * answered with the `x-envoy-degraded` or `x-outrigger-degraded` header, as
 * Envoy's health checker reads it). `'degraded'` is truthy: a pass.
 */
export type ProbeResult = boolean | 'degraded';

/** One health check in progress: its verdict, and a way to give up on it (a timeout: it fails). */
export interface ProbeRun {
  readonly done: Promise<ProbeResult>;
  cancel(): void;
}

/** Checks one endpoint once, on a connection of its own. */
export type Probe = (ep: EndpointAddress) => ProbeRun;

/** A probe's settle-once plumbing: `finish` resolves and runs the cleanup exactly once. */
export function settleOnce(cleanup: () => void): { done: Promise<ProbeResult>; finish: (ok: ProbeResult) => void } {
  let resolve!: (ok: ProbeResult) => void;
  const done = new Promise<ProbeResult>((r) => (resolve = r));
  let settled = false;
  return {
    done,
    finish: (ok) => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(ok);
    },
  };
}

export interface HttpProbeOptions {
  readonly path: string;
  readonly host: string;
  readonly method: string;
  /** Passing statuses, each [start, end). */
  readonly expected: readonly (readonly [number, number])[];
}

/** HTTP/1.1 request without keep-alive; passes when the status is in one of the expected ranges. */
export function httpProbe(o: HttpProbeOptions): Probe {
  return (ep) => {
    const req = http.request({
      host: ep.host,
      port: ep.port,
      method: o.method,
      path: o.path,
      agent: false,
      headers: { host: o.host || ep.key, 'user-agent': 'outrigger-health-check', connection: 'close' },
    });
    const s = settleOnce(() => req.destroy());
    req.on('response', (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      const passed = o.expected.some(([a, b]) => code >= a && code < b);
      const degraded = passed && (res.headers['x-envoy-degraded'] !== undefined || res.headers['x-outrigger-degraded'] !== undefined);
      s.finish(degraded ? 'degraded' : passed);
    });
    req.on('error', () => s.finish(false));
    req.end();
    return { done: s.done, cancel: () => s.finish(false) };
  };
}

/** TCP connect; then `send` is written and, with `expect`, the check waits to read those bytes. */
export function tcpProbe(send: Buffer, expect: Buffer): Probe {
  return (ep) => {
    const sock = net.connect({ host: ep.host, port: ep.port });
    const s = settleOnce(() => sock.destroy());
    let got = Buffer.alloc(0);
    sock.on('connect', () => {
      if (send.length > 0) sock.write(send);
      if (expect.length === 0) s.finish(true);
    });
    sock.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.includes(expect)) s.finish(true);
    });
    sock.on('error', () => s.finish(false));
    sock.on('close', () => s.finish(false));
    return { done: s.done, cancel: () => s.finish(false) };
  };
}

/** `grpc.health.v1.Health/Check` over a fresh HTTP/2 session; passes on SERVING only. */
export function grpcProbe(service: string, authority: string): Probe {
  const body = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return (ep) => {
    const session = http2.connect(`http://${ep.key}`);
    const s = settleOnce(() => session.destroy());
    session.on('error', () => s.finish(false));
    const req = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      ':authority': authority || ep.key,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const msg = Buffer.concat(chunks);
      if (grpcStatus !== '0' || msg.length < 5) return s.finish(false);
      try {
        const res = fromBinary(HealthCheckResponseSchema, msg.subarray(5, 5 + msg.readUInt32BE(1)));
        s.finish(res.status === HealthCheckResponse_ServingStatus.SERVING);
      } catch {
        s.finish(false);
      }
    });
    req.on('error', () => s.finish(false));
    req.end(frame);
    return { done: s.done, cancel: () => s.finish(false) };
  };
}
