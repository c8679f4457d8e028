import { Cluster_DiscoveryType, Cluster_Dns_LookupFamily, type Cluster } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../core/duration.js';
import type { ConsulTarget } from '../consul/consul-provider.js';
import { DEFAULT_DNS_REFRESH_MS, type DnsTarget, type LookupFamily } from '../dns/dns-provider.js';
import type { KubernetesTarget } from '../kubernetes/kube-provider.js';
import type { NatsTarget } from '../nats/nats-provider.js';

/** What one discovered cluster asks of which provider; `key` changes exactly when the watch must be redone. */
export type ClusterTarget =
  | { readonly kind: 'dns'; readonly key: string; readonly target: DnsTarget }
  | { readonly kind: 'kubernetes'; readonly key: string; readonly target: KubernetesTarget }
  | { readonly kind: 'consul'; readonly key: string; readonly target: ConsulTarget }
  | { readonly kind: 'nats'; readonly key: string; readonly target: NatsTarget };

/** The discovery target of a validated cluster, or undefined for STATIC / EDS / ORIGINAL_DST. */
export function targetOf(c: Cluster): ClusterTarget | undefined {
  switch (c.type) {
    case Cluster_DiscoveryType.DNS: {
      const d = c.dns!;
      const target: DnsTarget = {
        name: d.name,
        port: d.port,
        srv: d.srv,
        lookupFamily: familyOf(d.lookupFamily),
        resolvers: [...d.resolvers],
        refreshMs: durationMs(d.refreshRate, DEFAULT_DNS_REFRESH_MS) || DEFAULT_DNS_REFRESH_MS,
        respectTtl: d.respectDnsTtl ?? true,
      };
      return { kind: 'dns', key: `dns ${JSON.stringify(target)}`, target };
    }
    case Cluster_DiscoveryType.KUBERNETES: {
      const k = c.kubernetes!;
      const p = k.port?.kind;
      const port = p?.case === 'numberValue' ? p.value : p?.case === 'stringValue' ? p.value : undefined;
      const target: KubernetesTarget = { namespace: k.namespace, service: k.service, port };
      return { kind: 'kubernetes', key: `kubernetes ${JSON.stringify(target)}`, target };
    }
    case Cluster_DiscoveryType.CONSUL: {
      const k = c.consul!;
      const target: ConsulTarget = { service: k.service, tags: [...k.tags].sort(), datacenter: k.datacenter, onlyPassing: k.onlyPassing ?? true };
      return { kind: 'consul', key: `consul ${JSON.stringify(target)}`, target };
    }
    case Cluster_DiscoveryType.NATS: {
      const target: NatsTarget = { service: c.nats!.service };
      return { kind: 'nats', key: `nats ${JSON.stringify(target)}`, target };
    }
    default:
      return undefined;
  }
}

function familyOf(f: Cluster_Dns_LookupFamily): LookupFamily {
  switch (f) {
    case Cluster_Dns_LookupFamily.V4_ONLY:
      return 'v4_only';
    case Cluster_Dns_LookupFamily.V6_ONLY:
      return 'v6_only';
    case Cluster_Dns_LookupFamily.ALL:
      return 'all';
    default:
      return 'v4_preferred';
  }
}
