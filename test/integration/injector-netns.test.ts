import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { inject } from '../../injector/inject.js';
import { defaultMeshConfig } from '../../injector/mesh-config.js';
import type { Container, Pod } from '../../injector/pod-types.js';

/**
 * An injected pod for real: two network namespaces joined by a veth pair.
 * "pod" runs outrigger-init (`outrigger redirect` with the exact args inject()
 * produced), an app, and outrigger-proxy with the injected args and env as
 * UID 1337, then its postStart hook (`wait-ready`); "peer" runs the control
 * plane the proxy is pointed at, a client and an upstream service. Needs
 * root, `ip netns` and iptables (CI installs them); skips with the reason
 * otherwise.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUTRIGGER = join(ROOT, 'bin/outrigger.js');
const POD_IP = '10.203.0.1';
const PEER_IP = '10.203.0.2';
const POD_IP6 = 'fd00:203::1';
const PEER_IP6 = 'fd00:203::2';

// Plain ESM helper run inside the namespaces: HTTP servers that describe each
// request, and a one-shot HTTP client.
const HELPER = `
import http from 'node:http';
const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') {
  const [name, ...ports] = args;
  let n = 0;
  for (const port of ports) {
    http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: name, port: Number(port), remote: req.socket.remoteAddress, host: req.headers.host, requestId: req.headers['x-request-id'] ?? null }));
    }).listen(Number(port), '0.0.0.0', () => { if (++n === ports.length) console.log('listening'); });
  }
} else {
  const [url, host] = args;
  const req = http.get(url, { headers: host ? { host } : {}, timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { console.log(JSON.stringify({ status: res.statusCode, body })); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); });
}
`;

function missingPrerequisite(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces and iptables need root; CI runs as root)';
  for (const bin of ['ip', 'iptables-restore', 'ip6tables-restore', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not installed (apt-get install iptables iproute2)`;
  }
  const probe = `ortest-probe-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', probe]).status !== 0) return '`ip netns add` not permitted here';
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

describe('an injected pod in network namespaces: traffic capture, proxy, control plane', function () {
  this.timeout(40_000);
  const POD_NS = `ortest-pod-${process.pid}`;
  const PEER_NS = `ortest-peer-${process.pid}`;
  const children: ChildProcess[] = [];
  let dir: string;
  let sidecar: ChildProcess;
  let sidecarOut = '';
  let initArgs: string[];
  let proxyArgs: string[];
  let proxyEnv: Record<string, string>;
  let postStart: string[];
  let probePath: string;

  const inNs = (ns: string, cmd: string[], opts: { input?: string } = {}): string =>
    execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' }, ...opts });

  function startIn(ns: string, cmd: string[], readyText: string, env: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', ...env } });
    children.push(child);
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`${cmd.join(' ')} not ready: ${out}${err}`)), 15_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(readyText)) {
          clearTimeout(timer);
          resolve(child);
        }
      });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => reject(new Error(`${cmd.join(' ')} exited ${code}: ${out}${err}`)));
    });
  }

  function get(ns: string, url: string, host?: string): { status?: number; body?: Record<string, unknown>; error?: string } {
    const out = inNs(ns, [process.execPath, join(dir, 'helper.mjs'), 'get', url, ...(host ? [host] : [])]);
    const r = JSON.parse(out.trim()) as { status?: number; body?: string; error?: string };
    let body: Record<string, unknown> | undefined;
    try {
      body = r.body ? (JSON.parse(r.body) as Record<string, unknown>) : undefined;
    } catch {
      body = { text: r.body };
    }
    return { status: r.status, body, error: r.error };
  }

  before(async function () {
    const missing = missingPrerequisite();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'outrigger-netns-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'helper.mjs'), HELPER);

    // The pod as a user writes it; the init container's args come from inject().
    const pod: Pod = {
      metadata: {
        name: 'web',
        namespace: 'shop',
        annotations: { 'outrigger.io/exclude-inbound-ports': '8081', 'outrigger.io/exclude-outbound-ports': '9091' },
      },
      spec: {
        containers: [{
          name: 'web',
          image: 'web:1',
          ports: [{ containerPort: 8080 }, { containerPort: 8081 }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 } },
        }],
      },
    };
    // The control plane runs in the peer namespace (another node, as it were).
    const mesh = { ...defaultMeshConfig(), controlPlaneAddress: `${PEER_IP}:15010` };
    const injected = inject(pod, mesh, '1.28').pod;
    const init = injected.spec!.initContainers!.find((c: Container) => c.name === 'outrigger-init')!;
    const proxy = injected.spec!.containers.find((c: Container) => c.name === 'outrigger-proxy')!;
    expect(proxy.env!.find((e) => e.name === 'OUTRIGGER_INBOUND_PORTS')!.value).to.equal('8080=15100');
    // The pod's volumes become directories; the kubelet's $(VAR) expansion and
    // downward-API env are done here.
    for (const sub of ['state', 'podinfo']) {
      mkdirSync(join(dir, sub));
      chmodSync(join(dir, sub), 0o777);
    }
    writeFileSync(join(dir, 'podinfo', 'labels'), 'app="web"\n');
    const remap = (a: string): string =>
      a.replace('/var/lib/outrigger', join(dir, 'state')).replace('/etc/outrigger/podinfo', join(dir, 'podinfo'));
    const fieldValues: Record<string, string> = {
      'metadata.name': 'web', 'metadata.namespace': 'shop', 'status.podIP': POD_IP, 'spec.serviceAccountName': 'default', 'spec.nodeName': 'node-1',
    };
    proxyEnv = {};
    for (const e of proxy.env!) {
      proxyEnv[e.name] = e.value ?? fieldValues[(e.valueFrom as { fieldRef: { fieldPath: string } }).fieldRef.fieldPath]!;
    }
    initArgs = init.args!.map(remap);
    proxyArgs = proxy.args!.map((a) => remap(a.replace(/\$\((\w+)\)/g, (_m, v: string) => proxyEnv[v]!)));
    postStart = (proxy.lifecycle as { postStart: { exec: { command: string[] } } }).postStart.exec.command;
    expect(proxyArgs.slice(0, 5)).to.deep.equal(['sidecar', '--control-plane', `${PEER_IP}:15010`, '--node-id', 'web.shop']);
    probePath = (injected.spec!.containers[1]!.readinessProbe as { httpGet: { path: string } }).httpGet.path;

    const veth = `vo${process.pid % 100000}`;
    const sh = (...a: string[]): void => void execFileSync('ip', a, { stdio: 'pipe' });
    sh('netns', 'add', POD_NS);
    sh('netns', 'add', PEER_NS);
    sh('link', 'add', `${veth}a`, 'type', 'veth', 'peer', 'name', `${veth}b`);
    sh('link', 'set', `${veth}a`, 'netns', POD_NS);
    sh('link', 'set', `${veth}b`, 'netns', PEER_NS);
    sh('-n', POD_NS, 'addr', 'add', `${POD_IP}/24`, 'dev', `${veth}a`);
    sh('-n', PEER_NS, 'addr', 'add', `${PEER_IP}/24`, 'dev', `${veth}b`);
    sh('-n', POD_NS, 'addr', 'add', `${POD_IP6}/64`, 'dev', `${veth}a`, 'nodad');
    sh('-n', PEER_NS, 'addr', 'add', `${PEER_IP6}/64`, 'dev', `${veth}b`, 'nodad');
    for (const [ns, dev] of [[POD_NS, `${veth}a`], [PEER_NS, `${veth}b`]] as const) {
      sh('-n', ns, 'link', 'set', dev, 'up');
      sh('-n', ns, 'link', 'set', 'lo', 'up');
    }

    // outrigger-init: the real subcommand, twice (an init container restart must not duplicate rules).
    inNs(POD_NS, [process.execPath, OUTRIGGER, ...initArgs]);
    const first = inNs(POD_NS, ['iptables-save', '-t', 'nat']).replace(/^[#:].*$/gm, '');
    inNs(POD_NS, [process.execPath, OUTRIGGER, ...initArgs]);
    expect(inNs(POD_NS, ['iptables-save', '-t', 'nat']).replace(/^[#:].*$/gm, '')).to.equal(first);

    // The outbound side: what an operator applies to the control plane for the mesh's services.
    writeFileSync(join(dir, 'outbound.yaml'), [
      doc('Listener', 'outbound', { address: { host: '0.0.0.0', port: 15001 }, routeConfig: 'outbound' }),
      doc('RouteConfiguration', 'outbound', { virtualHosts: [{ name: 'peer', domains: ['peer.mesh'], routes: [{ name: 'peer', match: { prefix: '/' }, route: { cluster: 'peer' } }] }] }),
      doc('Cluster', 'peer', { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP1', endpoints: [{ address: { host: PEER_IP, port: 9090 } }] }),
    ].join('---\n'));

    await startIn(PEER_NS, [process.execPath, OUTRIGGER, 'control', '--store', `file:${join(dir, 'store')}`, '--port', '15010',
      '--metrics-port', '15014', '--no-auth', '--debounce', '0.02s'], 'control plane ready');
    inNs(PEER_NS, [process.execPath, OUTRIGGER, 'apply', '-f', join(dir, 'outbound.yaml'), '--control-plane', `${PEER_IP}:15010`]);
    await startIn(POD_NS, [process.execPath, join(dir, 'helper.mjs'), 'serve', 'app', '8080', '8081'], 'listening');
    await startIn(PEER_NS, [process.execPath, join(dir, 'helper.mjs'), 'serve', 'peer', '9090', '9091'], 'listening');
    // outrigger-proxy: the injected container's args and env, as UID 1337.
    sidecar = await startIn(POD_NS, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, OUTRIGGER,
      ...proxyArgs], 'sidecar ready', proxyEnv);
    sidecar.stdout!.on('data', (d: Buffer) => (sidecarOut += d.toString()));
    // Its postStart hook: the kubelet starts the app container only after this returns.
    expect(postStart[0]).to.equal('outrigger');
    inNs(POD_NS, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, OUTRIGGER, ...postStart.slice(1)]);
  });

  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', POD_NS]);
    spawnSync('ip', ['netns', 'del', PEER_NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Ends the proxy the way a classic-mode Job does (POST /quitquitquit on the
   * admin port, from the app's network namespace) and returns its access log,
   * which the async logger flushes on shutdown.
   */
  async function quitAndReadAccessLog(): Promise<Record<string, unknown>[]> {
    const exited = new Promise<number | null>((r) => sidecar.once('exit', r));
    const quit = inNs(POD_NS, [process.execPath, '-e',
      "fetch('http://127.0.0.1:15000/quitquitquit',{method:'POST'}).then(r=>console.log(r.status))"]);
    expect(quit.trim()).to.equal('200');
    expect(await exited, 'the proxy exits 0 so the pod can complete').to.equal(0);
    return sidecarOut.split('\n').filter((l) => l.includes('"msg":"access"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('installs iptables and ip6tables rules in the pod namespace only', () => {
    expect(inNs(POD_NS, ['iptables', '-t', 'nat', '-S', 'OUTRIGGER_INBOUND'])).to.contain('--dport 8080 -j REDIRECT --to-ports 15100');
    expect(inNs(POD_NS, ['ip6tables', '-t', 'nat', '-S', 'OUTRIGGER_OUTPUT'])).to.contain('--uid-owner 1337 -j RETURN');
    expect(inNs(PEER_NS, ['iptables', '-t', 'nat', '-S'])).not.to.contain('OUTRIGGER');
  });

  it('inbound to a declared port (IPv4 and IPv6) goes through the sidecar; an excluded port and the status port do not', () => {
    const captured = get(PEER_NS, `http://${POD_IP}:8080/in`);
    expect(captured.status).to.equal(200);
    expect(captured.body).to.include({ server: 'app', port: 8080, remote: '127.0.0.1' });
    expect(captured.body!.requestId, 'x-request-id added by the sidecar').to.be.a('string');

    // IPv6: the ip6tables rule and the dual-stack inbound listener.
    const captured6 = get(PEER_NS, `http://[${POD_IP6}]:8080/in6`);
    expect(captured6.status, captured6.error).to.equal(200);
    expect(captured6.body).to.include({ server: 'app', port: 8080, remote: '127.0.0.1' });

    const excluded = get(PEER_NS, `http://${POD_IP}:8081/direct`);
    expect(excluded.body).to.include({ server: 'app', port: 8081, remote: PEER_IP, requestId: null });

    expect(get(PEER_NS, `http://${POD_IP}:15021/ready`).status).to.equal(200);
  });

  it('outbound from the app goes through the sidecar (routed on Host); an excluded port does not', () => {
    const captured = get(POD_NS, `http://${PEER_IP}:9090/out`, 'peer.mesh:9090');
    expect(captured.status).to.equal(200);
    expect(captured.body).to.include({ server: 'peer', port: 9090, remote: POD_IP });
    expect(captured.body!.requestId).to.be.a('string');

    const excluded = get(POD_NS, `http://${PEER_IP}:9091/direct`, 'peer.mesh:9091');
    expect(excluded.body).to.include({ server: 'peer', port: 9091, requestId: null });

    // Captured but unknown to the mesh: the sidecar answers (no route), nothing leaves.
    expect(get(POD_NS, `http://${PEER_IP}:9090/unknown`, 'unknown.example').status).to.equal(404);
  });

  it('the status port serves the rewritten app probe from outside the pod', () => {
    expect(probePath).to.equal('/app-health/web/readyz');
    expect(get(PEER_NS, `http://${POD_IP}:15021${probePath}`).status).to.equal(200);
  });

  it('POST /quitquitquit ends the proxy with exit 0; the access log shows exactly the captured requests', async () => {
    const lines = await quitAndReadAccessLog();
    const seen = lines.map((l) => `${l.listener as string} ${l.path as string}`).sort();
    expect(seen).to.deep.equal(['inbound-8080 /in', 'inbound-8080 /in6', 'outbound /out', 'outbound /unknown']);
  });
});

function doc(kind: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'outrigger.io/v1', kind, metadata: { name }, spec }) + '\n';
}
