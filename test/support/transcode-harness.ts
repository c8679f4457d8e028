import { request } from 'undici';
import { file_outrigger_examples_bookstore_v1_bookstore } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { cluster, listener, type Doc } from './config-docs.js';
import { descriptorSetOf, ECHO_FILE } from './echo-backend.js';
import { startTestSidecar, type TestSidecar } from './sidecar-harness.js';

/** Setup shared by the transcoding integration tests (test/integration/transcode-*.test.ts). */

export const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

/** `descriptorBin` of the Bookstore service and of the echo service. */
export const BOOKSTORE_DESCRIPTOR = b64(descriptorSetOf(file_outrigger_examples_bookstore_v1_bookstore));
export const ECHO_DESCRIPTOR = b64(descriptorSetOf(ECHO_FILE));

/** The Bookstore service's path prefix (`/<package>.<Service>`). */
export const BOOKSTORE_SVC = '/outrigger.examples.bookstore.v1.BookstoreService';
/** The browser origin the gRPC-Web / Connect / WebSocket tests allow. */
export const ORIGIN = 'https://app.example';

/** A route sending every path (prefix '/') to `clusterName`, transcoding with `transcode`. */
export function transcodeRoute(name: string, clusterName: string, transcode: Record<string, unknown>): unknown {
  return { name, match: { prefix: '/' }, route: { cluster: clusterName, transcode } };
}

/** A virtual host with one transcodeRoute, both called `name`. */
export function transcodeHost(name: string, domains: string[], clusterName: string, transcode: Record<string, unknown>): unknown {
  return { name, domains, routes: [transcodeRoute(name, clusterName, transcode)] };
}

/** A RouteConfiguration of several virtual hosts (config-docs' `routes` makes one, called 'default'). */
export function hosts(name: string, virtualHosts: unknown[]): Doc {
  return { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name }, spec: { virtualHosts } };
}

/** A static cluster of one gRPC (HTTP/2) backend on loopback. */
export function grpcCluster(name: string, port: number, extra: Record<string, unknown> = {}): Doc {
  return cluster(name, [port], 'UPSTREAM_PROTOCOL_HTTP2', extra);
}

/** A sidecar with the listener 'main' serving the route configuration `mainRoutes` (named 'main'), plus `docs`. */
export async function startTranscodeSidecar(mainRoutes: Doc, ...docs: Doc[]): Promise<TestSidecar> {
  return startTestSidecar([listener('main'), mainRoutes, ...docs]);
}

/** The URL of a sidecar listener: `http://127.0.0.1:<port>` (or ws://). */
export function baseUrl(sc: TestSidecar, scheme: 'http' | 'ws' = 'http', listenerName = 'main'): string {
  return `${scheme}://127.0.0.1:${sc.port(listenerName)}`;
}

export interface JsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, undefined when it is not JSON. */
  json: any;
  trailers: Record<string, string | string[] | undefined>;
}

/** An undici request whose body is read as text and, where it parses, as JSON. */
export async function requestJson(url: string, init: Parameters<typeof request>[1] = {}): Promise<JsonResponse> {
  const r = await request(url, init);
  const text = await r.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, headers: r.headers, text, json, trailers: r.trailers };
}
