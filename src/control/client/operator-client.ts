import { readFileSync } from 'node:fs';
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { OperatorService } from '../../gen/outrigger/control/v1/operator_pb.js';

export interface OperatorTarget {
  readonly address: string;
  readonly token?: string;
}

/**
 * Where the CLI talks to: --control-plane / --token-file, falling back to
 * OUTRIGGER_CONTROL_PLANE and OUTRIGGER_TOKEN (the token's value).
 */
export function resolveTarget(flags: { 'control-plane'?: string; 'token-file'?: string }, env = process.env): OperatorTarget {
  const address = flags['control-plane'] ?? env.OUTRIGGER_CONTROL_PLANE;
  if (!address) throw new Error('no control plane: pass --control-plane HOST:PORT or set OUTRIGGER_CONTROL_PLANE');
  const token = flags['token-file'] ? readFileSync(flags['token-file'], 'utf8').trim() : env.OUTRIGGER_TOKEN;
  return { address, token: token || undefined };
}

export function operatorClient(target: OperatorTarget): Client<typeof OperatorService> {
  const auth: Interceptor = (next) => (req) => {
    if (target.token) req.header.set('authorization', `Bearer ${target.token}`);
    return next(req);
  };
  const baseUrl = /^https?:\/\//.test(target.address) ? target.address : `http://${target.address}`;
  return createClient(OperatorService, createGrpcTransport({ baseUrl, interceptors: [auth] }));
}
