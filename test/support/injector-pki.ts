import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  /** Issues a serving cert for dnsName signed by the CA; returns the file paths. */
  issue(dnsName: string, prefix: string, ip?: string): { certFile: string; keyFile: string; cert: string };
  cleanup(): void;
}

/** A throwaway CA made with the openssl binary, as a cluster's webhook CA would be. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-pki-'));
  const ossl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', '2', '-subj', '/CN=outrigger-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return {
    dir,
    caCert: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    issue(dnsName, prefix, ip) {
      writeFileSync(join(dir, `${prefix}.ext`), `subjectAltName=DNS:${dnsName}${ip ? `,IP:${ip}` : ''}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
      ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${prefix}.key`, '-out', `${prefix}.csr`, '-subj', `/CN=${dnsName}`);
      ossl('x509', '-req', '-in', `${prefix}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${prefix}.crt`,
        '-days', '2', '-extfile', `${prefix}.ext`);
      return { certFile: join(dir, `${prefix}.crt`), keyFile: join(dir, `${prefix}.key`), cert: readFileSync(join(dir, `${prefix}.crt`), 'utf8') };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
