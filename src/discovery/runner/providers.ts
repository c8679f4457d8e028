import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { ConsulProvider } from '../consul/consul-provider.js';
import { consulConnection } from '../consul/consul-connection.js';
import { DnsProvider } from '../dns/dns-provider.js';
import { loadKubeConfig } from '../kubernetes/kube-connection.js';
import { KubernetesProvider } from '../kubernetes/kube-provider.js';
import { natsServers } from '../nats/announce-protocol.js';
import { NatsProvider } from '../nats/nats-provider.js';
import type { ProviderEvents, ProviderKind, ProviderStatus } from '../provider.js';

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
  private kube: KubernetesProvider | undefined;
  private consul: ConsulProvider | undefined;
  private nats: NatsProvider | undefined;
  private readonly failures = new Map<ProviderKind, string>();

  constructor(private readonly d: ProviderDeps) {}

  getDns(): DnsProvider {
    return (this.dns ??= new DnsProvider({ clock: this.d.clock, logger: this.d.logger, events: this.d.events, random: this.d.random }));
  }

  getKubernetes(): KubernetesProvider | undefined {
    if (this.kube) return this.kube;
    try {
      const env = this.d.connections.env ?? process.env;
      const saved = process.env.KUBECONFIG;
      // loadFromDefault reads process.env; an injected env (tests) stands in for it while loading.
      if (this.d.connections.env && env.KUBECONFIG !== undefined) process.env.KUBECONFIG = env.KUBECONFIG;
      try {
        this.kube = new KubernetesProvider({ kubeConfig: loadKubeConfig(this.d.connections.kubeconfig), clock: this.d.clock, logger: this.d.logger, events: this.d.events, random: this.d.random });
      } finally {
        if (this.d.connections.env) {
          if (saved === undefined) delete process.env.KUBECONFIG;
          else process.env.KUBECONFIG = saved;
        }
      }
      this.failures.delete('kubernetes');
      return this.kube;
    } catch (err) {
      this.fail('kubernetes', err);
      return undefined;
    }
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

  getNats(): NatsProvider {
    return (this.nats ??= new NatsProvider({ servers: natsServers(this.d.connections.natsServers, this.d.connections.env), clock: this.d.clock, logger: this.d.logger, events: this.d.events }));
  }

  private fail(kind: ProviderKind, err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    if (this.failures.get(kind) !== msg) this.d.logger.error({ provider: kind, err: msg }, 'discovery provider cannot start');
    this.failures.set(kind, msg);
    this.d.events.onError?.(kind);
  }

  status(): ProviderStatus[] {
    const out: ProviderStatus[] = [];
    for (const p of [this.dns, this.kube, this.consul, this.nats]) if (p) out.push(p.status());
    for (const [kind, why] of this.failures) if (!out.some((s) => s.kind === kind)) out.push({ kind, connected: false, lastEventMs: undefined, services: 0, errors: 1, lastError: why });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.dns?.close(), this.kube?.close(), this.consul?.close(), this.nats?.close()]);
  }
}
