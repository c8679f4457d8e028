import { isCidr } from './cidr.js';
import { PORTS } from './pod-types.js';

/** Input of `outrigger redirect`; the init container's args, parsed. */
export interface RedirectOptions {
  proxyUid: number;
  outboundPort: number;
  /** The inbound catch-all listener: captured inbound ports without a listener of their own go there. */
  inboundPort: number;
  /** Captured inbound app ports and the sidecar listener each goes to (always redirected, first). */
  inboundPorts: [number, number][];
  /**
   * Inbound ports captured besides `inboundPorts`, to the catch-all listener:
   * `*` every port (except the status, admin and sidecar ports and
   * `excludeInboundPorts`), or only these (none when empty).
   */
  includeInboundPorts: '*' | number[];
  /** Never captured by the catch-all (RETURN before it). */
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundIpRanges: string[];
  /** `*` captures every destination; otherwise only these ranges. */
  includeOutboundIpRanges: string[];
}

export type IpFamily = 4 | 6;

export const CHAINS = { inbound: 'OUTRIGGER_INBOUND', output: 'OUTRIGGER_OUTPUT', redirect: 'OUTRIGGER_REDIRECT' } as const;

/**
 * What goes to the inbound catch-all listener: `all` (every port not returned
 * or redirected before), the listed ports that have no listener of their own,
 * or nothing (an empty list: the catch-all listener is not needed).
 */
export function inboundCatchAll(o: Pick<RedirectOptions, 'inboundPorts' | 'includeInboundPorts'>): 'all' | number[] {
  if (o.includeInboundPorts === '*') return 'all';
  const mapped = new Set(o.inboundPorts.map(([app]) => app));
  return [...new Set(o.includeInboundPorts)].filter((p) => !mapped.has(p));
}

/**
 * Renders the nat-table rules for one address family, in iptables-restore
 * format (applied with --noflush so nothing else in the table is touched;
 * declaring our chains empties them, so applying twice gives the same rules).
 *
 * Inbound (PREROUTING), in order: the status and admin ports return (never
 * captured); each declared app port is REDIRECTed to its own sidecar listener
 * (PORTS.inboundBase + k: the listener port tells the sidecar the original
 * port, with no SO_ORIGINAL_DST); then, when anything goes to the catch-all,
 * the excluded ports and the sidecar's own ports return and the rest (`*`) or
 * the listed ports go to the inbound catch-all listener, which finds the
 * original destination with SO_ORIGINAL_DST.
 * Outbound (OUTPUT): the proxy's own traffic (UID), loopback, excluded ports
 * and ranges return; the rest (or the included ranges) go to the outbound
 * listener, which routes HTTP by Host/:authority.
 */
export function redirectRules(o: RedirectOptions, family: IpFamily): string {
  const lines = [
    '*nat',
    `:${CHAINS.inbound} - [0:0]`,
    `:${CHAINS.output} - [0:0]`,
    `:${CHAINS.redirect} - [0:0]`,
    `-A PREROUTING -p tcp -j ${CHAINS.inbound}`,
    `-A OUTPUT -p tcp -j ${CHAINS.output}`,
  ];
  const inbound = (rule: string): void => void lines.push(`-A ${CHAINS.inbound} -p tcp ${rule}`);
  for (const p of [PORTS.status, PORTS.admin]) inbound(`--dport ${p} -j RETURN`);
  for (const [app, listener] of o.inboundPorts) inbound(`--dport ${app} -j REDIRECT --to-ports ${listener}`);
  const catchAll = inboundCatchAll(o);
  if (catchAll === 'all' || catchAll.length > 0) {
    for (const p of o.excludeInboundPorts) inbound(`--dport ${p} -j RETURN`);
    // The sidecar's own ports: a connection to one of them reaches it as it is
    // (and is refused there when it has no destination), never redirected.
    const own = [o.outboundPort, o.inboundPort].map(String);
    own.push(`${PORTS.inboundBase}:${PORTS.inboundMax}`);
    for (const [, listener] of o.inboundPorts) if (listener < PORTS.inboundBase || listener > PORTS.inboundMax) own.push(String(listener));
    for (const p of new Set(own)) inbound(`--dport ${p} -j RETURN`);
    if (catchAll === 'all') inbound(`-j REDIRECT --to-ports ${o.inboundPort}`);
    else for (const p of catchAll) inbound(`--dport ${p} -j REDIRECT --to-ports ${o.inboundPort}`);
  }
  lines.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`);
  lines.push(`-A ${CHAINS.output} -m owner --uid-owner ${o.proxyUid} -j RETURN`);
  // Connections to the pod itself (the app calling its own pod IP) stay local.
  lines.push(`-A ${CHAINS.output} -o lo -j RETURN`);
  lines.push(`-A ${CHAINS.output} -d ${family === 4 ? '127.0.0.1/32' : '::1/128'} -j RETURN`);
  for (const p of o.excludeOutboundPorts) lines.push(`-A ${CHAINS.output} -p tcp --dport ${p} -j RETURN`);
  for (const c of o.excludeOutboundIpRanges.filter((r) => familyOf(r) === family)) lines.push(`-A ${CHAINS.output} -d ${c} -j RETURN`);
  if (o.includeOutboundIpRanges.includes('*')) {
    lines.push(`-A ${CHAINS.output} -j ${CHAINS.redirect}`);
  } else {
    for (const c of o.includeOutboundIpRanges.filter((r) => familyOf(r) === family)) lines.push(`-A ${CHAINS.output} -d ${c} -j ${CHAINS.redirect}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Commands that remove our jumps from the built-in chains, run before applying (errors ignored). */
export function cleanupCommands(): string[][] {
  return [
    ['-t', 'nat', '-D', 'PREROUTING', '-p', 'tcp', '-j', CHAINS.inbound],
    ['-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', CHAINS.output],
  ];
}

function familyOf(cidr: string): IpFamily {
  return cidr.includes(':') ? 6 : 4;
}

/** Parses "8080=15100,9090=15101". */
export function parseInboundPorts(s: string): [number, number][] {
  if (s.trim() === '') return [];
  return s.split(',').map((pair) => {
    const m = /^\s*(\d+)=(\d+)\s*$/.exec(pair);
    if (!m) throw new Error(`bad inbound port mapping ${JSON.stringify(pair)} (want APP=LISTENER)`);
    return [port(m[1]!), port(m[2]!)];
  });
}

/** `*`, or a port list ("" is none). */
export function parseIncludePorts(s: string): '*' | number[] {
  return s.trim() === '*' ? '*' : parsePortList(s);
}

export function parsePortList(s: string): number[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map(port);
}

export function parseCidrList(s: string, allowStar: boolean): string[] {
  const out = s.split(',').map((x) => x.trim()).filter(Boolean);
  for (const c of out) if (!(isCidr(c) || (allowStar && c === '*'))) throw new Error(`bad CIDR ${JSON.stringify(c)}`);
  return out;
}

function port(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s.trim()) || n < 1 || n > 65535) throw new Error(`bad port ${JSON.stringify(s)}`);
  return n;
}
