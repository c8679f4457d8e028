import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProviderEvents, ProviderKind } from '../provider.js';

/** Discovery's metrics (docs/discovery.md), on the injected registry. */
export class DiscoveryMetrics implements ProviderEvents {
  readonly events: Counter<'provider' | 'event'>;
  readonly errors: Counter<'provider'>;
  readonly sets: Counter<'provider'>;
  /** From a source change (when its set was emitted) to the config that carries it being applied (sidecar) or ACKed (control plane). */
  readonly pushSeconds: Histogram<'provider'>;

  constructor(registry: Registry) {
    this.events = new Counter({
      name: 'outrigger_discovery_events_total',
      help: 'Source events read by discovery providers, by what they were (add, update, delete, sync, answer, resolve, connect, reconnect, heartbeat, goodbye)',
      labelNames: ['provider', 'event'],
      registers: [registry],
    });
    this.errors = new Counter({
      name: 'outrigger_discovery_errors_total',
      help: 'Discovery failures (connect, resolve, watch, decode); the last good endpoints keep serving',
      labelNames: ['provider'],
      registers: [registry],
    });
    this.sets = new Counter({ name: 'outrigger_discovery_endpoint_sets_total', help: 'Changed endpoint sets emitted by discovery providers', labelNames: ['provider'], registers: [registry] });
    this.pushSeconds = new Histogram({
      name: 'outrigger_discovery_push_seconds',
      help: 'From a discovered change to the config carrying it being applied (sidecar) or acknowledged by every sidecar (control plane)',
      labelNames: ['provider'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  onEvent(kind: ProviderKind, event: string): void {
    this.events.inc({ provider: kind, event });
  }

  onError(kind: ProviderKind): void {
    this.errors.inc({ provider: kind });
  }
}
