/** One upstream address. `key` identifies its connection pools across config versions. */
export interface EndpointAddress {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** `host:port` (IPv6 hosts bracketed), stable across snapshots. */
  readonly key: string;
}

export function endpointKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
