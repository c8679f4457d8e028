import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { startH1Echo, startH2Echo, type Started } from '../../support/backends.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';
import { samplesOf } from '../../support/prom-text.js';
import { codeOf } from '../../support/control-harness.js';
import { waitFor } from '../../support/wait.js';
import { IdentityService } from '../../../src/gen/outrigger/control/v1/identity_pb.js';
import { CertificateAuthority, generateRoot, type CaMaterial } from '../../../src/control/server/ca/certificate-authority.js';
import { csrAskingFor, newKeyAndCsr } from '../../../src/control/client/csr.js';
import { systemClock } from '../../../src/core/clock.js';
import { Code } from '@connectrpc/connect';

const ECHO = 'outrigger.examples.transcoding.v1.EchoService';
const API_ID = 'spiffe://cluster.local/ns/shop/sa/api';
const WEB_ID = 'spiffe://cluster.local/ns/shop/sa/web';

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A TLS client with a given certificate (or none) sends GET /; 'ok' when an HTTP answer comes back, else 'refused'. */
function tlsProbe(port: number, opts: tls.ConnectionOptions): Promise<'ok' | 'refused'> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined, ...opts }, () => {
      s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    });
    let data = '';
    s.on('data', (c: Buffer) => (data += c.toString()));
    s.on('error', () => {});
    s.on('close', () => resolve(data.startsWith('HTTP/1.1 ') ? 'ok' : 'refused'));
  });
}

function counter(text: string, name: string, labels: Record<string, string>): number {
  return samplesOf(text, name)
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

/** A leaf for `id` from `ca` with a fresh key: what a (rogue or stale) client would present. */
async function leafFrom(ca: CertificateAuthority, id: string, ttlMs = 3600_000): Promise<{ cert: string; key: string }> {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const out = await ca.issue(csrPem, id, ttlMs);
  return { cert: out.chain.join(''), key: keyPem };
}

describe('identity: mesh mTLS between two sidecars with certificates from the control plane', function () {
  this.timeout(30_000);
  let cp: MeshControlPlane;
  let h1: Started<http.Server>;
  let h2: Started<http2.Http2Server>;
  let echo: EchoBackend;
  let api: TestSidecar;
  let web: TestSidecar;
  let bundle: string[];

  before(async () => {
    cp = await startMeshControlPlane({ 'tok-web': 'shop/web', 'tok-api': 'shop/api', 'tok-evil': 'other/evil' });
    h1 = await startH1Echo('app');
    h2 = await startH2Echo('app-h2');
    echo = await startEchoBackend();
    const appRoutes = routes('main', [prefixRoute(`/${ECHO}/`, 'grpc'), prefixRoute('/h2/', 'app-h2'), prefixRoute('/', 'app')]);
    api = await startMeshSidecar(cp, 'api-0.shop', 'tok-api', [
      listener('strict', { peerAuthentication: 'PEER_AUTHENTICATION_STRICT' }),
      listener('permissive', { peerAuthentication: 'PEER_AUTHENTICATION_PERMISSIVE' }),
      appRoutes,
      cluster('app', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('app-h2', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('grpc', [echo.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    const strict = api.port('strict');
    const permissive = api.port('permissive');
    const mesh = (sans: string[]) => ({ tls: { mode: 'TLS_MODE_MESH', subjectAltNames: sans } });
    web = await startMeshSidecar(cp, 'web-0.shop', 'tok-web', [
      listener('main'),
      routes('main', [
        prefixRoute('/wrong/', 'api-wrong'),
        prefixRoute('/plain/', 'api-plain'),
        prefixRoute('/permissive/', 'api-permissive'),
        prefixRoute('/', 'api'),
      ]),
      cluster('api', [strict], 'UPSTREAM_PROTOCOL_UNSPECIFIED', mesh([API_ID])),
      cluster('api-wrong', [strict], 'UPSTREAM_PROTOCOL_UNSPECIFIED', mesh(['spiffe://cluster.local/ns/shop/sa/other'])),
      cluster('api-plain', [strict]),
      cluster('api-permissive', [permissive], 'UPSTREAM_PROTOCOL_UNSPECIFIED', mesh(['spiffe://cluster.local/ns/shop/*'])),
    ]);
    expect(api.sidecar.identity!.current()!.spiffeId).to.equal(API_ID);
    expect(web.sidecar.identity!.current()!.spiffeId).to.equal(WEB_ID);
    bundle = [...api.sidecar.identity!.current()!.bundlePem];
  });

  after(async () => {
    await web?.close();
    await api?.close();
    await h1?.close();
    await h2?.close();
    await echo?.close();
    await cp?.stop();
  });

  it('issues each sidecar an SVID with one URI SAN for its own identity, and audits it', async () => {
    const issued = cp.logs.filter((l) => l.audit === true && l.op === 'issue' && l.result === 'issued');
    expect(issued.map((l) => l.spiffeId)).to.include.members([API_ID, WEB_ID]);
    expect(JSON.stringify(issued)).not.to.include('tok-');
    const svid = api.sidecar.identity!.current()!;
    const leaf = new (await import('node:crypto')).X509Certificate(svid.certChainPem);
    expect(leaf.subjectAltName).to.equal(`URI:${API_ID}`);
    expect(leaf.ca).to.equal(false);
    expect(Date.parse(leaf.validTo) - Date.now()).to.be.greaterThan(23 * 3600_000);
  });

  it('HTTP/1.1 through client sidecar → server sidecar in STRICT mode', async () => {
    const before = counter(await api.metrics(), 'outrigger_downstream_connections_total', { listener: 'strict', protocol: 'mtls_http1' });
    const r = await get(web.port('main'), '/hello');
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body).backend).to.equal('app');
    expect(counter(await api.metrics(), 'outrigger_downstream_connections_total', { listener: 'strict', protocol: 'mtls_http1' })).to.be.greaterThan(before);
  });

  it('HTTP/2 (REST over h2) and gRPC through client sidecar → server sidecar in STRICT mode', async () => {
    const session = http2.connect(`http://127.0.0.1:${web.port('main')}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/h2/x' });
        let b = '';
        req.on('data', (c: Buffer) => (b += c.toString()));
        req.on('end', () => resolve(b));
        req.on('error', reject);
        req.end();
      });
      expect(JSON.parse(body).backend).to.equal('app-h2');
    } finally {
      session.close();
    }
    const client = new grpc.Client(`127.0.0.1:${web.port('main')}`, grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(`/${ECHO}/Get`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x12, 0x03, 0x61, 0x62, 0x63]), (err, res) => (err ? reject(err) : resolve(res!))),
      );
      expect(reply.toString()).to.include('abc');
    } finally {
      client.close();
    }
    expect(counter(await api.metrics(), 'outrigger_downstream_connections_total', { listener: 'strict', protocol: 'mtls_h2' })).to.be.greaterThan(0);
  });

  it('STRICT refuses plaintext (counted); PERMISSIVE accepts plaintext and mTLS on one port', async () => {
    const refusedBefore = counter(await api.metrics(), 'outrigger_downstream_connections_rejected_total', { listener: 'strict', reason: 'plaintext_in_strict' });
    const err = await get(api.port('strict'), '/').then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err, 'a plaintext request to a STRICT listener').to.be.instanceOf(Error);
    expect((await get(web.port('main'), '/plain/x')).status).to.be.oneOf([502, 503]);
    expect(counter(await api.metrics(), 'outrigger_downstream_connections_rejected_total', { listener: 'strict', reason: 'plaintext_in_strict' })).to.be.at.least(refusedBefore + 2);

    expect((await get(api.port('permissive'), '/direct')).status).to.equal(200);
    const viaMesh = await get(web.port('main'), '/permissive/x');
    expect(viaMesh.status).to.equal(200);
    expect(counter(await api.metrics(), 'outrigger_downstream_connections_total', { listener: 'permissive', protocol: 'mtls_http1' })).to.be.greaterThan(0);
  });

  it('the caller refuses a server presenting another SPIFFE ID than expected', async () => {
    const r = await get(web.port('main'), '/wrong/x');
    expect(r.status).to.be.oneOf([502, 503]);
    await waitFor(() => web.logs.some((l) => JSON.stringify(l).includes('upstream peer identity refused')), 'the refusal logged');
    expect(web.access.find((a) => a.path === '/wrong/x')?.flags).to.equal('UF');
  });

  it('refuses TLS clients without a certificate, with another CA, expired, not yet valid, or of another trust domain', async () => {
    const port = api.port('strict');
    const stored = JSON.parse(await readFile(join(cp.dir, 'ca.json'), 'utf8')) as CaMaterial;
    const clock = systemClock();
    const good = await leafFrom(await CertificateAuthority.load(stored, 'cluster.local', clock), WEB_ID);
    expect(await tlsProbe(port, { ca: bundle, cert: good.cert, key: good.key }), 'control: a valid SVID').to.equal('ok');

    expect(await tlsProbe(port, { ca: bundle }), 'no client certificate').to.equal('refused');
    const otherRoot = await CertificateAuthority.load(await generateRoot('cluster.local', clock), 'cluster.local', clock);
    const foreign = await leafFrom(otherRoot, WEB_ID);
    expect(await tlsProbe(port, { ca: bundle, cert: foreign.cert, key: foreign.key }), 'signed by another CA').to.equal('refused');
    const past = { nowMs: () => Date.now() - 2 * 24 * 3600_000, monotonicMs: () => 0, setTimer: clock.setTimer };
    const expired = await leafFrom(await CertificateAuthority.load(stored, 'cluster.local', past), WEB_ID, 3600_000);
    expect(await tlsProbe(port, { ca: bundle, cert: expired.cert, key: expired.key }), 'expired').to.equal('refused');
    const future = { nowMs: () => Date.now() + 2 * 24 * 3600_000, monotonicMs: () => 0, setTimer: clock.setTimer };
    const early = await leafFrom(await CertificateAuthority.load(stored, 'cluster.local', future), WEB_ID, 3600_000);
    expect(await tlsProbe(port, { ca: bundle, cert: early.cert, key: early.key }), 'not yet valid').to.equal('refused');
    const otherTd = await leafFrom(await CertificateAuthority.load(stored, 'evil.local', clock), 'spiffe://evil.local/ns/shop/sa/web');
    const before = counter(await api.metrics(), 'outrigger_downstream_connections_rejected_total', { listener: 'strict', reason: 'mtls_peer_identity' });
    expect(await tlsProbe(port, { ca: bundle, cert: otherTd.cert, key: otherTd.key }), 'another trust domain').to.equal('refused');
    expect(counter(await api.metrics(), 'outrigger_downstream_connections_rejected_total', { listener: 'strict', reason: 'mtls_peer_identity' })).to.equal(before + 1);
    // The server sidecar is still serving.
    expect((await get(web.port('main'), '/after')).status).to.equal(200);
  });

  it('issuance refuses unknown tokens, CSRs for another identity and node ids of another namespace (audited)', async () => {
    const client = createClient(IdentityService, createGrpcTransport({ baseUrl: `http://${cp.address}` }));
    const call = (token: string | undefined, csr: string, nodeId = '') =>
      client.createCertificate({ csr, nodeId }, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const { csrPem } = await newKeyAndCsr();
    expect(await codeOf(call(undefined, csrPem))).to.equal(Code.Unauthenticated);
    expect(await codeOf(call('tok-nobody', csrPem))).to.equal(Code.Unauthenticated);
    expect(await codeOf(call('tok-evil', (await csrAskingFor(API_ID)).csrPem))).to.equal(Code.PermissionDenied);
    expect(await codeOf(call('tok-evil', csrPem, 'api-0.shop'))).to.equal(Code.PermissionDenied);
    expect(await codeOf(call('tok-evil', 'not a csr'))).to.equal(Code.InvalidArgument);
    const ok = await call('tok-evil', csrPem, 'evil-0.other');
    expect(ok.spiffeId).to.equal('spiffe://cluster.local/ns/other/sa/evil');
    const refused = cp.logs.filter((l) => l.audit === true && l.op === 'issue' && l.result !== 'issued');
    expect(refused.map((l) => l.result)).to.include.members(['unauthenticated', 'denied', 'invalid']);
    expect(refused.some((l) => String(l.reason).includes(API_ID))).to.equal(true);
  });
});
