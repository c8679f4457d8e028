import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from '../../src/gen/grpc/health/v1/health_pb.js';
import type { OpenStreams } from './open-streams.js';
import { rpcError } from './rpc-status.js';

/**
 * `grpc.health.v1.Health` for a server whose services are always up while it
 * runs: the overall status ("") and every named service are SERVING, other
 * names are unknown. Watch sends the current status once and stays open (the
 * status never changes) until the client leaves or the server closes, when
 * it sends NOT_SERVING and ends UNAVAILABLE so the client retries elsewhere.
 */
export function healthHandlers(services: readonly string[], streams: OpenStreams): grpc.UntypedServiceImplementation {
  const known = new Set(['', ...services]);
  const statusOf = (service: string): ServingStatus =>
    known.has(service) ? ServingStatus.SERVING : ServingStatus.SERVICE_UNKNOWN;
  const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

  return {
    check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ) {
      const { service } = call.request;
      if (!known.has(service)) return callback(rpcError(grpc.status.NOT_FOUND, `unknown service "${service}"`));
      callback(null, response(ServingStatus.SERVING));
    },

    watch(call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      call.write(response(statusOf(call.request.service)));
      const untrack = streams.track(() => {
        call.write(response(ServingStatus.NOT_SERVING));
        call.emit('error', rpcError(grpc.status.UNAVAILABLE, 'server shutting down'));
      });
      call.on('cancelled', untrack);
    },

    list(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const service of known) statuses[service] = response(ServingStatus.SERVING);
      callback(null, create(HealthListResponseSchema, { statuses }));
    },
  };
}
