import type { ServiceImpl } from '@connectrpc/connect';
import { AggregatedDiscoveryService } from '../../gen/outrigger/control/v1/discovery_pb.js';
import { AsyncQueue } from '../async-queue.js';
import type { ControlPlane } from './control-plane.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';
import type { DiscoveryStream, StreamTypeStatus } from './stream-host.js';
import type { SidecarAuth } from './ca/sidecar-auth.js';
import { peerKey } from './auth.js';
import type { WorkloadCaller } from './ca/workload-auth.js';

/**
 * The responses of a stream as connect iterates them, then `done` once (end,
 * error or cancel). A plain iterable, not `async *` with `yield*`: that
 * would add two generator layers (several promise turns) per response.
 */
function responses<T>(out: AsyncQueue<T>, done: () => void): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = out[Symbol.asyncIterator]();
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        done();
      };
      return {
        next: () =>
          it.next().then(
            (r) => {
              if (r.done) end();
              return r;
            },
            (err: unknown) => {
              end();
              throw err;
            },
          ),
        return: () => {
          end();
          return it.return!();
        },
        throw: (err: unknown) => {
          end();
          return Promise.reject(err);
        },
      };
    },
  };
}

/**
 * The sidecar streams as connect serves them: gRPC-Web and Connect clients
 * (gRPC sidecars take the raw HTTP/2 path, ads-h2.ts). Requests are read in a background loop and handled in
 * order; responses come from the stream's queue, fed both by requests and by
 * pushes. With `auth`, the stream's SVID (mTLS) or token is checked before
 * it is registered, and its first request's node id against it.
 */
export function discoveryService(cp: ControlPlane, auth?: SidecarAuth): ServiceImpl<typeof AggregatedDiscoveryService> {
  if (!auth) {
    return {
      streamAggregatedResources: (requests) => serve(cp, requests, (out) => new SotwStream(cp, cp.nextId(), out)),
      deltaAggregatedResources: (requests) => serve(cp, requests, (out) => new DeltaStream(cp, cp.nextId(), out)),
    };
  }
  // The same credential and node checks as the raw gRPC path (ads-h2.ts).
  const guarded = <Req extends { node?: { id: string } }>(requests: AsyncIterable<Req>, caller: WorkloadCaller | undefined): AsyncIterable<Req> => ({
    async *[Symbol.asyncIterator]() {
      let first = true;
      for await (const r of requests) {
        if (first) auth.checkNode(caller, r.node?.id);
        first = false;
        yield r;
      }
    },
  });
  return {
    async *streamAggregatedResources(requests, ctx) {
      const caller = await auth.authenticate(ctx.requestHeader.get('authorization') ?? undefined, ctx.values.get(peerKey));
      yield* serve(cp, guarded(requests, caller), (out) => new SotwStream(cp, cp.nextId(), out));
    },
    async *deltaAggregatedResources(requests, ctx) {
      const caller = await auth.authenticate(ctx.requestHeader.get('authorization') ?? undefined, ctx.values.get(peerKey));
      yield* serve(cp, guarded(requests, caller), (out) => new DeltaStream(cp, cp.nextId(), out));
    },
  };
}

function serve<Req, Res>(
  cp: ControlPlane,
  requests: AsyncIterable<Req>,
  make: (out: AsyncQueue<Res>) => DiscoveryStream<StreamTypeStatus, Res> & { handle(req: Req): void },
): AsyncIterable<Res> {
  const out = new AsyncQueue<Res>();
  const stream = make(out);
  cp.register(stream);
  const reader = (async () => {
    for await (const req of requests) stream.handle(req);
  })();
  reader.then(
    () => cp.closed(stream),
    (err: Error) => {
      out.close(err);
      cp.closed(stream, err);
    },
  );
  return responses(out, () => cp.closed(stream));
}
