import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { detectKubernetesVersion } from '../../injector/kube-version.js';
import { makeTestPki, type TestPki } from '../support/injector-pki.js';

const BIN = fileURLToPath(new URL('../../bin/outrigger.js', import.meta.url));
const env = { ...process.env, OUTRIGGER_FROM_SOURCE: '1' };
const run = (args: string[]): { status: number; out: string; err: string } => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env, timeout: 15_000 });
  return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
};

describe('injector commands as processes (injector, wait-ready) and the API-server version probe', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let serving: { certFile: string; keyFile: string };

  before(() => {
    pki = makeTestPki();
    serving = pki.issue('outrigger-injector.outrigger-system.svc', 'serving', '127.0.0.1');
  });
  after(() => pki?.cleanup());

  it('outrigger injector: usage errors exit 2, a bad mesh config exits 1 naming the field', () => {
    expect(run(['injector']).status).to.equal(2);
    expect(run(['injector', '--bogus']).status).to.equal(2);
    const bad = join(pki.dir, 'bad-mesh.yaml');
    writeFileSync(bad, 'nativeSidecar: enabled\n');
    const r = run(['injector', '--tls-cert', serving.certFile, '--tls-key', serving.keyFile, '--mesh-config', bad]);
    expect(r.status).to.equal(1);
    expect(r.err).to.contain('nativeSidecar: unknown field');
  });

  it('outrigger injector: serves /inject with the mesh config file and exits 0 on SIGTERM', async () => {
    const mesh = join(pki.dir, 'mesh.yaml');
    writeFileSync(mesh, 'kubernetesVersion: "1.30"\nproxyImage: registry.example.com/outrigger:test\n');
    const child = spawn(process.execPath, [BIN, 'injector', '--tls-cert', serving.certFile, '--tls-key', serving.keyFile,
      '--port', '0', '--host', '127.0.0.1', '--mesh-config', mesh], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const ready = await new Promise<{ port: number; kubernetesVersion: string }>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.includes('"injector ready"'));
          if (line) resolve(JSON.parse(line) as { port: number; kubernetesVersion: string });
        });
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      expect(ready.kubernetesVersion).to.equal('1.30');
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a' }] } } },
      };
      const body = await new Promise<string>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: ready.port, path: '/inject', method: 'POST', ca: pki.caCert, servername: 'outrigger-injector.outrigger-system.svc', headers: { 'content-type': 'application/json' } }, (res) => {
          let data = '';
          res.on('data', (d: Buffer) => (data += d.toString()));
          res.on('end', () => resolve(data));
        });
        req.on('error', reject);
        req.end(JSON.stringify(review));
      });
      const response = (JSON.parse(body) as { response: { uid: string; patch: string } }).response;
      expect(response.uid).to.equal('u-1');
      const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString()) as { path: string; value: { name: string; image: string; restartPolicy?: string }[] }[];
      const inits = patch.find((op) => op.path === '/spec/initContainers')!.value;
      expect(inits.map((c) => [c.name, c.image, c.restartPolicy])).to.deep.equal([
        ['outrigger-init', 'registry.example.com/outrigger:test', undefined],
        ['outrigger-proxy', 'registry.example.com/outrigger:test', 'Always'],
      ]);
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
    }
  });

  it('outrigger wait-ready: returns 0 once /ready answers 200, 1 at the timeout', async () => {
    let calls = 0;
    const server = http.createServer((_req, res) => {
      res.statusCode = ++calls < 3 ? 503 : 200;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, [BIN, 'wait-ready', '--url', `http://127.0.0.1:${port}/ready`, '--interval', '50ms', '--timeout', '10s'], { env });
      expect(await new Promise((r) => child.on('exit', r))).to.equal(0);
      expect(calls).to.equal(3);
    } finally {
      await new Promise((r) => server.close(r));
    }
    const r = run(['wait-ready', '--url', `http://127.0.0.1:${port}/ready`, '--timeout', '300ms', '--interval', '50ms']);
    expect(r.status).to.equal(1);
    expect(r.err).to.match(/not ready after 300ms/);
  });

  describe('Kubernetes version from the API server', () => {
    let api: https.Server;
    let port: number;
    let saDir: string;

    before(async () => {
      const apiCert = pki.issue('kubernetes.default.svc', 'apiserver', '127.0.0.1');
      api = https.createServer({ cert: readFileSync(apiCert.certFile), key: readFileSync(apiCert.keyFile) }, (req, res) => {
        res.setHeader('content-type', 'application/json');
        if (req.url !== '/version' || req.headers.authorization !== 'Bearer sa-token') {
          res.statusCode = 401;
          return res.end(JSON.stringify({ kind: 'Status', code: 401 }));
        }
        res.end(JSON.stringify({ major: '1', minor: '30', gitVersion: 'v1.30.2' }));
      });
      await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
      port = (api.address() as AddressInfo).port;
      saDir = join(pki.dir, 'sa');
      mkdirSync(saDir);
      writeFileSync(join(saDir, 'ca.crt'), pki.caCert);
      writeFileSync(join(saDir, 'token'), 'sa-token\n');
    });
    after(() => new Promise((r) => api.close(r)));

    it('asks GET /version with the service-account token, verifying the API server', async () => {
      const v = await detectKubernetesVersion({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, saDir);
      expect(v).to.equal('v1.30.2');
    });

    it('is unknown outside a cluster, on a refused token, or when the server is not trusted', async () => {
      expect(await detectKubernetesVersion({}, saDir)).to.equal(undefined);
      writeFileSync(join(saDir, 'token'), 'wrong\n');
      expect(await detectKubernetesVersion({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, saDir)).to.equal(undefined);
      writeFileSync(join(saDir, 'token'), 'sa-token\n');
      const other = makeTestPki();
      try {
        writeFileSync(join(saDir, 'ca.crt'), other.caCert);
        expect(await detectKubernetesVersion({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, saDir)).to.equal(undefined);
      } finally {
        writeFileSync(join(saDir, 'ca.crt'), pki.caCert);
        other.cleanup();
      }
    });
  });
});
