import type { Clock } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import type { ProxyMetrics } from '../observability/proxy-metrics.js';
import type { ExchangeTelemetry } from '../observability/exchange-telemetry.js';
import type { H1Pool } from './upstream/h1-pool.js';
import type { H2Pool } from './upstream/h2-pool.js';
import type { OriginalDestinations } from './upstream/original-dst.js';
import type { OverloadState } from './overload/heap-overload.js';
import type { SvidSource } from '../core/svid.js';

/**
 * Long-lived collaborators of the data path, built once by the composition
 * root. Config-dependent parts live in ProxyState instead.
 */
export interface ProxyContext {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where access-log lines go (one JSON line per request). */
  readonly accessLog: Logger;
  readonly metrics: ProxyMetrics;
  /** Istio metrics, the live window and the tap (observability); absent in tests that build a bare context. */
  readonly telemetry?: ExchangeTelemetry;
  readonly h2: H2Pool;
  readonly h1: H1Pool;
  /** ORIGINAL_DST clusters: SO_ORIGINAL_DST lookups, destination choice, loop check, their pools' bound. */
  readonly originalDst: OriginalDestinations;
  /** Set once SIGTERM arrives: h1 responses get `Connection: close`. */
  readonly lifecycle: { draining: boolean };
  /** Heap-based load shedding (src/proxy/overload): while overloaded, new connections and requests are refused. */
  readonly overload?: OverloadState;
  /** Told of each connection cut off for an HTTP/2 flood (src/proxy/overload/flood-gc.ts). */
  readonly floodGc?: { noteFlood(): void };
  /** This sidecar's workload certificate (mesh mTLS, docs/security.md); absent without a control plane issuing one. */
  readonly identity?: SvidSource;
}
