import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { operatorClient } from '../../src/control/client/operator-client.js';
import { controlTransport } from '../../src/control/client/transport.js';
import { Health, HealthCheckResponse_ServingStatus } from '../../src/gen/grpc/health/v1/health_pb.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, toYaml } from '../support/config-docs.js';
import { makeControlPki, type ControlPki } from '../support/control-pki.js';
import { outrigger, removeDir, spawnControlPlane, spawnSidecar, tempDir, writeToken, TOKEN, codeOf } from '../support/control-harness.js';
import { waitFor } from '../support/wait.js';
import { backendOf } from '../support/backend-of.js';
import { inject } from '../../injector/inject.js';
import { defaultMeshConfig } from '../../injector/mesh-config.js';

type Spawned = Awaited<ReturnType<typeof spawnControlPlane>>;

/**
 * `outrigger control` as a real process with --tls-cert/--tls-key/--client-ca
 * and --token-file, talked to by the real CLI (and the operator client) over
 * TLS: a client certificate signed by the client CA or the token
 * authenticates; neither, or a certificate from another CA, is
 * UNAUTHENTICATED and stores nothing. A real sidecar process connects with
 * --control-plane-ca and gets its config. The steps build on each other.
 */
describe('control plane: TLS and mTLS (real process, real CLI)', function () {
  this.timeout(60000);
  let pki: ControlPki;
  let dir: string;
  let tokenFile: string;
  let docsFile: string;
  let cp: Spawned;
  let a: Started<unknown>, b: Started<unknown>;
  let address: string;

  const certFlags = (): string[] => ['--tls-ca', pki.caFile, '--tls-cert', pki.client.certFile, '--tls-key', pki.client.keyFile];
  const cli = (args: string[], env: Record<string, string> = {}) => outrigger([...args, '--control-plane', address], env);
  /** The operator API with the good client certificate (what checks "nothing changed"). */
  const trusted = () =>
    operatorClient({
      address,
      tls: { ca: readFileSync(pki.caFile, 'utf8'), cert: readFileSync(pki.client.certFile, 'utf8'), key: readFileSync(pki.client.keyFile, 'utf8') },
    });
  const snapshot = async (): Promise<string> => {
    const l = await trusted().list({});
    return JSON.stringify({ revision: String(l.revision), versions: l.resources.map((r) => r.version) });
  };
  const auditLines = (): { who: string; op: string }[] =>
    cp
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"audit":true'))
      .map((l) => JSON.parse(l) as { who: string; op: string });

  before(async () => {
    pki = await makeControlPki();
    dir = await tempDir('outrigger-mtls-');
    tokenFile = await writeToken(dir);
    a = await startH1Echo('a');
    b = await startH1Echo('b');
    docsFile = join(dir, 'docs.yaml');
    await writeFile(docsFile, toYaml([listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])]));
    cp = await spawnControlPlane([
      '--store', `file:${join(dir, 'store')}`, '--port', '0', '--token-file', tokenFile,
      '--tls-cert', pki.server.certFile, '--tls-key', pki.server.keyFile, '--client-ca', pki.caFile,
    ]);
    address = `127.0.0.1:${cp.port}`;
  });
  after(async () => {
    if (cp && cp.child.exitCode === null) {
      await new Promise<void>((r) => {
        cp.child.once('exit', () => r());
        cp.child.kill('SIGTERM');
      });
    }
    await a?.close();
    await b?.close();
    await pki?.remove();
    await removeDir(dir);
  });

  it('a client certificate signed by --client-ca is enough: apply, get and status succeed without a token (flags and env)', async () => {
    const applied = await cli(['apply', '-f', docsFile, ...certFlags()]);
    expect(applied.stderr).to.equal('');
    expect(applied.code).to.equal(0);
    expect(applied.stdout).to.contain('Cluster/web applied');
    // The same credentials from the environment.
    const got = await outrigger(['get', 'cluster', 'web', '-o', 'json'], {
      OUTRIGGER_CONTROL_PLANE: address,
      OUTRIGGER_TLS_CA: pki.caFile,
      OUTRIGGER_TLS_CERT: pki.client.certFile,
      OUTRIGGER_TLS_KEY: pki.client.keyFile,
    });
    expect(got.code, got.stderr).to.equal(0);
    expect(JSON.parse(got.stdout)).to.have.nested.property('metadata.name', 'web');
    const status = await cli(['status', ...certFlags()]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^NODE\s+TYPE/);
    // The audit line names the certificate's subject.
    await waitFor(() => auditLines().length > 0, 'audit line');
    expect(auditLines()[0]).to.include({ op: 'apply', who: 'cert:operator-alice' });
  });

  it('without a client certificate or a token every operator call is UNAUTHENTICATED and nothing changes; health answers', async () => {
    const before = await snapshot();
    const cliRes = await cli(['apply', '-f', docsFile, '--tls-ca', pki.caFile]);
    expect(cliRes.code).to.equal(1);
    expect(cliRes.stderr).to.match(/^outrigger apply: UNAUTHENTICATED: authentication required: a bearer token or a client certificate signed by --client-ca/);
    const api = operatorClient({ address, tls: { ca: readFileSync(pki.caFile, 'utf8') } });
    const doc = JSON.parse(JSON.stringify(cluster('web', [b.port])));
    const calls: Record<string, () => Promise<unknown>> = {
      apply: () => api.apply({ documents: [doc] }),
      delete: () => api.delete({ kind: 'Cluster', name: 'web' }),
      get: () => api.get({ kind: 'Cluster', name: 'web' }),
      list: () => api.list({}),
      validate: () => api.validate({ documents: [doc] }),
      history: () => api.history({ kind: 'Cluster', name: 'web' }),
      rollback: () => api.rollback({ kind: 'Cluster', name: 'web', toRevision: 1n }),
      status: () => api.status({}),
      watch: async () => {
        for await (const _ of api.watch({})) break;
      },
    };
    for (const [name, call] of Object.entries(calls)) expect(await codeOf(call()), name).to.equal(Code.Unauthenticated);
    const health = createClient(Health, createGrpcTransport(controlTransport(address, { ca: readFileSync(pki.caFile, 'utf8') })));
    expect((await health.check({})).status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    expect(await snapshot()).to.equal(before);
  });

  it('a client certificate from another CA is refused, even together with a valid token, and nothing changes', async () => {
    const before = await snapshot();
    const other = ['--tls-ca', pki.caFile, '--tls-cert', pki.otherClient.certFile, '--tls-key', pki.otherClient.keyFile];
    for (const extra of [[], ['--token-file', tokenFile]]) {
      const res = await cli(['apply', '-f', docsFile, ...other, ...extra]);
      expect(res.code, extra.join(' ')).to.equal(1);
      expect(res.stderr).to.match(/^outrigger apply: UNAUTHENTICATED: client certificate not accepted \(\w+\)/);
    }
    expect(await snapshot()).to.equal(before);
    expect(auditLines().every((l) => !l.who.includes('mallory'))).to.equal(true);
  });

  it('a bearer token without a client certificate works (token OR certificate); a wrong token does not', async () => {
    await writeFile(join(dir, 'docs-b.yaml'), toYaml([cluster('web', [b.port])]));
    const before = await snapshot();
    const wrong = join(dir, 'wrong-token');
    await writeFile(wrong, 'not-the-token\n');
    const bad = await cli(['apply', '-f', join(dir, 'docs-b.yaml'), '--tls-ca', pki.caFile, '--token-file', wrong]);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.contain('UNAUTHENTICATED');
    expect(await snapshot()).to.equal(before);
    const ok = await cli(['apply', '-f', join(dir, 'docs-b.yaml'), '--tls-ca', pki.caFile], { OUTRIGGER_TOKEN: TOKEN });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain('Cluster/web applied');
    expect(auditLines().at(-1)!.who).to.match(/^token:[0-9a-f]{8}$/);
    // Back to backend a for the sidecar step.
    expect((await cli(['apply', '-f', docsFile, ...certFlags()])).code).to.equal(0);
  });

  it('the CLI refuses a control plane whose certificate its CA did not sign, and h2c to the TLS port fails', async () => {
    const wrongCa = await cli(['get', 'cluster', '--tls-ca', pki.otherCaFile, '--token-file', tokenFile]);
    expect(wrongCa.code).to.equal(1);
    expect(wrongCa.stderr).to.match(/^outrigger get: [A-Z_]+: self-signed certificate in certificate chain\n  hint: the control plane's certificate was not verified; give the CA that signed it with --tls-ca/);
    const h2c = await cli(['get', 'cluster', '--token-file', tokenFile]);
    expect(h2c.code).to.equal(1);
    expect(h2c.stderr).to.match(/^outrigger get: [A-Z_]+: .*\n  hint: if the control plane serves TLS, pass --tls-ca FILE/);
  });

  it('a sidecar process with --control-plane-ca connects over TLS, gets its config and shows in status as SYNCED', async () => {
    const stateDir = await tempDir('outrigger-mtls-state-');
    const sc = await spawnSidecar(['--control-plane', address, '--control-plane-ca', pki.caFile, '--node-id', 'tls-node-1', '--state-dir', stateDir]);
    try {
      const port = sc.listeners.main!.port;
      expect(await backendOf(port)).to.equal('a');
      expect(sc.stdout()).to.not.contain('control plane not available');
      await waitFor(async () => {
        const res = await cli(['status', '-o', 'json', ...certFlags()]);
        const nodes = (JSON.parse(res.stdout) as { sidecars: { nodeId: string; types: { state: string }[] }[] }).sidecars;
        return nodes.length === 1 && nodes[0]!.nodeId === 'tls-node-1' && nodes[0]!.types.length === 3 && nodes[0]!.types.every((t) => t.state === 'SYNCED');
      }, 'status: tls-node-1 SYNCED on CDS, LDS and RDS');
      // A change reaches it over the TLS stream.
      expect((await cli(['apply', '-f', join(dir, 'docs-b.yaml'), ...certFlags()])).code).to.equal(0);
      await waitFor(async () => (await backendOf(port)) === 'b', 'traffic to b');
    } finally {
      await sc.stop();
      await removeDir(stateDir);
    }
  });

  it('an injected sidecar (the injector inlines the CA of the mesh config) connects over TLS with --control-plane-ca env:…', async () => {
    const caPem = readFileSync(pki.caFile, 'utf8');
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app' }] } };
    const out = inject(pod as never, { ...defaultMeshConfig(), workloadIdentity: false, controlPlaneCaBundle: caPem }, '1.28');
    const proxy = [...out.pod.spec!.containers, ...(out.pod.spec!.initContainers ?? [])].find((c) => c.name === 'outrigger-proxy')!;
    const at = proxy.args!.indexOf('--control-plane-ca');
    const caArg = proxy.args![at + 1]!;
    const env = Object.fromEntries((proxy.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    expect(caArg).to.match(/^env:/);
    const stateDir = await tempDir('outrigger-mtls-state-');
    const sc = await spawnSidecar(['--control-plane', address, '--control-plane-ca', caArg, '--node-id', 'tls-node-2', '--state-dir', stateDir], { [caArg.slice(4)]: env[caArg.slice(4)]! });
    try {
      expect(await backendOf(sc.listeners.main!.port)).to.equal('b');
      expect(sc.stdout()).to.not.contain('control plane not available');
    } finally {
      await sc.stop();
      await removeDir(stateDir);
    }
    // A variable without a certificate is a usage error, not a silent h2c fallback.
    const bad = await outrigger(['sidecar', '--control-plane', address, '--control-plane-ca', 'env:OUTRIGGER_NO_SUCH_VAR', '--node-id', 'x.y']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('OUTRIGGER_NO_SUCH_VAR holds no PEM certificate');
  });
});
