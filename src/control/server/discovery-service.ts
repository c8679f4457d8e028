import type { ServiceImpl } from '@connectrpc/connect';
import { AggregatedDiscoveryService } from '../../gen/outrigger/control/v1/discovery_pb.js';
import type { ControlPlane } from './control-plane.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';

/**
 * The sidecar streams. Requests are read in a background loop and handled in
 * order; responses come from the stream's queue, fed both by requests and by
 * pushes. Authenticating sidecars belongs to the identity/mTLS issue: the
 * hook is here (ctx is available to check a peer identity before register).
 */
export function discoveryService(cp: ControlPlane): ServiceImpl<typeof AggregatedDiscoveryService> {
  return {
    async *streamAggregatedResources(requests, _ctx) {
      const stream = new SotwStream(cp, cp.nextId());
      cp.register(stream);
      const reader = (async () => {
        for await (const req of requests) stream.handle(req);
      })();
      reader.then(
        () => cp.closed(stream),
        (err: Error) => {
          stream.out.close(err);
          cp.closed(stream, err);
        },
      );
      try {
        yield* stream.out;
      } finally {
        cp.closed(stream);
      }
    },
    async *deltaAggregatedResources(requests, _ctx) {
      const stream = new DeltaStream(cp, cp.nextId());
      cp.register(stream);
      const reader = (async () => {
        for await (const req of requests) stream.handle(req);
      })();
      reader.then(
        () => cp.closed(stream),
        (err: Error) => {
          stream.out.close(err);
          cp.closed(stream, err);
        },
      );
      try {
        yield* stream.out;
      } finally {
        cp.closed(stream);
      }
    },
  };
}
