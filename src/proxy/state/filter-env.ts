import { GrpcStatus } from '../../core/errors.js';
import type { FilterClusterCalls, UnaryAnswer } from '../filters/filter.js';
import type { ProxyContext } from '../context.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import { GrpcCall } from '../transcode/grpc-call.js';

/**
 * Unary gRPC calls of the proxy's own (a filter's rate-limit service) to the
 * clusters of one config version, over the same HTTP/2 pools, endpoint picks
 * and health as proxied traffic: GrpcCall, with a scope of its own.
 */
export function unaryCaller(ctx: ProxyContext, clusters: ReadonlyMap<string, ClusterRuntime>): FilterClusterCalls {
  return {
    hasCluster: (name) => clusters.has(name),
    grpcUnary(name, path, request, timeoutMs) {
      const cluster = clusters.get(name);
      if (!cluster) return Promise.resolve({ code: GrpcStatus.UNAVAILABLE, message: `no cluster ${name}` });
      const ep = cluster.pick({}).ep;
      if (!ep) return Promise.resolve({ code: GrpcStatus.UNAVAILABLE, message: `cluster ${name} has no endpoint` });
      return new Promise<UnaryAnswer>((resolve) => {
        let response: Buffer | undefined;
        const call = new GrpcCall(ctx, cluster, ep, { ':path': path, ':authority': name }, timeoutMs, {
          onHeaders: () => {},
          onMessage: (bytes) => {
            response ??= bytes;
            return true;
          },
          onEnd: (e) => resolve(e.code === GrpcStatus.OK && response === undefined ? { code: GrpcStatus.INTERNAL, message: 'no response message' } : { code: e.code, message: e.message, response }),
        });
        call.send(request);
        call.halfClose();
      });
    },
  };
}
