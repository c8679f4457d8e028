import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import { inboundConfigYaml, type OutboundPolicy } from '../../injector/inbound-config.js';
import {
  cleanupCommands,
  inboundCatchAll,
  parseCidrList,
  parseIncludePorts,
  parseInboundPorts,
  parsePortList,
  redirectRules,
  type IpFamily,
  type RedirectOptions,
} from '../../injector/redirect-rules.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger redirect [--proxy-uid 1337] [--outbound-port 15001] [--inbound-port 15006]
                         [--inbound-ports APP=LISTENER,...] [--include-inbound-ports '*'|P,...]
                         [--exclude-inbound-ports P,...]
                         [--exclude-outbound-ports P,...] [--exclude-outbound-ip-ranges CIDR,...]
                         [--include-outbound-ip-ranges '*'|CIDR,...] [--ipv6 auto|on|off]
                         [--inbound-config FILE] [--outbound-policy ALLOW_ANY|REGISTRY_ONLY]
                         [--mtls-mode PERMISSIVE|STRICT|DISABLE] [--dry-run]

Installs the pod's traffic capture with iptables and ip6tables (nat table,
REDIRECT). Inbound: each --inbound-ports app port goes to its own sidecar
listener; then --include-inbound-ports '*' sends every other port (except the
status, admin and sidecar ports and --exclude-inbound-ports) to the inbound
catch-all listener (--inbound-port), and a port list sends only those ports
there (default: none). Outbound TCP goes to the outbound port, except the
proxy's own UID, loopback and the excluded ports and ranges. Run by the
outrigger-init container (root, NET_ADMIN). --inbound-config also writes the
sidecar's bootstrap config: the inbound listeners of the mapped ports, the
inbound catch-all listener (when anything is sent to it) and the outbound
listener, which in ALLOW_ANY (the default --outbound-policy) passes unknown
destinations through to where the app was going and in REGISTRY_ONLY refuses
them. --mtls-mode sets the inbound listeners' peerAuthentication (mesh mTLS,
docs/security.md; default DISABLE). --dry-run prints the rules (iptables-restore format) instead of
applying anything. See docs/injector.md.`;

export const redirectCommand: Command = {
  summary: 'install iptables traffic capture for a pod (init container)',
  async run(args) {
    const values = parseFlags(
      args,
      {
        'proxy-uid': { type: 'string', default: '1337' },
        'outbound-port': { type: 'string', default: '15001' },
        'inbound-port': { type: 'string', default: '15006' },
        'inbound-ports': { type: 'string', default: '' },
        // Default: none, as before the catch-all existed (the injector always passes it).
        'include-inbound-ports': { type: 'string', default: '' },
        'exclude-inbound-ports': { type: 'string', default: '' },
        'exclude-outbound-ports': { type: 'string', default: '' },
        'exclude-outbound-ip-ranges': { type: 'string', default: '' },
        'include-outbound-ip-ranges': { type: 'string', default: '*' },
        ipv6: { type: 'string', default: 'auto' },
        'inbound-config': { type: 'string' },
        'mtls-mode': { type: 'string', default: 'DISABLE' },
        'outbound-policy': { type: 'string', default: 'ALLOW_ANY' },
        'dry-run': { type: 'boolean', default: false },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    let opts: RedirectOptions;
    try {
      const uid = Number(values['proxy-uid']);
      if (!Number.isInteger(uid) || uid < 1) throw new Error('--proxy-uid must be a positive integer');
      opts = {
        proxyUid: uid,
        outboundPort: onePort(values['outbound-port']!, '--outbound-port'),
        inboundPort: onePort(values['inbound-port']!, '--inbound-port'),
        inboundPorts: parseInboundPorts(values['inbound-ports']!),
        includeInboundPorts: parseIncludePorts(values['include-inbound-ports']!),
        excludeInboundPorts: parsePortList(values['exclude-inbound-ports']!),
        excludeOutboundPorts: parsePortList(values['exclude-outbound-ports']!),
        excludeOutboundIpRanges: parseCidrList(values['exclude-outbound-ip-ranges']!, false),
        includeOutboundIpRanges: parseCidrList(values['include-outbound-ip-ranges']!, true),
      };
      if (!['auto', 'on', 'off'].includes(values.ipv6!)) throw new Error('--ipv6 must be auto, on or off');
      if (!['ALLOW_ANY', 'REGISTRY_ONLY'].includes(values['outbound-policy']!)) throw new Error('--outbound-policy must be ALLOW_ANY or REGISTRY_ONLY');
      if (!['PERMISSIVE', 'STRICT', 'DISABLE'].includes(values['mtls-mode']!)) throw new Error('--mtls-mode must be PERMISSIVE, STRICT or DISABLE');
    } catch (err) {
      throw new UsageError((err as Error).message, USAGE);
    }
    const families: IpFamily[] = values.ipv6 === 'off' ? [4] : [4, 6];
    if (values['dry-run']) {
      for (const f of families) process.stdout.write(`# ${f === 4 ? 'iptables' : 'ip6tables'}\n${redirectRules(opts, f)}`);
      return 0;
    }
    if (values['inbound-config']) {
      // Bind "::" (dual stack: IPv4 and IPv6 redirects) where the kernel has IPv6.
      // The outbound listener shares the host: it receives both families too.
      const host = values.ipv6 !== 'off' && existsSync('/proc/net/if_inet6') ? '::' : '0.0.0.0';
      const file = values['inbound-config'];
      try {
        const outboundPolicy = values['outbound-policy'] as OutboundPolicy;
        const catchAll = inboundCatchAll(opts);
        const inboundPort = catchAll === 'all' || catchAll.length > 0 ? opts.inboundPort : undefined;
        writeFileSync(
          `${file}.tmp`,
          inboundConfigYaml({
            inboundPorts: opts.inboundPorts,
            inboundPort,
            bindHost: host,
            outboundPort: opts.outboundPort,
            outboundPolicy,
            mtls: values['mtls-mode'] === 'DISABLE' ? undefined : (values['mtls-mode'] as 'PERMISSIVE' | 'STRICT'),
          }),
        );
        chmodSync(`${file}.tmp`, 0o644); // written as root, read by the proxy's UID
        renameSync(`${file}.tmp`, file);
      } catch (err) {
        process.stderr.write(`outrigger redirect: cannot write ${file}: ${(err as Error).message}\n`);
        return 1;
      }
    }
    for (const f of families) {
      const bin = f === 4 ? 'iptables' : 'ip6tables';
      // auto: skip IPv6 where the kernel has it off (no /proc/net/if_inet6).
      if (f === 6 && values.ipv6 === 'auto' && !existsSync('/proc/net/if_inet6')) {
        process.stderr.write('outrigger redirect: IPv6 not available; ip6tables rules skipped\n');
        continue;
      }
      for (const c of cleanupCommands()) spawnSync(bin, c, { stdio: 'ignore' });
      const r = spawnSync(`${bin}-restore`, ['--noflush'], { input: redirectRules(opts, f), encoding: 'utf8' });
      if (r.status !== 0) {
        const msg = r.error?.message ?? r.stderr.trim();
        if (f === 6 && values.ipv6 === 'auto') {
          process.stderr.write(`outrigger redirect: ip6tables rules not applied (${msg}); IPv6 traffic is not captured\n`);
          continue;
        }
        process.stderr.write(`outrigger redirect: ${bin}-restore failed: ${msg}\n`);
        return 1;
      }
      process.stdout.write(`outrigger redirect: ${bin} rules applied\n`);
    }
    return 0;
  },
};

function onePort(s: string, flag: string): number {
  const ports = parsePortList(s);
  if (ports.length !== 1) throw new Error(`${flag} must be one port`);
  return ports[0]!;
}
