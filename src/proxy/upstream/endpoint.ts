import type { LocalityName } from '../../core/locality.js';

/** One upstream address. `key` identifies its connection pools across config versions. */
export interface EndpointAddress {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** `host:port` (IPv6 hosts bracketed), stable across snapshots. */
  readonly key: string;
  /** Failover level (`Endpoint.priority`); absent: 0, the highest. */
  readonly priority?: number | undefined;
  /** Where it runs (`Endpoint.locality`); absent: not said. */
  readonly locality?: LocalityName | undefined;
  /** `Endpoint.metadata` (discovery's labels), when it has any: route subsets select on them (lb/subset.ts). */
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

export function endpointKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
