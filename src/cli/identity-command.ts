import http from 'node:http';
import { parseFlags, UsageError } from './flags.js';
import { DEFAULT_SIDECAR } from './sidecar-admin.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger identity [--sidecar HOST:ADMINPORT] [-o text|json]

Shows a sidecar's workload identity (docs/security.md): its SPIFFE ID, the
certificate's serial and validity, the time left, and the trust bundle's
roots. Reads the admin API's /certs (default ${DEFAULT_SIDECAR}). Exit 1 when
the sidecar has no certificate (yet), 2 on bad flags.`;

interface CertFacts {
  subject?: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  sha256: string;
  uriSans?: string;
}
interface Certs {
  spiffeId: string;
  trustDomain: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  expiresInSeconds: number;
  chain: CertFacts[];
  bundle: CertFacts[];
}

export const identityCommand: Command = {
  summary: "show a sidecar's workload certificate (SPIFFE ID, expiry, trust bundle)",
  async run(args) {
    const values = parseFlags(args, { sidecar: { type: 'string', default: DEFAULT_SIDECAR }, output: { type: 'string', short: 'o', default: 'text' } }, USAGE)?.values;
    if (!values) return 0;
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError('-o must be text or json', USAGE);
    let reply: { status: number; body: string };
    try {
      reply = await get(`http://${values.sidecar}/certs`);
    } catch (err) {
      process.stderr.write(`outrigger identity: ${values.sidecar}: ${(err as Error).message}\n`);
      return 1;
    }
    if (reply.status !== 200) {
      process.stderr.write(`outrigger identity: ${values.sidecar}: ${reply.body.trim()}\n`);
      return 1;
    }
    const c = JSON.parse(reply.body) as Certs;
    if (values.output === 'json') {
      process.stdout.write(JSON.stringify(c, null, 2) + '\n');
      return 0;
    }
    const left = c.expiresInSeconds;
    const human = left <= 0 ? 'EXPIRED' : left >= 3600 ? `${(left / 3600).toFixed(1)}h` : left >= 60 ? `${Math.round(left / 60)}m` : `${left}s`;
    const lines = [
      `SPIFFE ID:     ${c.spiffeId}`,
      `trust domain:  ${c.trustDomain}`,
      `serial:        ${c.serial}`,
      `valid:         ${c.notBefore} → ${c.notAfter} (${left <= 0 ? human : `${human} left`})`,
      `issuer:        ${c.chain[0]?.issuer.replace(/\n/g, ', ') ?? '-'}`,
      `trust bundle:  ${c.bundle.length} root${c.bundle.length === 1 ? '' : 's'}`,
      ...c.bundle.map((b) => `  - ${b.subject?.replace(/\n/g, ', ') ?? '(no subject)'}  until ${b.notAfter}  sha256 ${b.sha256.slice(0, 23)}…`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}
