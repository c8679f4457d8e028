import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const KIND_LABEL = ['kind'];

/**
 * Control-plane metrics on an injected registry. Labels are bounded: `kind`
 * is one of the four resource kinds, `op` one of load/commit.
 */
export class ControlMetrics {
  readonly connected: Gauge;
  readonly pushes: Counter;
  readonly pushDuration: Histogram;
  readonly convergence: Histogram;
  readonly pushLatency: Histogram;
  readonly nacks: Counter;
  readonly storeLatency: Histogram;
  readonly applies: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connected = new Gauge({ name: 'outrigger_control_connected_sidecars', help: 'Open discovery streams', labelNames: ['stream'], registers });
    this.pushes = new Counter({ name: 'outrigger_control_pushes_total', help: 'Discovery responses sent, by kind', labelNames: KIND_LABEL, registers });
    this.pushDuration = new Histogram({
      name: 'outrigger_control_push_duration_seconds',
      help: 'Time to compute and enqueue one push to every stream',
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.convergence = new Histogram({
      name: 'outrigger_control_convergence_seconds',
      help: 'From a committed change until every stream that was sent it has ACKed',
      buckets: [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
    this.pushLatency = new Histogram({
      name: 'outrigger_control_push_latency_seconds',
      help: 'From a committed change until one sidecar ACKed it, by kind',
      labelNames: KIND_LABEL,
      buckets: [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
    this.nacks = new Counter({ name: 'outrigger_control_nacks_total', help: 'NACKs received, by kind', labelNames: KIND_LABEL, registers });
    this.storeLatency = new Histogram({
      name: 'outrigger_control_store_seconds',
      help: 'Store operation latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.applies = new Counter({
      name: 'outrigger_control_operations_total',
      help: 'Operator calls that change state, by operation and result',
      labelNames: ['op', 'result'],
      registers,
    });
  }
}
