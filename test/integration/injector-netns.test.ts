import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { inject } from '../../injector/inject.js';
import { defaultMeshConfig, type MeshConfig } from '../../injector/mesh-config.js';
import type { Container, Pod } from '../../injector/pod-types.js';
import { originalDstAddon } from '../../src/proxy/upstream/original-dst-addon.js';

/**
 * An injected pod for real: two network namespaces joined by a veth pair.
 * "pod" runs outrigger-init (`outrigger redirect` with the exact args inject()
 * produced), an app, and outrigger-proxy with the injected args and env as
 * UID 1337, then its postStart hook (`wait-ready`); "peer" runs the control
 * plane the proxy is pointed at, a client and upstream services (HTTP, and a
 * raw TCP line server that speaks first). Inbound traffic to ports the pod
 * does not declare goes through the catch-all listener (15006) to the pod IP
 * and port dialled (SO_ORIGINAL_DST), never by Host. Outbound traffic to
 * destinations the mesh does not know passes through (ALLOW_ANY, the
 * ORIGINAL_DST cluster reading SO_ORIGINAL_DST) or is refused (REGISTRY_ONLY,
 * a second pod incarnation in the same namespace); a third incarnation limits
 * inbound capture to a port list. Needs root, `ip netns` and iptables
 * (CI installs them) and the native addon (npm ci builds it); skips with the
 * reason otherwise.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUTRIGGER = join(ROOT, 'bin/outrigger.js');
const POD_IP = '10.203.0.1';
const PEER_IP = '10.203.0.2';
const POD_IP6 = 'fd00:203::1';
const PEER_IP6 = 'fd00:203::2';

// Plain ESM helper run inside the namespaces: HTTP servers that describe each
// request, a one-shot HTTP client, a TCP server that speaks first (a banner
// naming the address it was reached on) and then echoes bytes, and a one-shot
// TCP client printing the bytes it got (hex) and how the connection ended.
const HELPER = `
import http from 'node:http';
import net from 'node:net';
const [mode, ...args] = process.argv.slice(2);
const plain = (a) => (a ?? '').replace(/^::ffff:/, '');
if (mode === 'tcp-serve') {
  const [name, ...ports] = args;
  let n = 0;
  for (const port of ports) {
    net.createServer((s) => {
      s.on('error', () => {});
      s.write('banner ' + name + ':' + port + ' local=' + plain(s.localAddress) + ' remote=' + plain(s.remoteAddress) + '\\n');
      s.pipe(s);
    }).listen(Number(port), '::', () => { if (++n === ports.length) console.log('listening'); });
  }
} else if (mode === 'tcp') {
  // tcp HOST PORT FIRST_HEX AFTER_BANNER_HEX WANT_BYTES
  const [host, port, firstHex, afterHex, want] = args;
  const chunks = [];
  let after = Buffer.from(afterHex, 'hex');
  const got = () => Buffer.concat(chunks);
  const done = (how) => { console.log(JSON.stringify({ how, data: got().toString('hex') })); process.exit(0); };
  const s = net.connect(Number(port), host, () => { const first = Buffer.from(firstHex, 'hex'); if (first.length) s.write(first); });
  s.on('data', (c) => {
    chunks.push(c);
    if (after.length && got().includes(10)) { s.write(after); after = Buffer.alloc(0); }
    if (got().length >= Number(want)) done('complete');
  });
  s.on('close', () => done('closed'));
  s.on('error', (e) => done('error ' + e.code));
  setTimeout(() => done('timeout'), 4000);
} else if (mode === 'serve' || mode === 'serve-loopback') {
  const [name, ...ports] = args;
  let n = 0;
  for (const port of ports) {
    http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: name, port: Number(port), remote: plain(req.socket.remoteAddress), host: req.headers.host, requestId: req.headers['x-request-id'] ?? null }));
    }).listen(Number(port), mode === 'serve' ? '::' : '127.0.0.1', () => { if (++n === ports.length) console.log('listening'); });
  }
} else {
  const [url, host] = args;
  const req = http.get(url, { headers: host ? { host } : {}, timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { console.log(JSON.stringify({ status: res.statusCode, localReply: res.headers['x-outrigger-local-reply'] ?? null, body })); });
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
  const addon = originalDstAddon();
  if (!addon.addon) {
    // Root without the addon is a broken build, not a missing prerequisite: CI must not skip silently.
    if (process.env.CI) throw new Error(`the SO_ORIGINAL_DST addon is required here: ${addon.reason}`);
    return `the SO_ORIGINAL_DST addon is not built (${addon.reason}); npm run build:native`;
  }
  return undefined;
}

describe('an injected pod in network namespaces: traffic capture, proxy, control plane', function () {
  this.timeout(60_000);
  const POD_NS = `ortest-pod-${process.pid}`;
  const PEER_NS = `ortest-peer-${process.pid}`;
  const children: ChildProcess[] = [];
  let dir: string;
  let proxy: Proxy;
  let initArgs: string[];

  interface Proxy {
    child: ChildProcess;
    out: () => string;
  }
  /** The injected containers of a pod, with the kubelet's work done: $(VAR) expansion, downward-API env, volumes as directories. */
  interface Injected {
    initArgs: string[];
    proxyArgs: string[];
    proxyEnv: Record<string, string>;
    postStart: string[];
    probePath: string;
  }

  const inNs = (ns: string, cmd: string[], opts: { input?: string } = {}): string =>
    execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' }, ...opts });

  /** Everything each child printed on stdout so far. */
  const stdoutOf = new Map<ChildProcess, () => string>();

  function startIn(ns: string, cmd: string[], readyText: string, env: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', ...env } });
    children.push(child);
    let out = '';
    stdoutOf.set(child, () => out);
    return new Promise((resolve, reject) => {
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

  function get(ns: string, url: string, host?: string): { status?: number; localReply?: string | null; body?: Record<string, unknown>; error?: string } {
    const out = inNs(ns, [process.execPath, join(dir, 'helper.mjs'), 'get', url, ...(host ? [host] : [])]);
    const r = JSON.parse(out.trim()) as { status?: number; localReply?: string | null; body?: string; error?: string };
    let body: Record<string, unknown> | undefined;
    try {
      body = r.body ? (JSON.parse(r.body) as Record<string, unknown>) : undefined;
    } catch {
      body = { text: r.body };
    }
    return { status: r.status, localReply: r.localReply, body, error: r.error };
  }

  /**
   * A raw TCP exchange from the pod's app (or from `ns`): connect to host:port,
   * send `first` at once (may be empty: the server speaks first), send
   * `afterBanner` once a line arrived, and stop after `want` bytes or when the
   * connection ends.
   */
  function tcp(host: string, port: number, first: Buffer, afterBanner: Buffer, want: number, ns = POD_NS): { how: string; data: Buffer } {
    const out = inNs(ns, [process.execPath, join(dir, 'helper.mjs'), 'tcp', host, String(port), first.toString('hex'), afterBanner.toString('hex'), String(want)]);
    const r = JSON.parse(out.trim()) as { how: string; data: string };
    return { how: r.how, data: Buffer.from(r.data, 'hex') };
  }

  const banner = (port: number, local: string, remote: string, name = 'peer'): Buffer => Buffer.from(`banner ${name}:${port} local=${local} remote=${remote}\n`);

  /** inject() for a pod, then what the kubelet would run (paths remapped into `stateDir` and `podinfo`). */
  function injectedPod(pod: Pod, mesh: MeshConfig, stateDir: string, labels: string): Injected {
    const injected = inject(pod, mesh, '1.28').pod;
    const init = injected.spec!.initContainers!.find((c: Container) => c.name === 'outrigger-init')!;
    const proxyC = injected.spec!.containers.find((c: Container) => c.name === 'outrigger-proxy')!;
    // The pod's volumes become directories; the kubelet's $(VAR) expansion and
    // downward-API env are done here.
    const podinfo = `${stateDir}-podinfo`;
    for (const d of [stateDir, podinfo]) {
      mkdirSync(d);
      chmodSync(d, 0o777);
    }
    writeFileSync(join(podinfo, 'labels'), labels);
    // The projected service-account token volume (audience outrigger): the control plane runs
    // --no-auth here, so any token is taken; the volume's path is remapped like the others.
    const tokens = `${stateDir}-tokens`;
    mkdirSync(tokens);
    writeFileSync(join(tokens, 'outrigger-token'), 'netns-test-token\n');
    chmodSync(join(tokens, 'outrigger-token'), 0o644);
    const remap = (a: string): string =>
      a.replace('/var/lib/outrigger', stateDir).replace('/etc/outrigger/podinfo', podinfo).replace('/var/run/secrets/outrigger/tokens', tokens);
    const name = pod.metadata!.name!;
    const fieldValues: Record<string, string> = {
      'metadata.name': name, 'metadata.namespace': 'shop', 'status.podIP': POD_IP, 'spec.serviceAccountName': 'default', 'spec.nodeName': 'node-1',
    };
    const proxyEnv: Record<string, string> = {};
    for (const e of proxyC.env!) {
      proxyEnv[e.name] = e.value ?? fieldValues[(e.valueFrom as { fieldRef: { fieldPath: string } }).fieldRef.fieldPath]!;
    }
    const appC = injected.spec!.containers.find((c: Container) => c.name !== 'outrigger-proxy')!;
    return {
      initArgs: init.args!.map(remap),
      proxyArgs: proxyC.args!.map((a) => remap(a.replace(/\$\((\w+)\)/g, (_m, v: string) => proxyEnv[v]!))),
      proxyEnv,
      postStart: (proxyC.lifecycle as { postStart: { exec: { command: string[] } } }).postStart.exec.command,
      probePath: ((appC.readinessProbe ?? {}) as { httpGet?: { path: string } }).httpGet?.path ?? '',
    };
  }

  /** outrigger-proxy as UID 1337, then its postStart hook (the kubelet starts the app container only after it returns). */
  async function startProxy(p: Injected): Promise<Proxy> {
    const child = await startIn(POD_NS, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, OUTRIGGER, ...p.proxyArgs], 'sidecar ready', p.proxyEnv);
    expect(p.postStart[0]).to.equal('outrigger');
    inNs(POD_NS, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, OUTRIGGER, ...p.postStart.slice(1)]);
    return { child, out: stdoutOf.get(child)! };
  }

  let web: Injected;

  before(async function () {
    const missing = missingPrerequisite();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'outrigger-netns-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'helper.mjs'), HELPER);

    // The pod as a user writes it; the init container's args come from inject(). It declares
    // 8080 and 8081 (excluded); the app also serves on 8082 and 8083 (HTTP) and 7072 (TCP,
    // server first), which it does not declare: the inbound catch-all captures 8082 and 7072,
    // and 8083 is excluded.
    const pod: Pod = {
      metadata: {
        name: 'web',
        namespace: 'shop',
        annotations: { 'outrigger.io/exclude-inbound-ports': '8081,8083', 'outrigger.io/exclude-outbound-ports': '9091,7071' },
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
    // The mesh default: ALLOW_ANY.
    const mesh = { ...defaultMeshConfig(), controlPlaneAddress: `${PEER_IP}:15010` };
    web = injectedPod(pod, mesh, join(dir, 'state'), 'app="web"\n');
    expect(web.proxyEnv.OUTRIGGER_INBOUND_PORTS).to.equal('8080=15100');
    expect(web.initArgs.join(' ')).to.contain('--outbound-policy ALLOW_ANY');
    expect(web.initArgs.join(' ')).to.contain('--inbound-ports 8080=15100 --include-inbound-ports * --exclude-inbound-ports 8081,8083 ');
    expect(web.proxyArgs.slice(0, 5)).to.deep.equal(['sidecar', '--control-plane', `${PEER_IP}:15010`, '--node-id', 'web.shop']);
    initArgs = web.initArgs;

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

    // The outbound side: what an operator applies to the control plane for the mesh's services. It
    // replaces the bootstrap's outbound resources by name — the Listener (same address, so nothing
    // rebinds; the sidecar subscribes to the routes of pushed listeners) and the RouteConfiguration —
    // so it carries the ALLOW_ANY catch-all and its ORIGINAL_DST cluster along with the mesh hosts.
    // Selected for the pods labelled app=web only.
    const web_ = { selector: { labels: { app: 'web' } } };
    writeFileSync(join(dir, 'outbound.yaml'), [
      doc('Listener', 'outbound', { address: { host: '::', port: 15001 }, routeConfig: 'outbound', defaultCluster: 'passthrough' }, web_),
      doc('RouteConfiguration', 'outbound', {
        virtualHosts: [
          { name: 'peer', domains: ['peer.mesh'], routes: [{ name: 'peer', match: { prefix: '/' }, route: { cluster: 'peer' } }] },
          { name: 'allow-any', domains: ['*'], routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: 'passthrough' } }] },
        ],
      }, web_),
      doc('Cluster', 'peer', { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP1', endpoints: [{ address: { host: PEER_IP, port: 9090 } }] }, web_),
      doc('Cluster', 'passthrough', { type: 'DISCOVERY_TYPE_ORIGINAL_DST', connectTimeout: '10s' }, web_),
    ].join('---\n'));

    await startIn(PEER_NS, [process.execPath, OUTRIGGER, 'control', '--store', `file:${join(dir, 'store')}`, '--port', '15010',
      '--metrics-port', '15014', '--no-auth', '--debounce', '0.02s'], 'control plane ready');
    inNs(PEER_NS, [process.execPath, OUTRIGGER, 'apply', '-f', join(dir, 'outbound.yaml'), '--control-plane', `${PEER_IP}:15010`]);
    await startIn(POD_NS, [process.execPath, join(dir, 'helper.mjs'), 'serve', 'app', '8080', '8081', '8082', '8083'], 'listening');
    await startIn(POD_NS, [process.execPath, join(dir, 'helper.mjs'), 'tcp-serve', 'app', '7072'], 'listening');
    await startIn(POD_NS, [process.execPath, join(dir, 'helper.mjs'), 'serve-loopback', 'app', '8084'], 'listening');
    await startIn(PEER_NS, [process.execPath, join(dir, 'helper.mjs'), 'serve', 'peer', '9090', '9091'], 'listening');
    await startIn(PEER_NS, [process.execPath, join(dir, 'helper.mjs'), 'tcp-serve', 'peer', '7070', '7071'], 'listening');
    proxy = await startProxy(web);
  });

  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', POD_NS]);
    spawnSync('ip', ['netns', 'del', PEER_NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Ends a proxy the way a classic-mode Job does (POST /quitquitquit on the
   * admin port, from the app's network namespace) and returns its access log,
   * which the async logger flushes on shutdown.
   */
  async function quitAndReadAccessLog(p: Proxy): Promise<Record<string, unknown>[]> {
    const exited = new Promise<number | null>((r) => (p.child.exitCode !== null ? r(p.child.exitCode) : p.child.once('exit', r)));
    const quit = inNs(POD_NS, [process.execPath, '-e',
      "fetch('http://127.0.0.1:15000/quitquitquit',{method:'POST'}).then(r=>console.log(r.status))"]);
    expect(quit.trim()).to.equal('200');
    expect(await exited, 'the proxy exits 0 so the pod can complete').to.equal(0);
    return p.out().split('\n').filter((l) => l.includes('"msg":"access"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('installs iptables and ip6tables rules in the pod namespace only; the bootstrap has the inbound catch-all and the ALLOW_ANY outbound listener', () => {
    for (const bin of ['iptables', 'ip6tables']) {
      const inbound = inNs(POD_NS, [bin, '-t', 'nat', '-S', 'OUTRIGGER_INBOUND']);
      expect(inbound, bin).to.contain('--dport 8080 -j REDIRECT --to-ports 15100');
      // The catch-all is the chain's last rule, after the exclusions.
      expect(inbound.trim().split('\n').at(-1), bin).to.equal('-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 15006');
      expect(inbound.indexOf('--dport 8083 -j RETURN'), bin).to.be.greaterThan(0);
    }
    expect(inNs(POD_NS, ['ip6tables', '-t', 'nat', '-S', 'OUTRIGGER_OUTPUT'])).to.contain('--uid-owner 1337 -j RETURN');
    expect(inNs(PEER_NS, ['iptables', '-t', 'nat', '-S'])).not.to.contain('OUTRIGGER');
    const bootstrap = readFileSync(join(dir, 'state', 'inbound.yaml'), 'utf8');
    expect(bootstrap).to.contain('outbound traffic policy ALLOW_ANY');
    expect(bootstrap).to.match(/kind: Cluster\nmetadata:\n  name: passthrough\n[\s\S]*type: DISCOVERY_TYPE_ORIGINAL_DST/);
    expect(bootstrap).to.match(/kind: Listener\nmetadata:\n  name: inbound\n[\s\S]*port: 15006/);
    expect(bootstrap).to.match(/name: inbound-passthrough\n[\s\S]*type: DISCOVERY_TYPE_ORIGINAL_DST\n  originalDst:\n    useHostHeader: false/);
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

  it('inbound to an undeclared port goes through the catch-all (15006) to the pod IP and port dialled, whatever the Host (IPv4 and IPv6)', () => {
    // Host is the service name: routing on it would leave the pod. The catch-all goes to the original destination.
    const r = get(PEER_NS, `http://${POD_IP}:8082/undeclared`, 'web.shop.svc.cluster.local');
    expect(r.status, r.error).to.equal(200);
    expect(r.localReply).to.equal(null);
    // The upstream is the pod IP (not 127.0.0.1): the sidecar dialled the original destination.
    expect(r.body).to.include({ server: 'app', port: 8082, remote: POD_IP, host: 'web.shop.svc.cluster.local' });
    expect(r.body!.requestId, 'x-request-id: it went through the sidecar').to.be.a('string');

    const r6 = get(PEER_NS, `http://[${POD_IP6}]:8082/undeclared6`);
    expect(r6.status, r6.error).to.equal(200);
    expect(r6.body).to.include({ server: 'app', port: 8082, remote: POD_IP6 });
    expect(r6.body!.requestId).to.be.a('string');

    // Documented limit: an undeclared port the app binds on 127.0.0.1 only is not reached (the upstream is the pod IP).
    const lo = get(PEER_NS, `http://${POD_IP}:8084/loopback-only`);
    expect(lo.status).to.equal(503);
    expect(lo.localReply).to.equal('UF');
  });

  it('inbound opaque TCP to an undeclared port (server speaks first, then binary) goes through the catch-all byte for byte', () => {
    const binary = Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x0a, 0x01]);
    const b = banner(7072, POD_IP, POD_IP, 'app');
    const r = tcp(POD_IP, 7072, Buffer.alloc(0), binary, b.length + binary.length, PEER_NS);
    expect(r.how).to.equal('complete');
    expect(r.data.equals(Buffer.concat([b, binary])), r.data.toString()).to.equal(true);
  });

  it('an excluded undeclared inbound port bypasses the sidecar; 15006 dialled directly (not redirected) is refused (OD), not looped', () => {
    expect(get(PEER_NS, `http://${POD_IP}:8083/excluded`).body).to.include({ server: 'app', port: 8083, remote: PEER_IP, requestId: null });

    const direct = get(PEER_NS, `http://${POD_IP}:15006/direct`, `${POD_IP}:15006`);
    expect(direct.status).to.equal(503);
    expect(direct.localReply).to.equal('OD');
    expect(direct.body!.text).to.contain('does not route by Host / :authority');
  });

  it('outbound from the app to a mesh host goes through the sidecar (routed on Host); an excluded port does not', () => {
    const captured = get(POD_NS, `http://${PEER_IP}:9090/out`, 'peer.mesh:9090');
    expect(captured.status).to.equal(200);
    expect(captured.body).to.include({ server: 'peer', port: 9090, remote: POD_IP });
    expect(captured.body!.requestId).to.be.a('string');

    const excluded = get(POD_NS, `http://${PEER_IP}:9091/direct`, 'peer.mesh:9091');
    expect(excluded.body).to.include({ server: 'peer', port: 9091, requestId: null });
  });

  it('ALLOW_ANY: outbound HTTP to a host the mesh does not know passes through to the address the app dialled', () => {
    // "unknown.example" resolves nowhere: the sidecar goes to the connection's original destination
    // (SO_ORIGINAL_DST), not to the Host, and keeps the Host.
    const r = get(POD_NS, `http://${PEER_IP}:9090/unknown`, 'unknown.example');
    expect(r.status, r.error).to.equal(200);
    expect(r.localReply).to.equal(null);
    expect(r.body).to.include({ server: 'peer', port: 9090, remote: POD_IP, host: 'unknown.example' });
    expect(r.body!.requestId, 'x-request-id: it went through the sidecar').to.be.a('string');
  });

  it('ALLOW_ANY: outbound opaque TCP (server speaks first; binary client; IPv4 and IPv6) reaches the address the app dialled', () => {
    // Server speaks first: the app sends nothing, the sidecar's detection times out (opaque), and the
    // banner of the real server comes back; then a line is echoed.
    const ping = Buffer.from('ping\n');
    const b4 = banner(7070, PEER_IP, POD_IP);
    const first = tcp(PEER_IP, 7070, Buffer.alloc(0), ping, b4.length + ping.length);
    expect(first.how).to.equal('complete');
    expect(first.data.toString()).to.equal(Buffer.concat([b4, ping]).toString());

    // The client speaks first, in binary (not HTTP, not TLS).
    const binary = Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x0a, 0x01]);
    const second = tcp(PEER_IP, 7070, binary, Buffer.alloc(0), b4.length + binary.length);
    expect(second.how).to.equal('complete');
    expect(second.data.equals(Buffer.concat([b4, binary])), second.data.toString('hex')).to.equal(true);

    // IPv6: ip6tables → the dual-stack outbound listener → IP6T_SO_ORIGINAL_DST.
    const b6 = banner(7070, PEER_IP6, POD_IP6);
    const third = tcp(PEER_IP6, 7070, binary, Buffer.alloc(0), b6.length + binary.length);
    expect(third.how).to.equal('complete');
    expect(third.data.equals(Buffer.concat([b6, binary])), third.data.toString('hex')).to.equal(true);
  });

  it('an excluded outbound port bypasses the sidecar for TCP too', () => {
    const b = banner(7071, PEER_IP, POD_IP);
    const r = tcp(PEER_IP, 7071, Buffer.alloc(0), Buffer.alloc(0), b.length);
    expect(r.data.toString()).to.equal(b.toString());
  });

  it('the status port serves the rewritten app probe from outside the pod', () => {
    expect(web.probePath).to.equal('/app-health/web/readyz');
    expect(get(PEER_NS, `http://${POD_IP}:15021${web.probePath}`).status).to.equal(200);
  });

  it('POST /quitquitquit ends the proxy with exit 0; the access log shows exactly the captured traffic, with the dialled destinations', async () => {
    const lines = await quitAndReadAccessLog(proxy);
    const http = lines.filter((l) => l.protocol !== 'tcp').map((l) => `${l.listener as string} ${l.path as string} ${l.cluster as string} ${l.upstream as string}`).sort();
    expect(http).to.deep.equal([
      'inbound /direct inbound-passthrough undefined',
      `inbound /loopback-only inbound-passthrough ${POD_IP}:8084`,
      `inbound /undeclared inbound-passthrough ${POD_IP}:8082`,
      `inbound /undeclared6 inbound-passthrough [${POD_IP6}]:8082`,
      'inbound-8080 /in inbound-8080 127.0.0.1:8080',
      'inbound-8080 /in6 inbound-8080 127.0.0.1:8080',
      `outbound /out peer ${PEER_IP}:9090`,
      `outbound /unknown passthrough ${PEER_IP}:9090`,
    ]);
    expect(lines.find((l) => l.path === '/direct')!.flags).to.equal('OD');
    expect(lines.find((l) => l.path === '/loopback-only')!.flags).to.equal('UF');
    const tcpLines = lines.filter((l) => l.protocol === 'tcp');
    expect(tcpLines.map((l) => `${l.listener as string} ${l.cluster as string} ${l.upstream as string} ${l.flags as string}`).sort()).to.deep.equal([
      `inbound inbound-passthrough ${POD_IP}:7072 undefined`,
      `outbound passthrough ${PEER_IP}:7070 undefined`,
      `outbound passthrough ${PEER_IP}:7070 undefined`,
      `outbound passthrough [${PEER_IP6}]:7070 undefined`,
    ]);
    for (const l of tcpLines) expect(l.bytes_out as number, 'the banner came through the sidecar').to.be.greaterThan(40);
  });

  it('REGISTRY_ONLY (mesh config → outrigger-init → bootstrap): unknown HTTP gets a local 404 (NR), opaque TCP is closed; excluded ports still bypass', async () => {
    // The same namespace as a new pod "strict" (fresh state volume), whose mesh config says REGISTRY_ONLY.
    // The control plane's outbound documents select app=web, so this pod runs on the bootstrap alone.
    const pod: Pod = {
      metadata: { name: 'strict', namespace: 'shop', annotations: { 'outrigger.io/exclude-outbound-ports': '9091,7071' } },
      spec: { containers: [{ name: 'strict', image: 'strict:1', ports: [{ containerPort: 8080 }] }] },
    };
    const mesh = { ...defaultMeshConfig(), controlPlaneAddress: `${PEER_IP}:15010`, outboundTrafficPolicy: 'REGISTRY_ONLY' as const };
    const strict = injectedPod(pod, mesh, join(dir, 'state-strict'), 'app="strict"\n');
    expect(strict.initArgs.join(' ')).to.contain('--outbound-policy REGISTRY_ONLY');
    expect(strict.proxyEnv.OUTRIGGER_OUTBOUND_POLICY).to.equal('REGISTRY_ONLY');
    inNs(POD_NS, [process.execPath, OUTRIGGER, ...strict.initArgs]);
    expect(readFileSync(join(dir, 'state-strict', 'inbound.yaml'), 'utf8')).to.contain('outbound traffic policy REGISTRY_ONLY');
    const p = await startProxy(strict);

    const refused = get(POD_NS, `http://${PEER_IP}:9090/blocked`, 'unknown.example');
    expect(refused.status).to.equal(404);
    expect(refused.localReply).to.equal('NR');
    expect(refused.body).to.deep.equal({ text: 'no route\n' });

    // Opaque TCP, binary: closed by the sidecar; the peer's banner never arrives.
    const binary = tcp(PEER_IP, 7070, Buffer.from([0x00, 0xff, 0x13, 0x37]), Buffer.alloc(0), 10);
    expect(binary.how).to.equal('closed');
    expect(binary.data.length).to.equal(0);
    // Server-first (the client sends nothing): with no default cluster the sidecar waits for a request
    // (a pre-connected client, issue 19 point 3) up to requestHeadersTimeout (10 s), so the helper gives up
    // first; the peer's banner never arrives either way.
    const silent = tcp(PEER_IP, 7070, Buffer.alloc(0), Buffer.alloc(0), 10);
    expect(silent.how).to.equal('timeout');
    expect(silent.data.length).to.equal(0);

    // Excluded ports are not captured at all, whatever the policy.
    expect(get(POD_NS, `http://${PEER_IP}:9091/direct`, 'unknown.example').body).to.include({ server: 'peer', port: 9091, requestId: null });
    const b = banner(7071, PEER_IP, POD_IP);
    expect(tcp(PEER_IP, 7071, Buffer.alloc(0), Buffer.alloc(0), b.length).data.toString()).to.equal(b.toString());

    const lines = await quitAndReadAccessLog(p);
    expect(lines.map((l) => `${l.listener as string} ${l.protocol as string} ${(l.path as string | undefined) ?? '-'} ${l.flags as string}`).sort()).to.deep.equal([
      'outbound http1 /blocked NR',
      'outbound tcp - NC', // the binary one; the silent client went away before sending anything (no request, no line)
    ]);
  });

  it('outrigger.io/include-inbound-ports "8080,7072": only those are captured (declared 8080 by its listener, undeclared 7072 by 15006); 8081 and 8082 bypass', async () => {
    // A third pod in the same namespace (fresh state volume); the app's servers from above keep running.
    const pod: Pod = {
      metadata: { name: 'listed', namespace: 'shop', annotations: { 'outrigger.io/include-inbound-ports': '8080,7072' } },
      spec: { containers: [{ name: 'listed', image: 'listed:1', ports: [{ containerPort: 8080 }, { containerPort: 8081 }] }] },
    };
    const mesh = { ...defaultMeshConfig(), controlPlaneAddress: `${PEER_IP}:15010` };
    const listed = injectedPod(pod, mesh, join(dir, 'state-listed'), 'app="listed"\n');
    expect(listed.proxyEnv.OUTRIGGER_INBOUND_PORTS).to.equal('8080=15100');
    expect(listed.initArgs.join(' ')).to.contain('--inbound-ports 8080=15100 --include-inbound-ports 7072,8080 --inbound-config');
    inNs(POD_NS, [process.execPath, OUTRIGGER, ...listed.initArgs]);
    const rules = inNs(POD_NS, ['iptables', '-t', 'nat', '-S', 'OUTRIGGER_INBOUND']);
    expect(rules).to.contain('--dport 7072 -j REDIRECT --to-ports 15006');
    expect(rules).not.to.contain('-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 15006');
    const p = await startProxy(listed);

    const declared = get(PEER_NS, `http://${POD_IP}:8080/listed-in`);
    expect(declared.body).to.include({ server: 'app', port: 8080, remote: '127.0.0.1' });
    expect(declared.body!.requestId).to.be.a('string');
    for (const port of [8081, 8082]) {
      expect(get(PEER_NS, `http://${POD_IP}:${port}/listed-bypass`).body, String(port)).to.include({ server: 'app', port, remote: PEER_IP, requestId: null });
    }
    const b = banner(7072, POD_IP, POD_IP, 'app');
    expect(tcp(POD_IP, 7072, Buffer.alloc(0), Buffer.alloc(0), b.length, PEER_NS).data.toString()).to.equal(b.toString());

    const lines = await quitAndReadAccessLog(p);
    expect(lines.map((l) => `${l.listener as string} ${(l.path as string | undefined) ?? l.protocol} ${l.upstream as string}`).sort()).to.deep.equal([
      `inbound tcp ${POD_IP}:7072`,
      'inbound-8080 /listed-in 127.0.0.1:8080',
    ]);
  });
});

function doc(kind: string, name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: 'outrigger.io/v1', kind, metadata: { name, ...metadata }, spec }) + '\n';
}
