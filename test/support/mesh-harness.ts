import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { startControlServer, type ControlServer } from '../../src/control/server/control-server.js';
import { FileStateStore } from '../../src/control/store/file-store.js';
import { openCa } from '../../src/control/server/ca/open-ca.js';
import { anyOf, WorkloadTokenFile, type WorkloadAuthenticator } from '../../src/control/server/ca/workload-auth.js';
import type { CertificateAuthority } from '../../src/control/server/ca/certificate-authority.js';
import { collector, removeDir, tempDir, TOKEN } from './control-harness.js';
import { startTestSidecar, type TestSidecar } from './sidecar-harness.js';
import type { Doc } from './config-docs.js';
import type { SidecarOptions } from '../../sidecar/main.js';
import type { ControlTls } from '../../src/control/client/transport.js';

/** Workloads by bootstrap token: "shop/api" style identities. */
export type Workloads = Record<string, `${string}/${string}`>;

export interface MeshControlPlane extends ControlServer {
  readonly address: string;
  readonly dir: string;
  readonly logs: Record<string, unknown>[];
  readonly ca: CertificateAuthority;
  readonly tokenFile: string;
  /** Writes a token file for one workload's sidecar. */
  tokenFor(token: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * An in-process control plane acting as the mesh CA (self-signed root kept
 * in its file store) with a bootstrap-token file listing `workloads`.
 */
export async function startMeshControlPlane(
  workloads: Workloads,
  opts: {
    certTtlMs?: number;
    trustDomain?: string;
    dir?: string;
    port?: number;
    auth?: WorkloadAuthenticator;
    clock?: Clock;
    authenticateSidecars?: boolean;
    /** Serve TLS (PEM contents); `clientCa` also turns operator mTLS on. */
    tls?: { cert: string; key: string; clientCa?: string };
    /** stop() leaves the directory (a restart on the same store follows). */
    keepDir?: boolean;
  } = {},
): Promise<MeshControlPlane> {
  const dir = opts.dir ?? (await tempDir('outrigger-mesh-'));
  const logs: Record<string, unknown>[] = [];
  const logger = collector(logs);
  const clock = opts.clock ?? systemClock();
  const store = await FileStateStore.open(dir);
  const ca = await openCa({ trustDomain: opts.trustDomain ?? 'cluster.local', store: store.ca, clock, logger });
  const tokenFile = join(dir, 'workload-tokens');
  await writeFile(tokenFile, Object.entries(workloads).map(([t, id]) => `${t} ${id}`).join('\n') + '\n');
  const file = new WorkloadTokenFile(tokenFile);
  const server = await startControlServer({
    store,
    clock,
    logger,
    registry: new Registry(),
    port: opts.port ?? 0,
    host: '127.0.0.1',
    auth: { token: TOKEN, mtls: !!opts.tls?.clientCa },
    tls: opts.tls,
    validate: { allowEphemeralPorts: true },
    debounceMs: 20,
    identity: { ca, caStore: store.ca, auth: opts.auth ? anyOf([file, opts.auth]) : file, certTtlMs: opts.certTtlMs ?? 24 * 3600_000, authenticateSidecars: opts.authenticateSidecars ?? true },
  });
  let n = 0;
  return Object.assign(server, {
    address: opts.tls ? `https://127.0.0.1:${server.port}` : `127.0.0.1:${server.port}`,
    dir,
    logs,
    ca,
    tokenFile,
    async tokenFor(token: string) {
      const f = join(dir, `token-${n++}`);
      await writeFile(f, token + '\n');
      return f;
    },
    async stop() {
      await server.close();
      if (!opts.keepDir) await removeDir(dir);
    },
  });
}

/** An in-process sidecar with static config `docs` that gets its workload certificate from `cp` with `token`. */
export async function startMeshSidecar(
  cp: MeshControlPlane,
  nodeId: string,
  token: string,
  docs: Doc[],
  extra: Partial<SidecarOptions> & { requestedTtlMs?: number; controlTls?: ControlTls } = {},
): Promise<TestSidecar> {
  const tokenFile = await cp.tokenFor(token);
  const { requestedTtlMs, controlTls, ...rest } = extra;
  return startTestSidecar(docs, {
    controlPlane: {
      address: cp.address,
      tls: controlTls,
      nodeId,
      initialFetchTimeoutMs: 5000,
      initialBackoffMs: 50,
      maxBackoffMs: 500,
      warmingTimeoutMs: 2000,
      identity: { tokenFile, requestedTtlMs },
    },
    ...rest,
  });
}
