import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Sidecar-side control stream metrics, on the sidecar's registry. `kind` is one of the four resource kinds. */
export class ClientMetrics {
  readonly connected: Gauge;
  readonly versionInfo: Gauge;
  readonly nacks: Counter;
  readonly updates: Counter;
  readonly pushLatency: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connected = new Gauge({ name: 'outrigger_xds_connected', help: '1 while the control stream is up', registers });
    this.versionInfo = new Gauge({ name: 'outrigger_xds_version_info', help: 'The ACKed version per kind (value 1)', labelNames: ['kind', 'version'], registers });
    this.nacks = new Counter({ name: 'outrigger_xds_nacks_total', help: 'Responses rejected, by kind', labelNames: ['kind'], registers });
    this.updates = new Counter({ name: 'outrigger_xds_updates_total', help: 'Responses ACKed, by kind', labelNames: ['kind'], registers });
    this.pushLatency = new Histogram({
      name: 'outrigger_xds_push_latency_seconds',
      help: 'From the change on the control plane (its clock) until the sidecar applied it',
      buckets: [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
  }
}
