import net from 'node:net';
import { expect } from 'chai';
import pino from 'pino';
import { Writable } from 'node:stream';
import type { H1Pool } from '../../../src/proxy/upstream/h1-pool.js';
import type { H2Pool } from '../../../src/proxy/upstream/h2-pool.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { OriginalDestinations, parseAuthority } from '../../../src/proxy/upstream/original-dst.js';
import {
  originalDestinationOf,
  originalDstAddon,
  unmapV4,
  type AddonStatus,
  type OriginalDstAddon,
} from '../../../src/proxy/upstream/original-dst-addon.js';
import { FakeClock } from '../../support/fake-clock.js';

const passthrough = (idleMs = 60_000): ClusterRuntime => new ClusterRuntime('passthrough', [], 'downstream', 1000, 64, idleMs, true);
/** The inbound catch-all's cluster: originalDst.useHostHeader false. */
const inboundPassthrough = (): ClusterRuntime => new ClusterRuntime('inbound-passthrough', [], 'downstream', 1000, 64, 60_000, true, false);
const withAddon: AddonStatus = { addon: { originalDst: () => null }, path: '/x.node', reason: undefined };
const noAddon: AddonStatus = { addon: undefined, path: '/missing.node', reason: '/missing.node not found' };

function setup(opts: { addon?: AddonStatus; max?: number; local?: string[] } = {}) {
  const clock = new FakeClock();
  const evicted: string[] = [];
  const warnings: Record<string, unknown>[] = [];
  const pools = { evict: (k: string) => evicted.push(k) };
  const logger = pino(
    { base: undefined },
    new Writable({
      write(c: Buffer, _e, cb) {
        for (const l of c.toString().split('\n')) if (l) warnings.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const od = new OriginalDestinations({
    clock,
    logger,
    h1: { evict: (k: string) => pools.evict(`h1:${k}`) } as unknown as H1Pool,
    h2: { evict: (k: string) => pools.evict(`h2:${k}`) } as unknown as H2Pool,
    addon: opts.addon ?? withAddon,
    maxDestinations: opts.max ?? 3,
    sweepIntervalMs: 1000,
    localAddresses: () => opts.local ?? ['127.0.0.1', '::1', '10.1.2.3', 'fe80::1%eth0'],
  });
  return { clock, od, evicted, warnings };
}

describe('ORIGINAL_DST: parseAuthority', () => {
  it('takes host and port from Host / :authority, with the scheme default port', () => {
    expect(parseAuthority('api.example.com', 'http')).to.deep.equal({ host: 'api.example.com', port: 80 });
    expect(parseAuthority('API.Example.com.', 'https')).to.deep.equal({ host: 'api.example.com', port: 443 });
    expect(parseAuthority('10.0.0.7:8080', 'http')).to.deep.equal({ host: '10.0.0.7', port: 8080 });
    expect(parseAuthority('[fd00::7]:9090', 'http')).to.deep.equal({ host: 'fd00::7', port: 9090 });
    expect(parseAuthority('[fd00::7]', 'http')).to.deep.equal({ host: 'fd00::7', port: 80 });
  });
  it('refuses empty and malformed authorities', () => {
    for (const bad of ['', ' ', ':80', 'a:0', 'a:70000', 'a:b', 'user@host', 'fd00::7', 'a/b', '[zz::1]:80']) {
      expect(parseAuthority(bad, 'http'), bad).to.equal(undefined);
    }
  });
});

describe('ORIGINAL_DST: choosing the endpoint', () => {
  it('static clusters still pick round robin, and "no healthy upstream" when empty', () => {
    const { od } = setup();
    const c = new ClusterRuntime('c', [{ host: '10.0.0.1', port: 80, weight: 1, key: '10.0.0.1:80' }], 'downstream', 1000, 64, 60_000);
    expect(od.pick(c, {}).ep?.key).to.equal('10.0.0.1:80');
    expect(od.pick(new ClusterRuntime('e', [], 'downstream', 1000, 64, 60_000), {})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'e' });
  });

  it('prefers the original destination of a redirected connection over Host', () => {
    const { od } = setup();
    const r = od.pick(passthrough(), { originalDst: { host: 'fd00::9', port: 7070, family: 6 }, authority: 'other.example', scheme: 'http' });
    expect(r.ep).to.deep.include({ host: 'fd00::9', port: 7070, key: '[fd00::9]:7070' });
  });

  it('falls back to Host / :authority for HTTP on a connection that was not redirected', () => {
    const { od } = setup();
    expect(od.pick(passthrough(), { authority: 'svc.example:8443', scheme: 'http' }).ep?.key).to.equal('svc.example:8443');
    expect(od.pick(passthrough(), { authority: 'svc.example', scheme: 'https' }).ep?.key).to.equal('svc.example:443');
  });

  it('refuses a connection with no destination, saying why (not redirected / no Host / no addon)', () => {
    expect(setup().od.pick(passthrough(), {})).to.deep.equal({
      code: 'no_original_destination',
      detail: 'the connection was not redirected (SO_ORIGINAL_DST)',
    });
    expect(setup().od.pick(passthrough(), { authority: '', scheme: 'http' }).code).to.equal('no_original_destination');
    expect(setup({ addon: noAddon }).od.pick(passthrough(), {})).to.deep.equal({
      code: 'no_original_destination',
      detail: 'the SO_ORIGINAL_DST addon is not available (/missing.node not found)',
    });
  });

  it('refuses a destination that is one of its own listeners (routing loop), whatever name the host has', () => {
    const { od } = setup();
    od.setListeners([{ host: '::', port: 15001 }, { host: '127.0.0.1', port: 15100 }, { host: '10.9.9.9', port: 15200 }]);
    for (const authority of ['127.0.0.1:15001', 'localhost:15001', '[::1]:15001', '10.1.2.3:15001', '0.0.0.0:15001', '127.0.0.2:15100', '10.9.9.9:15200']) {
      const r = od.pick(passthrough(), { authority, scheme: 'http' });
      expect(r.code, authority).to.equal('routing_loop');
    }
    expect(od.pick(passthrough(), { originalDst: { host: '10.1.2.3', port: 15001, family: 4 } }).code).to.equal('routing_loop');
    // Same ports on another host, or another port here: not a loop.
    for (const authority of ['10.0.0.5:15001', '127.0.0.1:15002', '10.1.2.3:15200', 'peer.mesh:15001']) {
      expect(od.pick(passthrough(), { authority, scheme: 'http' }).ep, authority).to.not.equal(undefined);
    }
  });
});

describe('ORIGINAL_DST: originalDst.useHostHeader false (inbound pass-through)', () => {
  it('ClusterRuntime.build: unset means true (the outbound pass-through keeps its Host fallback); false only when set', async () => {
    const { create } = await import('@bufbuild/protobuf');
    const { ClusterSchema, Cluster_DiscoveryType } = await import('../../../src/gen/outrigger/config/v1/cluster_pb.js');
    const build = (originalDst?: { useHostHeader?: boolean }): boolean =>
      ClusterRuntime.build(create(ClusterSchema, { name: 'c', type: Cluster_DiscoveryType.ORIGINAL_DST, originalDst }), undefined).useHostHeader;
    expect(build()).to.equal(true);
    expect(build({})).to.equal(true);
    expect(build({ useHostHeader: true })).to.equal(true);
    expect(build({ useHostHeader: false })).to.equal(false);
  });

  it('uses the original destination of a redirected connection, never the Host; without one the request is refused (OD)', () => {
    const { od } = setup();
    const redirected = od.pick(inboundPassthrough(), { originalDst: { host: '10.1.2.3', port: 8082, family: 4 }, authority: 'web.shop.svc.cluster.local', scheme: 'http' });
    expect(redirected.ep).to.deep.include({ host: '10.1.2.3', port: 8082, key: '10.1.2.3:8082' });
    expect(od.pick(inboundPassthrough(), { authority: '10.0.0.5:8080', scheme: 'http' })).to.deep.equal({
      code: 'no_original_destination',
      detail: 'the connection was not redirected (SO_ORIGINAL_DST); cluster inbound-passthrough does not route by Host / :authority (originalDst.useHostHeader: false)',
    });
    expect(setup({ addon: noAddon }).od.pick(inboundPassthrough(), { authority: 'web.shop:80', scheme: 'http' }).detail).to.equal(
      'the SO_ORIGINAL_DST addon is not available (/missing.node not found); cluster inbound-passthrough does not route by Host / :authority (originalDst.useHostHeader: false)',
    );
    expect(od.pick(inboundPassthrough(), {}).detail, 'opaque TCP: as before').to.equal('the connection was not redirected (SO_ORIGINAL_DST)');
  });

  it('the loop check lets pod-IP:app-port through (the sidecar listens on 15001, 15006, 15100+), and refuses pod-IP:15006', () => {
    const { od } = setup({ local: ['127.0.0.1', '::1', '10.1.2.3', 'fd00::3'] });
    od.setListeners([{ host: '::', port: 15001 }, { host: '::', port: 15006 }, { host: '::', port: 15100 }]);
    for (const [host, port] of [['10.1.2.3', 8082], ['fd00::3', 8082], ['10.1.2.3', 7072], ['10.1.2.3', 15021]] as const) {
      const r = od.pick(inboundPassthrough(), { originalDst: { host, port, family: host.includes(':') ? 6 : 4 } });
      expect(r.ep, `${host}:${port}`).to.deep.include({ host, port });
    }
    expect(od.pick(inboundPassthrough(), { originalDst: { host: '10.1.2.3', port: 15006, family: 4 } }).code).to.equal('routing_loop');
    expect(od.pick(inboundPassthrough(), { originalDst: { host: 'fd00::3', port: 15100, family: 6 } }).code).to.equal('routing_loop');
  });
});

describe('ORIGINAL_DST: pools of original destinations', () => {
  it('keeps at most maxDestinations; the least recently used one is evicted from both pools', () => {
    const { od, evicted } = setup({ max: 3 });
    const use = (h: string): unknown => od.pick(passthrough(), { authority: `${h}:80`, scheme: 'http' });
    use('a');
    use('b');
    use('c');
    use('a'); // a is now the most recent
    use('d');
    expect(evicted).to.deep.equal(['h1:b:80', 'h2:b:80']);
    expect(od.destinations()).to.deep.equal(['c:80', 'a:80', 'd:80']);
  });

  it('closes pools idle longer than the cluster idleTimeout on the sweep; recently used ones stay', () => {
    const { od, evicted, clock } = setup({ max: 10 });
    od.pick(passthrough(5000), { authority: 'a:80', scheme: 'http' });
    clock.advance(3000);
    od.pick(passthrough(5000), { authority: 'b:80', scheme: 'http' });
    clock.advance(2500);
    expect(evicted).to.deep.equal(['h1:a:80', 'h2:a:80']);
    expect(od.destinations()).to.deep.equal(['b:80']);
    clock.advance(3000);
    expect(od.destinations()).to.deep.equal([]);
    expect(clock.pending, 'no sweep timer left once empty').to.equal(0);
  });

  it('opaque TCP takes no pool; endpoints of configured clusters are never evicted; retain keeps live destinations', () => {
    const { od, evicted } = setup({ max: 1 });
    od.pick(passthrough(), { originalDst: { host: '10.0.0.1', port: 5432, family: 4 } });
    expect(od.destinations()).to.deep.equal([]);
    expect([...od.retain(new Set(['10.0.0.2:80']), true)]).to.deep.equal(['10.0.0.2:80']);
    od.pick(passthrough(), { authority: '10.0.0.2:80', scheme: 'http' });
    od.pick(passthrough(), { authority: '10.0.0.3:80', scheme: 'http' });
    expect(evicted, 'a configured endpoint shares the pool: not closed').to.deep.equal([]);
    expect([...od.retain(new Set(['x:1']), true)]).to.deep.equal(['x:1', '10.0.0.3:80']);
    expect([...od.retain(new Set(['x:1']), false)], 'no ORIGINAL_DST cluster left: forget them').to.deep.equal(['x:1']);
  });

  it('without the addon, the first config with an ORIGINAL_DST cluster logs one warning', () => {
    const { od, warnings } = setup({ addon: noAddon });
    od.retain(new Set(), false);
    od.retain(new Set(), true);
    od.retain(new Set(), true);
    expect(warnings).to.have.length(1);
    expect(warnings[0]!.msg).to.match(/SO_ORIGINAL_DST addon not available.*Host.*useHostHeader.*refuse opaque TCP/);
    expect(warnings[0]!.reason).to.equal('/missing.node not found');
  });
});

describe('ORIGINAL_DST: the addon loader and lookup', () => {
  it('a missing addon file is reported, not thrown', () => {
    const s = originalDstAddon({ OUTRIGGER_ORIGINAL_DST_ADDON: '/nonexistent/original_dst.node' });
    if (process.platform !== 'linux') return void expect(s.addon).to.equal(undefined);
    expect(s).to.deep.equal({ addon: undefined, path: '/nonexistent/original_dst.node', reason: '/nonexistent/original_dst.node not found (npm run build:native)' });
  });

  it('only a destination different from the local address counts as redirected', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect(port, '127.0.0.1');
    const s = await accepted;
    try {
      const answer = (d: ReturnType<OriginalDstAddon['originalDst']>): OriginalDstAddon => ({ originalDst: () => d });
      expect(originalDestinationOf(s, answer({ address: '127.0.0.1', port, family: 4 })), 'conntrack saw no rewrite').to.equal(undefined);
      expect(originalDestinationOf(s, answer({ address: '10.0.0.9', port: 443, family: 4 }))).to.deep.equal({ host: '10.0.0.9', port: 443, family: 4 });
      expect(originalDestinationOf(s, answer(null))).to.equal(undefined);
      expect(originalDestinationOf(s, undefined), 'no addon').to.equal(undefined);
      let fd = -2;
      originalDestinationOf(s, { originalDst: (f) => ((fd = f), null) });
      expect(fd, 'the fd of the accepted socket').to.be.greaterThan(2);
    } finally {
      client.destroy();
      s.destroy();
      server.close();
    }
    expect(unmapV4('::ffff:10.0.0.1')).to.equal('10.0.0.1');
    expect(unmapV4('::ffff:a00:1')).to.equal('::ffff:a00:1');
  });

  it('the built addon answers null for a non-socket and for a connection nothing redirected', async function () {
    const s = originalDstAddon();
    if (!s.addon) {
      // CI builds it (npm ci → install script, required under CI); a dev box without a compiler may not.
      if (process.env.CI) throw new Error(`the original-dst addon is not built in CI: ${s.reason}`);
      console.log(`      skipped: ${s.reason}`);
      return this.skip();
    }
    expect(s.addon.originalDst(-1)).to.equal(null);
    expect(s.addon.originalDst(0), 'stdin is not a TCP socket').to.equal(null);
    expect(() => s.addon!.originalDst('x' as unknown as number)).to.throw(TypeError, /fd must be a number/);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const sock = await accepted;
    try {
      // Without NAT conntrack has no entry (null) or reports the socket's own address: not redirected either way.
      expect(originalDestinationOf(sock, s.addon)).to.equal(undefined);
    } finally {
      client.destroy();
      sock.destroy();
      server.close();
    }
  });
});
