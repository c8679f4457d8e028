import { Code, ConnectError } from '@connectrpc/connect';

/** Flags every operator command takes. */
export const TARGET_OPTIONS = {
  'control-plane': { type: 'string' },
  'token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const TARGET_USAGE = `  --control-plane HOST:PORT  the control plane (default: $OUTRIGGER_CONTROL_PLANE)
  --token-file FILE          bearer token file (default: the value of $OUTRIGGER_TOKEN)`;

/** Prints a failed call as `outrigger CMD: CODE: message` (the message carries document and field path); exit 1. */
export function reportError(cmd: string, err: unknown): number {
  if (err instanceof ConnectError) {
    process.stderr.write(`outrigger ${cmd}: ${Code[err.code]?.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}: ${err.rawMessage}\n`);
  } else {
    process.stderr.write(`outrigger ${cmd}: ${(err as Error).message}\n`);
  }
  return 1;
}
