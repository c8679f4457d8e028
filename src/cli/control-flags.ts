import { Code, ConnectError } from '@connectrpc/connect';

/** Flags every operator command takes. */
export const TARGET_OPTIONS = {
  'control-plane': { type: 'string' },
  'token-file': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const TARGET_USAGE = `  --control-plane HOST:PORT  the control plane (default: $OUTRIGGER_CONTROL_PLANE)
  --token-file FILE          bearer token file (default: the value of $OUTRIGGER_TOKEN)
  --tls-ca FILE              TLS: verify the control plane's certificate with this CA
                             (default: $OUTRIGGER_TLS_CA; an https:// address uses the system CAs)
  --tls-cert F, --tls-key F  TLS: present this client certificate (mTLS; no token needed)
                             (default: $OUTRIGGER_TLS_CERT, $OUTRIGGER_TLS_KEY)`;

/**
 * Prints a failed call as `outrigger CMD: CODE: message` (the message carries document and field path); exit 1.
 * Connection failures that usually mean a TLS mismatch get a hint line: a server certificate the CA does not
 * verify, or a plaintext (h2c) call that a TLS port closed. `tls` says whether the call used TLS.
 */
export function reportError(cmd: string, err: unknown, tls?: boolean): number {
  let line: string;
  let message: string;
  if (err instanceof ConnectError) {
    message = err.rawMessage;
    line = `${Code[err.code]?.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}: ${message}`;
  } else {
    message = (err as Error).message;
    line = message;
  }
  process.stderr.write(`outrigger ${cmd}: ${line}\n`);
  const code = err instanceof ConnectError ? err.code : undefined;
  if (/certificate|self.signed|unable to verify|altnames|CERT_/i.test(message) && code !== Code.Unauthenticated) {
    process.stderr.write(`  hint: the control plane's certificate was not verified; give the CA that signed it with --tls-ca (or $OUTRIGGER_TLS_CA)\n`);
  } else if (tls === false && (code === Code.Canceled || code === Code.Unavailable || code === Code.Internal || code === Code.Aborted)) {
    // How a TLS port turns away plaintext varies with timing: stream closed (CANCELED), ECONNRESET (ABORTED), …
    process.stderr.write(`  hint: if the control plane serves TLS, pass --tls-ca FILE (or $OUTRIGGER_TLS_CA) or an https:// address\n`);
  }
  return 1;
}
