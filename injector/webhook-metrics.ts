import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * The injector's metrics, on an injected registry. Labels are bounded:
 * result ∈ ReviewOutcome, reason ∈ SkipReason ∪ {not_a_pod_create}.
 */
export class WebhookMetrics {
  readonly requests: Counter<'result'>;
  readonly skips: Counter<'reason'>;
  readonly errors: Counter<never>;
  readonly duration: Histogram<'result'>;
  readonly certReloads: Counter<'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'outrigger_injector_requests_total',
      help: 'AdmissionReview calls by result: injected, skipped, error, bad_request, unsupported_media_type',
      labelNames: ['result'],
      registers,
    });
    this.skips = new Counter({
      name: 'outrigger_injector_skips_total',
      help: 'Pods not injected, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.errors = new Counter({
      name: 'outrigger_injector_errors_total',
      help: 'Injections that failed (answered allowed: false)',
      registers,
    });
    this.duration = new Histogram({
      name: 'outrigger_injector_request_duration_seconds',
      help: 'Time to answer one AdmissionReview',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.certReloads = new Counter({
      name: 'outrigger_injector_cert_reloads_total',
      help: 'Serving certificate reloads by result: applied or failed',
      labelNames: ['result'],
      registers,
    });
  }
}
