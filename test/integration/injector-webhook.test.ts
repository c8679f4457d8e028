import { copyFileSync, mkdirSync, renameSync, symlinkSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Operation } from 'rfc6902';
import { Registry } from 'prom-client';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/observability/logger.js';
import { defaultMeshConfig } from '../../injector/mesh-config.js';
import { WebhookServer } from '../../injector/webhook-server.js';
import type { Pod } from '../../injector/pod-types.js';
import { CASES, applyTo, checkGolden, loadCase, validatePod } from '../support/injector-golden.js';
import { makeTestPki, type TestPki } from '../support/injector-pki.js';
import { waitFor } from '../support/wait.js';

const SERVICE = 'outrigger-injector.outrigger-system.svc';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('injector webhook over HTTPS (as the API server calls it)', function () {
  this.timeout(20_000);
  let pki: TestPki;
  let server: WebhookServer;
  let port: number;
  let registry: Registry;
  let certFile: string;
  let keyFile: string;
  const versions = new Map<string, { server: WebhookServer; port: number }>();

  // The API server dials the Service DNS name and verifies it against caBundle.
  function call(path: string, body: string, opts: { contentType?: string; method?: string; servername?: string; ca?: string; port?: number } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: opts.port ?? port,
          path,
          method: opts.method ?? 'POST',
          servername: opts.servername ?? SERVICE,
          ca: opts.ca ?? pki.caCert,
          agent: false,
          headers: { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (data += d));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  function admissionReview(pod: unknown, namespace: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const meta = (pod as Pod).metadata ?? {};
    return {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `uid-${Math.random().toString(16).slice(2)}`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        requestKind: { group: '', version: 'v1', kind: 'Pod' },
        requestResource: { group: '', version: 'v1', resource: 'pods' },
        name: meta.name ?? '',
        namespace,
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts'] },
        object: pod,
        oldObject: null,
        dryRun: false,
        options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
        ...extra,
      },
    };
  }

  interface ReviewResponse {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    status?: { code?: number; message?: string };
  }

  async function post(review: Record<string, unknown>, p = port): Promise<ReviewResponse> {
    const res = await call('/inject', JSON.stringify(review), { port: p });
    expect(res.status).to.equal(200);
    const out = JSON.parse(res.body) as { apiVersion: string; kind: string; response: ReviewResponse };
    expect(out.apiVersion).to.equal('admission.k8s.io/v1');
    expect(out.kind).to.equal('AdmissionReview');
    expect(out.response.uid).to.equal((review.request as { uid: string }).uid);
    return out.response;
  }

  const decode = (r: ReviewResponse): Operation[] => JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8')) as Operation[];

  /** One server per Kubernetes version (the version is learned once, at startup). */
  async function serverFor(version: string): Promise<number> {
    let s = versions.get(version);
    if (!s) {
      const srv = await WebhookServer.create({
        certFile, keyFile, mesh: defaultMeshConfig(), kubernetesVersion: version,
        registry: new Registry(), logger: silentLogger(), clock: systemClock(),
      });
      s = { server: srv, port: await srv.listen(0, '127.0.0.1') };
      versions.set(version, s);
    }
    return s.port;
  }

  before(async () => {
    pki = makeTestPki();
    const issued = pki.issue(SERVICE, 'serving');
    certFile = join(pki.dir, 'tls.crt');
    keyFile = join(pki.dir, 'tls.key');
    copyFileSync(issued.certFile, certFile);
    copyFileSync(issued.keyFile, keyFile);
    registry = new Registry();
    server = await WebhookServer.create({
      certFile, keyFile, mesh: defaultMeshConfig(), kubernetesVersion: '1.28',
      registry, logger: silentLogger(), clock: systemClock(), certPollMs: 100,
    });
    port = await server.listen(0, '127.0.0.1');
  });

  after(async () => {
    await server?.close();
    for (const s of versions.values()) await s.server.close();
    pki?.cleanup();
  });

  describe('golden table through POST /inject', () => {
    for (const c of CASES) {
      it(`${c.name} (Kubernetes ${c.k8sVersion}): ${c.skip ? 'allowed without a patch' : 'patch applies and matches the golden'}`, async () => {
        const p = await serverFor(c.k8sVersion);
        const pod = loadCase(c.name);
        const r = await post(admissionReview(pod, c.namespace), p);
        expect(r.allowed).to.equal(true);
        if (c.skip) {
          expect(r.patch).to.equal(undefined);
          expect(r.patchType).to.equal(undefined);
          checkGolden(c.name, pod);
          return;
        }
        expect(r.patchType).to.equal('JSONPatch');
        const injected = applyTo(pod, decode(r));
        checkGolden(c.name, injected);
        validatePod(injected);
        // Reinvocation (reinvocationPolicy: IfNeeded) sends the injected pod again: no patch.
        const again = await post(admissionReview(injected, c.namespace), p);
        expect(again).to.include({ allowed: true });
        expect(again.patch).to.equal(undefined);
      });
    }
  });

  describe('protocol', () => {
    it('answers 415 for a non-JSON content type', async () => {
      const res = await call('/inject', '{}', { contentType: 'application/yaml' });
      expect(res.status).to.equal(415);
    });

    it('answers 400 for JSON that is not an AdmissionReview, and for broken JSON', async () => {
      expect((await call('/inject', JSON.stringify({ kind: 'Pod', apiVersion: 'v1' }))).status).to.equal(400);
      expect((await call('/inject', JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'x' } }))).status).to.equal(400);
      expect((await call('/inject', JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: {} }))).status).to.equal(400);
      expect((await call('/inject', '{"kind":')).status).to.equal(400);
    });

    it('answers allowed: false with a status message when injection fails', async () => {
      const r = await post(admissionReview({ metadata: { name: 'broken' }, spec: { containers: 'not-a-list' } }, 'shop'));
      expect(r.allowed).to.equal(false);
      expect(r.status!.message).to.match(/outrigger injection failed: pod has no spec.containers/);
    });

    it('allows without a patch what is not a pod CREATE', async () => {
      const r = await post(admissionReview(loadCase('generate-name'), 'echo', { operation: 'UPDATE' }));
      expect(r).to.deep.equal({ uid: r.uid, allowed: true });
    });

    it('returns annotation problems as admission warnings', async () => {
      const pod = loadCase('generate-name');
      pod.metadata!.annotations = { 'outrigger.io/exclude-outbound-ports': 'http' };
      const r = await post(admissionReview(pod, 'echo'));
      expect(r.allowed).to.equal(true);
      expect(r.warnings).to.deep.equal(['outrigger.io/exclude-outbound-ports: ignored "http" (not a port)']);
    });

    it('serves /healthz and counts requests, skips and errors in /metrics', async () => {
      expect((await call('/healthz', '', { method: 'GET' })).status).to.equal(200);
      expect((await call('/nope', '', { method: 'GET' })).status).to.equal(404);
      expect((await call('/inject', '', { method: 'GET' })).status).to.equal(405);
      const text = (await call('/metrics', '', { method: 'GET' })).body;
      const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      expect(value('outrigger_injector_requests_total{result="unsupported_media_type"}')).to.be.at.least(1);
      expect(value('outrigger_injector_requests_total{result="bad_request"}')).to.be.at.least(4);
      expect(value('outrigger_injector_requests_total{result="error"}')).to.be.at.least(1);
      expect(value('outrigger_injector_errors_total')).to.be.at.least(1);
      expect(value('outrigger_injector_skips_total{reason="not_a_pod_create"}')).to.be.at.least(1);
      expect(text).to.match(/^outrigger_injector_request_duration_seconds_count\{result="injected"\} \d+$/m);
    });

    it('/metrics: each call moves exactly its counters (injections, skips by reason, errors, latency by result)', async () => {
      // A server of its own, so the counts are exact; the path carries the API server's ?timeout=.
      const reg = new Registry();
      const srv = await WebhookServer.create({ certFile, keyFile, mesh: defaultMeshConfig(), kubernetesVersion: '1.28', registry: reg, logger: silentLogger(), clock: systemClock() });
      const p = await srv.listen(0, '127.0.0.1');
      try {
        const metric = async (line: string): Promise<number> => {
          const text = (await call('/metrics', '', { method: 'GET', port: p })).body;
          return Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
        };
        const send = async (review: Record<string, unknown>): Promise<ReviewResponse> => {
          const res = await call('/inject?timeout=10s', JSON.stringify(review), { port: p });
          expect(res.status).to.equal(200);
          return (JSON.parse(res.body) as { response: ReviewResponse }).response;
        };
        const names = [
          'outrigger_injector_requests_total{result="injected"}',
          'outrigger_injector_requests_total{result="skipped"}',
          'outrigger_injector_requests_total{result="error"}',
          'outrigger_injector_requests_total{result="bad_request"}',
          'outrigger_injector_requests_total{result="unsupported_media_type"}',
          'outrigger_injector_skips_total{reason="host_network"}',
          'outrigger_injector_skips_total{reason="opted_out"}',
          'outrigger_injector_skips_total{reason="already_injected"}',
          'outrigger_injector_skips_total{reason="ignored_namespace"}',
          'outrigger_injector_skips_total{reason="not_a_pod_create"}',
          'outrigger_injector_errors_total',
          'outrigger_injector_request_duration_seconds_count{result="injected"}',
          'outrigger_injector_request_duration_seconds_count{result="skipped"}',
          'outrigger_injector_request_duration_seconds_count{result="error"}',
        ] as const;
        const snapshot = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all(names.map(async (n) => [n, await metric(n)])));
        const deltaOf = async (action: () => Promise<unknown>): Promise<Record<string, number>> => {
          const before = await snapshot();
          await action();
          const after = await snapshot();
          return Object.fromEntries(names.filter((n) => after[n] !== before[n]).map((n) => [n, after[n]! - before[n]!]));
        };
        expect(await deltaOf(async () => expect((await send(admissionReview(loadCase('deployment-pod'), 'shop'))).patchType).to.equal('JSONPatch'))).to.deep.equal({
          'outrigger_injector_requests_total{result="injected"}': 1,
          'outrigger_injector_request_duration_seconds_count{result="injected"}': 1,
        });
        for (const [name, reason, ns] of [['host-network', 'host_network', 'monitoring'], ['opted-out', 'opted_out', 'shop'], ['already-injected', 'already_injected', 'shop'], ['generate-name', 'ignored_namespace', 'kube-system']] as const) {
          expect(await deltaOf(async () => expect((await send(admissionReview(loadCase(name), ns))).patch).to.equal(undefined)), name).to.deep.equal({
            'outrigger_injector_requests_total{result="skipped"}': 1,
            [`outrigger_injector_skips_total{reason="${reason}"}`]: 1,
            'outrigger_injector_request_duration_seconds_count{result="skipped"}': 1,
          });
        }
        expect(await deltaOf(() => send(admissionReview(loadCase('generate-name'), 'echo', { operation: 'UPDATE' })))).to.deep.equal({
          'outrigger_injector_requests_total{result="skipped"}': 1,
          'outrigger_injector_skips_total{reason="not_a_pod_create"}': 1,
          'outrigger_injector_request_duration_seconds_count{result="skipped"}': 1,
        });
        expect(await deltaOf(async () => expect((await send(admissionReview({ metadata: { name: 'x' }, spec: { containers: [] } }, 'shop'))).allowed).to.equal(false))).to.deep.equal({
          'outrigger_injector_requests_total{result="error"}': 1,
          'outrigger_injector_errors_total': 1,
          'outrigger_injector_request_duration_seconds_count{result="error"}': 1,
        });
        expect(await deltaOf(async () => expect((await call('/inject', '{"kind":"Pod"}', { port: p })).status).to.equal(400))).to.deep.equal({
          'outrigger_injector_requests_total{result="bad_request"}': 1,
        });
        expect(await deltaOf(async () => expect((await call('/inject', '{}', { port: p, contentType: 'text/plain' })).status).to.equal(415))).to.deep.equal({
          'outrigger_injector_requests_total{result="unsupported_media_type"}': 1,
        });
      } finally {
        await srv.close();
      }
    });

    it('is rejected by a client that verifies another server name', async () => {
      let err: Error | undefined;
      try {
        await call('/healthz', '', { method: 'GET', servername: 'other.outrigger-system.svc' });
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).to.match(/altnames|Hostname/i);
    });
  });

  describe('certificate reload', () => {
    it('follows a Kubernetes Secret volume update (atomic ..data symlink swap) by watching, without polling', async () => {
      const vol = join(pki.dir, 'secret-volume');
      const first = pki.issue(SERVICE, 'vol-v1');
      mkdirSync(join(vol, '..v1'), { recursive: true });
      copyFileSync(first.certFile, join(vol, '..v1', 'tls.crt'));
      copyFileSync(first.keyFile, join(vol, '..v1', 'tls.key'));
      symlinkSync('..v1', join(vol, '..data'));
      symlinkSync('..data/tls.crt', join(vol, 'tls.crt'));
      symlinkSync('..data/tls.key', join(vol, 'tls.key'));
      const reg = new Registry();
      const watched = await WebhookServer.create({
        certFile: join(vol, 'tls.crt'), keyFile: join(vol, 'tls.key'), mesh: defaultMeshConfig(),
        registry: reg, logger: silentLogger(), clock: systemClock(), certPollMs: 3_600_000,
      });
      const p = await watched.listen(0, '127.0.0.1');
      const pki2 = makeTestPki();
      try {
        expect((await call('/healthz', '', { method: 'GET', port: p })).status).to.equal(200);
        // What the kubelet does: write a new timestamped dir, then rename a new ..data link over the old one.
        const next = pki2.issue(SERVICE, 'vol-v2');
        mkdirSync(join(vol, '..v2'));
        copyFileSync(next.certFile, join(vol, '..v2', 'tls.crt'));
        copyFileSync(next.keyFile, join(vol, '..v2', 'tls.key'));
        symlinkSync('..v2', join(vol, '..data_tmp'));
        renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
        // The reload follows a file-system event: poll the real TLS handshake until the new CA verifies it.
        await waitFor(async () => (await call('/healthz', '', { method: 'GET', port: p, ca: pki2.caCert }).catch(() => undefined))?.status === 200, 'the new certificate');
        expect(await reg.metrics()).to.match(/outrigger_injector_cert_reloads_total\{result="applied"\} 1/);
      } finally {
        await watched.close();
        pki2.cleanup();
      }
    });


    it('reloads its certificate when the files change, and keeps the old one on a bad pair', async () => {
      const pki2 = makeTestPki();
      try {
        const next = pki2.issue(SERVICE, 'serving2');
        // A half-written pair (new cert, old key) must not break serving.
        copyFileSync(next.certFile, certFile);
        await server.reloadCerts();
        expect((await call('/healthz', '', { method: 'GET' })).status).to.equal(200);
        copyFileSync(next.keyFile, keyFile);
        // The reload follows a file-system event: poll the real TLS handshake until the new CA verifies it.
        await waitFor(async () => (await call('/healthz', '', { method: 'GET', ca: pki2.caCert }).catch(() => undefined))?.status === 200, 'the new certificate');
        // The old CA no longer verifies the new certificate.
        let err: Error | undefined;
        try {
          await call('/healthz', '', { method: 'GET' });
        } catch (e) {
          err = e as Error;
        }
        expect(err, 'old CA rejected').to.not.equal(undefined);
        const text = await registry.metrics();
        expect(text).to.match(/outrigger_injector_cert_reloads_total\{result="applied"\} [1-9]/);
        expect(text).to.match(/outrigger_injector_cert_reloads_total\{result="failed"\} [1-9]/);
      } finally {
        pki2.cleanup();
      }
    });
  });
});
