import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { ConsulProvider } from '../consul/consul-provider.js';
import { consulConnection } from '../consul/consul-connection.js';
import { DnsProvider } from '../dns/dns-provider.js';
import type { KubernetesTarget } from '../kubernetes/kube-provider.js';
import { natsServers } from '../nats/announce-protocol.js';
import type { NatsTarget } from '../nats/nats-provider.js';
import type { DiscoveryProvider, ProviderEvents, ProviderKind, ProviderStatus } from '../provider.js';
import { LazyProvider } from './lazy-provider.js';

/** Connection settings from flags; the environment fills in the rest by each ecosystem's conventions. */
export interface DiscoveryConnections {
  /** --kubeconfig (else KUBECONFIG, ~/.kube/config, in-cluster). */
  readonly kubeconfig?: string;
  /** --consul-addr (else CONSUL_HTTP_ADDR; CONSUL_HTTP_TOKEN is the token). */
  readonly consulAddr?: string;
  /** --nats-servers, comma-separated (else NATS_URL). */
  readonly natsServers?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Consul blocking-query wait and hung-agent slack (defaults 55 s and 10 s; tests shorten them). */
  readonly consulWaitMs?: number;
  readonly consulTimeoutSlackMs?: number;
}

export interface ProviderDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  readonly events: ProviderEvents;
  readonly connections: DiscoveryConnections;
}

/**
 * One provider per kind, made on first need (a sidecar with only DNS
 * clusters never loads a kubeconfig or dials NATS) and shared by every
 * cluster of that kind. A provider that cannot even be built (no kubeconfig)
 * is remembered as failed with the reason, counted, and retried on the next
 * config change.
 */
export class Providers {
  private dns: DnsProvider | undefined;
  // Kubernetes and NATS load their client libraries on first use (lazy-provider.ts).
  private kube: LazyProvider<KubernetesTarget> | undefined;
  private consul: ConsulProvider | undefined;
  private nats: LazyProvider<NatsTarget> | undefined;
  private readonly failures = new Map<ProviderKind, string>();

  constructor(private readonly d: ProviderDeps) {}

  getDns(): DnsProvider {
    return (this.dns ??= new DnsProvider({ clock: this.d.clock, logger: this.d.logger, events: this.d.events, random: this.d.random }));
  }

  getKubernetes(): DiscoveryProvider<KubernetesTarget> {
    return (this.kube ??= new LazyProvider<KubernetesTarget>(
      'kubernetes',
      async () => {
        const [{ loadKubeConfig }, { KubernetesProvider }] = await Promise.all([import('../kubernetes/kube-connection.js'), import('../kubernetes/kube-provider.js')]);
        const env = this.d.connections.env ?? process.env;
        const saved = process.env.KUBECONFIG;
        // loadFromDefault reads process.env; an injected env (tests) stands in for it while loading.
        if (this.d.connections.env && env.KUBECONFIG !== undefined) process.env.KUBECONFIG = env.KUBECONFIG;
        try {
          return new KubernetesProvider({ kubeConfig: loadKubeConfig(this.d.connections.kubeconfig), clock: this.d.clock, logger: this.d.logger, events: this.d.events, random: this.d.random });
        } finally {
          if (this.d.connections.env) {
            if (saved === undefined) delete process.env.KUBECONFIG;
            else process.env.KUBECONFIG = saved;
          }
        }
      },
      () => this.failures.delete('kubernetes'),
      (err) => this.fail('kubernetes', err),
    ));
  }

  getConsul(): ConsulProvider {
    return (this.consul ??= new ConsulProvider({
      connection: consulConnection(this.d.connections.consulAddr, this.d.connections.env),
      waitMs: this.d.connections.consulWaitMs,
      timeoutSlackMs: this.d.connections.consulTimeoutSlackMs,
      clock: this.d.clock,
      logger: this.d.logger,
      events: this.d.events,
      random: this.d.random,
    }));
  }

  getNats(): DiscoveryProvider<NatsTarget> {
    return (this.nats ??= new LazyProvider<NatsTarget>(
      'nats',
      async () => {
        const { NatsProvider } = await import('../nats/nats-provider.js');
        return new NatsProvider({ servers: natsServers(this.d.connections.natsServers, this.d.connections.env), clock: this.d.clock, logger: this.d.logger, events: this.d.events });
      },
      () => this.failures.delete('nats'),
      (err) => this.fail('nats', err),
    ));
  }

  private fail(kind: ProviderKind, err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    if (this.failures.get(kind) !== msg) this.d.logger.error({ provider: kind, err: msg }, 'discovery provider cannot start');
    this.failures.set(kind, msg);
    this.d.events.onError?.(kind);
  }

  status(): ProviderStatus[] {
    const out: ProviderStatus[] = [];
    for (const p of [this.dns, this.kube?.loaded ? this.kube : undefined, this.consul, this.nats?.loaded ? this.nats : undefined]) if (p) out.push(p.status());
    for (const [kind, why] of this.failures) if (!out.some((s) => s.kind === kind)) out.push({ kind, connected: false, lastEventMs: undefined, services: 0, errors: 1, lastError: why });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.dns?.close(), this.kube?.close(), this.consul?.close(), this.nats?.close()]);
  }
}
