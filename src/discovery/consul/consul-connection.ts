/** How to reach the Consul agent, by Consul's own conventions. */
export interface ConsulConnection {
  /** Base URL, e.g. http://127.0.0.1:8500 */
  readonly url: string;
  /** ACL token sent as X-Consul-Token. */
  readonly token?: string;
}

/**
 * `--consul-addr`, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500 (the agent's
 * default); a bare host:port is http (https with CONSUL_HTTP_SSL=true).
 * CONSUL_HTTP_TOKEN is the ACL token.
 */
export function consulConnection(flagAddr: string | undefined, env: NodeJS.ProcessEnv = process.env): ConsulConnection {
  const raw = flagAddr || env.CONSUL_HTTP_ADDR || '127.0.0.1:8500';
  const scheme = env.CONSUL_HTTP_SSL === 'true' ? 'https' : 'http';
  const url = /^https?:\/\//.test(raw) ? raw.replace(/\/+$/, '') : `${scheme}://${raw}`;
  const token = env.CONSUL_HTTP_TOKEN || undefined;
  return token ? { url, token } : { url };
}
