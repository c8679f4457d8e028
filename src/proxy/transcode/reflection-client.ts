import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { GrpcStatus } from '../../core/errors.js';
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from '../../gen/grpc/reflection/v1/reflection_pb.js';
import type { ProxyContext } from '../context.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import { GrpcCall, type CallEnd } from './grpc-call.js';

/** v1 first; v1alpha messages are wire-identical, only the service name differs. */
const PATHS = ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'];
/** Services a server lists that are never transcoded. */
const SKIP = /^grpc\.(reflection|health)\./;

export class ReflectionError extends Error {}

/**
 * Fetches the descriptors of an upstream by gRPC server reflection over the
 * sidecar's own HTTP/2 pool (one bidi call: list_services when no services
 * are named, then file_containing_symbol per service, then file_by_filename
 * for any missing import). Returns a serialized FileDescriptorSet whose files
 * are sorted (imports first, then by name), so the same server answer gives
 * the same bytes and so the same version hash.
 */
export async function fetchByReflection(
  ctx: ProxyContext,
  cluster: ClusterRuntime,
  services: readonly string[],
  timeoutMs: number,
): Promise<Uint8Array> {
  let last: Error | undefined;
  for (const path of PATHS) {
    try {
      return await fetchOnce(ctx, cluster, path, services, timeoutMs);
    } catch (err) {
      last = err as Error;
      if (!(err instanceof Unimplemented)) throw err;
    }
  }
  throw new ReflectionError(`the upstream serves neither grpc.reflection.v1 nor v1alpha: ${last?.message ?? ''}`);
}

class Unimplemented extends ReflectionError {}

async function fetchOnce(ctx: ProxyContext, cluster: ClusterRuntime, path: string, services: readonly string[], timeoutMs: number): Promise<Uint8Array> {
  const ep = cluster.pick({}).ep;
  if (!ep) throw new ReflectionError(`cluster ${cluster.name} has no endpoints`);
  const s = new ReflectionStream(ctx, cluster, ep, path, timeoutMs);
  try {
    let names = [...services];
    if (names.length === 0) {
      const r = await s.ask({ case: 'listServices', value: '' });
      if (r.messageResponse.case !== 'listServicesResponse') throw new ReflectionError(`unexpected answer to list_services: ${r.messageResponse.case}`);
      names = r.messageResponse.value.service.map((x) => x.name).filter((n) => !SKIP.test(n));
    }
    const files = new Map<string, FileDescriptorProto>();
    const take = (r: ServerReflectionResponse, what: string): void => {
      if (r.messageResponse.case === 'errorResponse') {
        throw new ReflectionError(`${what}: ${r.messageResponse.value.errorMessage} (code ${r.messageResponse.value.errorCode})`);
      }
      if (r.messageResponse.case !== 'fileDescriptorResponse') throw new ReflectionError(`${what}: unexpected answer ${r.messageResponse.case}`);
      for (const b of r.messageResponse.value.fileDescriptorProto) {
        const f = fromBinary(FileDescriptorProtoSchema, b);
        if (!files.has(f.name)) files.set(f.name, f);
      }
    };
    for (const n of names.sort()) take(await s.ask({ case: 'fileContainingSymbol', value: n }), `symbol ${n}`);
    // Servers usually send the transitive imports along; ask for any that are missing.
    for (let guard = 0; guard < 1000; guard++) {
      const missing = [...files.values()].flatMap((f) => f.dependency).find((d) => !files.has(d));
      if (missing === undefined) break;
      take(await s.ask({ case: 'fileByFilename', value: missing }), `file ${missing}`);
    }
    return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: topoSort(files) }));
  } finally {
    s.close();
  }
}

/** Imports before importers; ties by name, so the order is deterministic. */
function topoSort(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const out: FileDescriptorProto[] = [];
  const done = new Set<string>();
  const visit = (name: string, stack: Set<string>): void => {
    if (done.has(name) || stack.has(name)) return;
    const f = files.get(name);
    if (!f) return;
    stack.add(name);
    for (const d of [...f.dependency].sort()) visit(d, stack);
    stack.delete(name);
    done.add(name);
    out.push(f);
  };
  for (const n of [...files.keys()].sort()) visit(n, new Set());
  return out;
}

/** One ServerReflectionInfo bidi call used request by request (the protocol answers in order). */
class ReflectionStream {
  private readonly call: GrpcCall;
  private readonly waiting: { resolve(r: ServerReflectionResponse): void; reject(e: Error): void }[] = [];
  private end: CallEnd | undefined;

  constructor(ctx: ProxyContext, cluster: ClusterRuntime, ep: EndpointAddress, path: string, timeoutMs: number) {
    this.call = new GrpcCall(ctx, cluster, ep, { ':path': path, ':authority': ep.key }, timeoutMs, {
      onHeaders: () => {},
      onMessage: (bytes) => {
        const w = this.waiting.shift();
        try {
          w?.resolve(fromBinary(ServerReflectionResponseSchema, bytes));
        } catch (err) {
          w?.reject(new ReflectionError(`malformed reflection answer: ${(err as Error).message}`));
        }
        return true;
      },
      onEnd: (e) => {
        this.end = e;
        const err =
          e.code === GrpcStatus.UNIMPLEMENTED
            ? new Unimplemented(`${path}: UNIMPLEMENTED ${e.message}`)
            : new ReflectionError(`${path}: the call ended with status ${e.code}${e.message ? ` (${e.message})` : ''}`);
        for (const w of this.waiting.splice(0)) w.reject(err);
      },
    });
  }

  ask(req: ServerReflectionRequest['messageRequest']): Promise<ServerReflectionResponse> {
    if (this.end) {
      const e = this.end;
      return Promise.reject(
        e.code === GrpcStatus.UNIMPLEMENTED ? new Unimplemented(e.message) : new ReflectionError(`the reflection call ended with status ${e.code} ${e.message}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.call.send(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: req })));
    });
  }

  close(): void {
    if (this.end) return;
    this.call.halfClose();
    this.call.cancel('done');
  }
}
