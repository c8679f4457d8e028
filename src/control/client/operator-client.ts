import { readFileSync } from 'node:fs';
import type { DescService } from '@bufbuild/protobuf';
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { OperatorService } from '../../gen/outrigger/control/v1/operator_pb.js';
import { controlTransport, type ControlTls } from './transport.js';

export interface OperatorTarget {
  readonly address: string;
  readonly token?: string;
  /** TLS (PEM contents); undefined = h2c unless the address is https://. */
  readonly tls?: ControlTls;
}

export interface TargetFlags {
  'control-plane'?: string;
  'token-file'?: string;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
}

/**
 * Where the CLI talks to: --control-plane / --token-file / --tls-ca /
 * --tls-cert / --tls-key, falling back to OUTRIGGER_CONTROL_PLANE,
 * OUTRIGGER_TOKEN (the token's value), OUTRIGGER_TLS_CA, OUTRIGGER_TLS_CERT
 * and OUTRIGGER_TLS_KEY (file paths). Any TLS file (or an https:// address)
 * means TLS; a client certificate needs its key.
 */
export function resolveTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): OperatorTarget {
  const address = flags['control-plane'] ?? env.OUTRIGGER_CONTROL_PLANE;
  if (!address) throw new Error('no control plane: pass --control-plane HOST:PORT or set OUTRIGGER_CONTROL_PLANE');
  const token = flags['token-file'] ? readFileSync(flags['token-file'], 'utf8').trim() : env.OUTRIGGER_TOKEN;
  const file = (flag: 'tls-ca' | 'tls-cert' | 'tls-key', envName: string): string | undefined => {
    const path = flags[flag] ?? (env[envName] || undefined);
    return path === undefined ? undefined : readFileSync(path, 'utf8');
  };
  const ca = file('tls-ca', 'OUTRIGGER_TLS_CA');
  const cert = file('tls-cert', 'OUTRIGGER_TLS_CERT');
  const key = file('tls-key', 'OUTRIGGER_TLS_KEY');
  if ((cert === undefined) !== (key === undefined)) throw new Error('--tls-cert and --tls-key go together (or OUTRIGGER_TLS_CERT and OUTRIGGER_TLS_KEY)');
  const tls = ca !== undefined || cert !== undefined ? { ca, cert, key } : undefined;
  return { address, token: token || undefined, tls };
}

export function operatorClient(target: OperatorTarget): Client<typeof OperatorService> {
  return controlClient(OperatorService, target);
}

/** A client of any operator-authenticated service of the control API (OperatorService, CaService). */
export function controlClient<S extends DescService>(service: S, target: OperatorTarget): Client<S> {
  const auth: Interceptor = (next) => (req) => {
    if (target.token) req.header.set('authorization', `Bearer ${target.token}`);
    return next(req);
  };
  return createClient(service, createGrpcTransport({ ...controlTransport(target.address, target.tls), interceptors: [auth] }));
}
