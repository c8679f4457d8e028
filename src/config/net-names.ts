import { isIP } from 'node:net';

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** An RFC 1123 host name: dot-separated labels of letters, digits and inner "-", at most 253 characters. */
export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((label) => LABEL_RE.test(label));
}

/** What a SocketAddress.host may hold: an IP literal (unbracketed) or a host name. */
export function checkHost(host: string): string | undefined {
  if (host === '') return 'required';
  if (isIP(host) !== 0 || isHostname(host)) return undefined;
  if (host.startsWith('[') && isIP(host.slice(1, -1)) === 6) return `write IPv6 addresses without brackets ("${host.slice(1, -1)}")`;
  if (host.includes(':') && isIP(host) === 0) return `invalid host "${host}" (put the port in "port", not in "host")`;
  return `invalid host "${host}": expected an IP address or a host name`;
}

/** A TCP port: 1..65535, and 0 (let the kernel pick) only when the caller allows it. */
export function checkPort(port: number, allowZero: boolean): string | undefined {
  if (port >= 1 && port <= 65535) return undefined;
  if (port === 0 && allowZero) return undefined;
  return `must be 1..65535, got ${port}`;
}

/** True for addresses that bind every interface, so they clash with any host on the same port. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * A virtual-host domain: "*", "*.suffix" or an exact host name (IPv4, or IPv6
 * in brackets as it appears in :authority); case does not matter. Ports are
 * not allowed: the router drops the port of :authority before matching, so a
 * port in a domain would suggest a distinction that is not made.
 */
export function checkDomain(domain: string): string | undefined {
  if (domain === '*') return undefined;
  if (domain === '') return 'must not be empty';
  if (domain.startsWith('[') && domain.endsWith(']') && isIP(domain.slice(1, -1)) === 6) return undefined;
  // "host:port" / "[v6]:port": matches only that port (a domain without a port matches any).
  const withPort = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]*]+):(\d{1,5})$/.exec(domain);
  if (withPort) {
    const port = Number(withPort[2]);
    if (port < 1 || port > 65535) return `invalid port in domain "${domain}" (1..65535)`;
    const host = withPort[1]!;
    if (host.startsWith('[')) return isIP(host.slice(1, -1)) === 6 ? undefined : `invalid IPv6 literal in domain "${domain}"`;
    return isHostname(host) || isIP(host) === 4 ? undefined : `invalid domain "${domain}": expected HOST:PORT with a host name or IP`;
  }
  if (domain.includes(':')) return `invalid domain "${domain}": a port goes after a host name or IP ("host:80", "[::1]:80"), never with "*"`;
  const host = domain.startsWith('*.') ? domain.slice(2) : domain;
  if (host.includes('*')) return `invalid domain "${domain}": "*" is only allowed alone or as a leading "*."`;
  if (!isHostname(host)) return `invalid domain "${domain}": expected "*", "*.suffix" or a host name`;
  return undefined;
}

/** A CIDR ("10.0.0.0/8", "fd00::/8") or a bare address, parsed; a string says what is wrong. */
export function parseCidr(cidr: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const [addr, bits] = cidr.split('/') as [string, string | undefined];
  const fam = isIP(addr);
  const max = fam === 4 ? 32 : 128;
  const n = bits === undefined ? max : /^\d+$/.test(bits) ? Number(bits) : NaN;
  if (fam === 0 || !(n >= 0 && n <= max)) return `"${cidr}" is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)`;
  return { address: addr, prefix: n, family: fam === 4 ? 'ipv4' : 'ipv6' };
}
