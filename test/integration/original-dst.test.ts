import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { startH1Echo, startH2Echo, startTcpEcho, type Started } from '../support/backends.js';
import { listener, type Doc } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * A DISCOVERY_TYPE_ORIGINAL_DST cluster on loopback, without iptables: these
 * connections are not redirected, so HTTP and gRPC go where Host / :authority
 * says and opaque TCP has nowhere to go. Redirected connections (the
 * SO_ORIGINAL_DST path) are tested for real in injector-netns.test.ts.
 */
const passthroughDocs = (): Doc[] => [
  listener('main', { routeConfig: 'outbound', defaultCluster: 'passthrough', detectTimeout: '0.05s' }),
  {
    apiVersion: 'outrigger.io/v1',
    kind: 'RouteConfiguration',
    metadata: { name: 'outbound' },
    spec: { virtualHosts: [{ name: 'allow-any', domains: ['*'], routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: 'passthrough' } }] }] },
  },
  { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'passthrough' }, spec: { type: 'DISCOVERY_TYPE_ORIGINAL_DST', idleTimeout: '30s' } },
];

function h1Get(port: number, host: string | undefined, path = '/'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, setHost: false, headers: host === undefined ? {} : { host } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Connects, optionally writes, and collects everything until the sidecar closes the connection. */
function tcpExchange(port: number, send?: Buffer): Promise<{ received: Buffer; closedMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => send && s.write(send));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => resolve({ received: Buffer.concat(chunks), closedMs: Date.now() - t0 }));
    setTimeout(() => {
      s.destroy();
      reject(new Error('connection not closed by the sidecar'));
    }, 3000).unref();
  });
}

describe('ORIGINAL_DST cluster (pass-through by Host / :authority; no iptables)', () => {
  let h1: Started<unknown>;
  let h2: Started<unknown>;
  let tcp: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    h1 = await startH1Echo('h1-anywhere');
    h2 = await startH2Echo('h2-anywhere');
    tcp = await startTcpEcho();
    sc = await startTestSidecar(passthroughDocs());
  });
  after(async () => {
    await sc.close();
    await h1.close();
    await h2.close();
    await tcp.close();
  });

  it('HTTP/1.1 goes to the host:port of its Host header, with the Host kept', async () => {
    const r = await h1Get(sc.port(), `127.0.0.1:${h1.port}`, '/anything?x=1');
    expect(r.status).to.equal(200);
    const echo = JSON.parse(r.body) as { backend: string; url: string; headers: Record<string, string> };
    expect(echo).to.deep.include({ backend: 'h1-anywhere', url: '/anything?x=1' });
    expect(echo.headers.host).to.equal(`127.0.0.1:${h1.port}`);
    await waitFor(() => sc.access.some((l) => l.path === '/anything?x=1'), 'the access-log line');
    expect(sc.access.find((l) => l.path === '/anything?x=1')).to.deep.include({
      cluster: 'passthrough',
      upstream: `127.0.0.1:${h1.port}`,
      status: 200,
    });
  });

  it('HTTP/2 (prior knowledge) goes to its :authority; the pool of that destination is listed by /clusters', async () => {
    const c = http2.connect(`http://127.0.0.1:${sc.port()}`);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = c.request({ ':path': '/h2-path', ':authority': `localhost:${h2.port}` });
        let body = '';
        let status = 0;
        r.on('response', (h) => (status = Number(h[':status'])));
        r.on('data', (d: Buffer) => (body += d.toString()));
        r.on('end', () => resolve({ status, body }));
        r.on('error', reject);
      });
      expect(status).to.equal(200);
      expect(JSON.parse(body)).to.deep.include({ backend: 'h2-anywhere', url: '/h2-path' });
    } finally {
      c.close();
    }
    const clusters = (await (await request(`http://127.0.0.1:${sc.sidecar.adminPort}/clusters`)).body.json()) as {
      clusters: Record<string, { type?: string; destinations?: string[]; endpoints: unknown[] }>;
    };
    expect(clusters.clusters.passthrough!.type).to.equal('original_dst');
    expect(clusters.clusters.passthrough!.endpoints).to.deep.equal([]);
    expect(clusters.clusters.passthrough!.destinations).to.include.members([`127.0.0.1:${h1.port}`, `localhost:${h2.port}`]);
  });

  it('refuses a destination that is the sidecar itself (508, flag LP) instead of looping', async () => {
    for (const host of [`127.0.0.1:${sc.port()}`, `localhost:${sc.port()}`]) {
      const r = await h1Get(sc.port(), host, '/loop');
      expect(r.status, host).to.equal(508);
      expect(r.headers['x-outrigger-local-reply']).to.equal('LP');
      expect(r.body).to.equal(`routing loop: the destination is this sidecar: ${host} is a listener of this sidecar\n`);
    }
  });

  it('HTTP without a Host on a connection that was not redirected: 503, flag OD', async () => {
    const raw = await tcpExchange(sc.port(), Buffer.from('GET /no-host HTTP/1.0\r\n\r\n'));
    const text = raw.received.toString();
    expect(text).to.match(/^HTTP\/1\.[01] 503 /);
    expect(text).to.contain('x-outrigger-local-reply: OD');
    expect(text).to.contain('no original destination: the connection was not redirected and has no usable Host / :authority');
  });

  it('opaque TCP that was not redirected has no destination: closed at once, one access-log line with flag OD', async () => {
    const before = sc.access.length;
    const binary = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x0a]);
    const r = await tcpExchange(sc.port(), binary);
    expect(r.received.length, 'nothing reached anyone').to.equal(0);
    await waitFor(() => sc.access.length > before, 'the access-log line');
    const line = sc.access.slice(before).find((l) => l.protocol === 'tcp')!;
    expect(line).to.deep.include({ listener: 'main', cluster: 'passthrough', flags: 'OD', bytes_in: binary.length, bytes_out: 0 });
    expect(line.detail).to.equal('no original destination: the connection was not redirected (SO_ORIGINAL_DST)');
    expect(line.upstream).to.equal(undefined);
  });
});

describe('ORIGINAL_DST cluster with originalDst.useHostHeader: false (the inbound catch-all; no iptables)', () => {
  let h1: Started<unknown>;
  let h2: Started<unknown>;
  let sc: TestSidecar;
  let reached = 0;

  before(async () => {
    h1 = await startH1Echo('must-not-be-reached');
    (h1.server as http.Server).on('request', () => reached++);
    h2 = await startH2Echo('h2-must-not-be-reached');
    // What `outrigger redirect --inbound-config` writes for 15006 (injector/inbound-config.ts), on an ephemeral port.
    sc = await startTestSidecar([
      listener('inbound', { routeConfig: 'inbound', defaultCluster: 'inbound-passthrough', detectTimeout: '0.05s' }),
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'RouteConfiguration',
        metadata: { name: 'inbound' },
        spec: { virtualHosts: [{ name: 'any-port', domains: ['*'], routes: [{ name: 'to-original-destination', match: { prefix: '/' }, route: { cluster: 'inbound-passthrough' } }] }] },
      },
      { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'inbound-passthrough' }, spec: { type: 'DISCOVERY_TYPE_ORIGINAL_DST', originalDst: { useHostHeader: false } } },
    ]);
  });
  after(async () => {
    await sc.close();
    await h1.close();
    await h2.close();
  });

  it('HTTP/1.1 and HTTP/2 on a connection that was not redirected are refused (503, OD) even with a Host that names a live server', async () => {
    const r = await h1Get(sc.port('inbound'), `127.0.0.1:${h1.port}`, '/inbound-not-redirected');
    expect(r.status).to.equal(503);
    expect(r.headers['x-outrigger-local-reply']).to.equal('OD');
    expect(r.body).to.equal(
      'no original destination: the connection was not redirected (SO_ORIGINAL_DST); cluster inbound-passthrough does not route by Host / :authority (originalDst.useHostHeader: false)\n',
    );

    const c = http2.connect(`http://127.0.0.1:${sc.port('inbound')}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = c.request({ ':path': '/h2-inbound', ':authority': `127.0.0.1:${h2.port}` });
        let st = 0;
        req.on('response', (h) => (st = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(st));
        req.on('error', reject);
      });
      expect(status).to.equal(503);
    } finally {
      c.close();
    }
    expect(reached, 'the Host was never dialled').to.equal(0);
    await waitFor(() => sc.access.some((l) => l.path === '/h2-inbound'), 'the access-log line');
    expect(sc.access.find((l) => l.path === '/inbound-not-redirected')).to.deep.include({ listener: 'inbound', cluster: 'inbound-passthrough', flags: 'OD', status: 503 });
  });

  it('the sidecar\'s own address as Host is refused as OD too (no loop, no dial); /clusters shows useHostHeader: false', async () => {
    const r = await h1Get(sc.port('inbound'), `127.0.0.1:${sc.port('inbound')}`, '/self');
    expect(r.status).to.equal(503);
    expect(r.headers['x-outrigger-local-reply']).to.equal('OD');
    const clusters = (await (await request(`http://127.0.0.1:${sc.sidecar.adminPort}/clusters`)).body.json()) as {
      clusters: Record<string, { type?: string; useHostHeader?: boolean; destinations?: string[] }>;
    };
    expect(clusters.clusters['inbound-passthrough']).to.deep.include({ type: 'original_dst', useHostHeader: false, destinations: [] });
  });
});

describe('ORIGINAL_DST cluster without the SO_ORIGINAL_DST addon (degraded)', () => {
  let h1: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    h1 = await startH1Echo('h1-degraded');
    sc = await startTestSidecar(passthroughDocs(), {
      originalDstAddon: { addon: undefined, path: '/nonexistent/original_dst.node', reason: '/nonexistent/original_dst.node not found' },
    });
  });
  after(async () => {
    await sc.close();
    await h1.close();
  });

  it('logs one warning; HTTP still passes through by Host; opaque TCP is refused and says why', async () => {
    const warnings = sc.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('SO_ORIGINAL_DST addon not available'));
    expect(warnings).to.have.length(1);
    expect(warnings[0]!.reason).to.equal('/nonexistent/original_dst.node not found');

    const r = await h1Get(sc.port(), `127.0.0.1:${h1.port}`, '/degraded');
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body)).to.deep.include({ backend: 'h1-degraded', url: '/degraded' });

    const before = sc.access.length;
    const closed = await tcpExchange(sc.port(), Buffer.from('\x16not-http\r\n'));
    expect(closed.received.length).to.equal(0);
    await waitFor(() => sc.access.length > before, 'the access-log line');
    expect(sc.access.slice(before).find((l) => l.protocol === 'tcp')).to.deep.include({
      flags: 'OD',
      detail: 'no original destination: the SO_ORIGINAL_DST addon is not available (/nonexistent/original_dst.node not found)',
    });
    // Still one warning: it is per process, the access log is per connection.
    expect(sc.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('SO_ORIGINAL_DST addon not available'))).to.have.length(1);
  });
});

describe('a listener without tls and TLS from the client', () => {
  let tcp: Started<unknown>;
  let sc: TestSidecar;
  before(async () => {
    tcp = await startTcpEcho(false);
    sc = await startTestSidecar([
      listener('main', { routeConfig: '', defaultCluster: 'app' }),
      listener('no-default', { routeConfig: 'empty' }),
      { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'empty' }, spec: {} },
      { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'app' }, spec: { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: tcp.port } }] } },
    ]);
  });
  after(async () => {
    await sc.close();
    await tcp.close();
  });

  it('passes a ClientHello through to the defaultCluster as opaque TCP (the app terminates its own TLS)', async () => {
    // A TLS 1.2 handshake record header followed by junk: the echo server returns it byte for byte.
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), Buffer.from('hello')]);
    const got = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(sc.port(), '127.0.0.1', () => s.write(hello));
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        if (Buffer.concat(chunks).length >= hello.length) {
          s.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      s.on('error', reject);
    });
    expect(got.equals(hello)).to.equal(true);
  });

  it('closes opaque TCP on a listener with no defaultCluster, with an access-log line (flag NC)', async () => {
    const before = sc.access.length;
    const r = await tcpExchange(sc.port('no-default'), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    expect(r.received.length).to.equal(0);
    await waitFor(() => sc.access.length > before, 'the access-log line');
    expect(sc.access.slice(before).find((l) => l.listener === 'no-default')).to.deep.include({
      protocol: 'tcp',
      flags: 'NC',
      detail: 'cluster not found: the listener has no defaultCluster for TCP',
    });
  });
});
