// A custom health check (Cluster.healthCheck.custom, docs/plugins.md): the
// Bookstore is healthy when it answers ListShelves, not merely when its port
// is open; an answer slower than `degradedAfterMs` is "degraded" (picked
// only when too few endpoints are healthy). Plain JavaScript, loaded as is.
import * as grpc from '@grpc/grpc-js';

const identity = (b) => b;

/** @type {import('outrigger/plugin').HealthCheckPlugin<{degradedAfterMs?: number}>} */
export default {
  validate(config) {
    const d = config.degradedAfterMs;
    return d === undefined || (Number.isInteger(d) && d > 0) ? [] : [{ path: 'degradedAfterMs', message: 'a positive integer of milliseconds' }];
  },

  create(config) {
    const degradedAfterMs = config.degradedAfterMs ?? 250;
    return (endpoint, { signal }) =>
      new Promise((resolve) => {
        const client = new grpc.Client(endpoint.key, grpc.credentials.createInsecure());
        const started = Date.now();
        // ListShelvesRequest is empty: its encoding is zero bytes.
        const call = client.makeUnaryRequest('/outrigger.examples.bookstore.v1.BookstoreService/ListShelves', identity, identity, Buffer.alloc(0), (err) => {
          client.close();
          if (err) resolve('unhealthy');
          else resolve(Date.now() - started > degradedAfterMs ? 'degraded' : 'healthy');
        });
        // The sidecar's timeout for the check: give up on the call.
        signal.addEventListener('abort', () => call.cancel(), { once: true });
      });
  },
};
