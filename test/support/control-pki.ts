import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface ControlPki {
  readonly dir: string;
  /** The CA the control plane trusts for clients (--client-ca) and that signed its server certificate. */
  readonly caFile: string;
  /** Server certificate for DNS:localhost and IP:127.0.0.1. */
  readonly server: CertFiles;
  /** A client certificate (CN=operator-alice) signed by the CA. */
  readonly client: CertFiles;
  /** A second, unrelated CA and a client certificate (CN=operator-mallory) it signed. */
  readonly otherCaFile: string;
  readonly otherClient: CertFiles;
  remove(): Promise<void>;
}

/**
 * Throw-away PKI for the control plane's TLS/mTLS tests, made with the
 * openssl CLI: EC P-256 keys, valid one day, proper CA and leaf extensions
 * (serverAuth / clientAuth) so Node verifies them as it would real ones.
 */
export async function makeControlPki(): Promise<ControlPki> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-cp-pki-'));
  const p = (f: string): string => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir, timeout: 10_000 });
  const ca = async (name: string, cn: string): Promise<void> => {
    await openssl([
      'req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  };
  const leaf = async (name: string, caName: string, cn: string, ext: string[]): Promise<CertFiles> => {
    await writeFile(p(`${name}.ext`), [...ext, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ''].join('\n'));
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    await openssl([
      'x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`,
    ]);
    return { certFile: p(`${name}.crt`), keyFile: p(`${name}.key`) };
  };
  await ca('ca', 'outrigger control test CA');
  await ca('other-ca', 'some other CA');
  const server = await leaf('server', 'ca', 'localhost', ['subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth']);
  const client = await leaf('client', 'ca', 'operator-alice', ['extendedKeyUsage=clientAuth']);
  const otherClient = await leaf('other-client', 'other-ca', 'operator-mallory', ['extendedKeyUsage=clientAuth']);
  return {
    dir,
    caFile: p('ca.crt'),
    server,
    client,
    otherCaFile: p('other-ca.crt'),
    otherClient,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
