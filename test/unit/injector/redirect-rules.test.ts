import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { inboundCatchAll, parseCidrList, parseIncludePorts, parseInboundPorts, redirectRules, type RedirectOptions } from '../../../injector/redirect-rules.js';

const opts: RedirectOptions = {
  proxyUid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  inboundPorts: [[8080, 15100], [9090, 15101]] as [number, number][],
  includeInboundPorts: '*',
  excludeInboundPorts: [8081, 9000],
  excludeOutboundPorts: [5432],
  excludeOutboundIpRanges: ['169.254.169.254/32', 'fd00::/8'],
  includeOutboundIpRanges: ['*'],
};

describe('injector: redirect rules', () => {
  it('redirects declared inbound ports each to its listener, never the status and admin ports', () => {
    const r = redirectRules(opts, 4);
    expect(r).to.contain('-A OUTRIGGER_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15100');
    expect(r).to.contain('-A OUTRIGGER_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15101');
    expect(r.indexOf('--dport 15021 -j RETURN')).to.be.lessThan(r.indexOf('--dport 8080'));
    expect(r).to.contain('-A OUTRIGGER_INBOUND -p tcp --dport 15000 -j RETURN');
  });

  it('catch-all ("*"): after the declared ports, excluded and sidecar ports return, then every other port goes to 15006 (both families)', () => {
    for (const family of [4, 6] as const) {
      const inbound = redirectRules(opts, family).split('\n').filter((l) => l.startsWith('-A OUTRIGGER_INBOUND'));
      expect(inbound, `IPv${family}`).to.deep.equal([
        '-A OUTRIGGER_INBOUND -p tcp --dport 15021 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 15000 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15100',
        '-A OUTRIGGER_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15101',
        '-A OUTRIGGER_INBOUND -p tcp --dport 8081 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 9000 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 15001 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 15006 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp --dport 15100:15199 -j RETURN',
        '-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 15006',
      ]);
    }
    expect(inboundCatchAll(opts)).to.equal('all');
  });

  it('a port list: declared listed ports keep their listener, the other listed ports go to 15006, nothing else is captured', () => {
    const listed = { ...opts, inboundPorts: [[8080, 15100]] as [number, number][], includeInboundPorts: [8080, 7000, 7001], excludeInboundPorts: [] };
    const inbound = redirectRules(listed, 4).split('\n').filter((l) => l.startsWith('-A OUTRIGGER_INBOUND'));
    expect(inbound).to.deep.equal([
      '-A OUTRIGGER_INBOUND -p tcp --dport 15021 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp --dport 15000 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15100',
      '-A OUTRIGGER_INBOUND -p tcp --dport 15001 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp --dport 15006 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp --dport 15100:15199 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp --dport 7000 -j REDIRECT --to-ports 15006',
      '-A OUTRIGGER_INBOUND -p tcp --dport 7001 -j REDIRECT --to-ports 15006',
    ]);
    expect(inboundCatchAll(listed)).to.deep.equal([7000, 7001]);
  });

  it('no catch-all (an empty list, or only declared ports listed): the declared ports only, as before the catch-all', () => {
    for (const includeInboundPorts of [[], [8080, 9090]]) {
      const o = { ...opts, includeInboundPorts };
      const r = redirectRules(o, 4);
      expect(r).not.to.contain('15006');
      expect(r, 'exclusions only matter before a catch-all').not.to.contain('--dport 8081');
      expect(r).to.contain('--dport 9090 -j REDIRECT --to-ports 15101');
      expect(inboundCatchAll(o)).to.deep.equal([]);
    }
  });

  it('exempts the proxy UID, loopback, excluded ports and ranges of the right family before redirecting outbound', () => {
    const v4 = redirectRules(opts, 4).split('\n');
    const at = (s: string): number => v4.indexOf(s);
    const redirect = at('-A OUTRIGGER_OUTPUT -j OUTRIGGER_REDIRECT');
    for (const rule of [
      '-A OUTRIGGER_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A OUTRIGGER_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A OUTRIGGER_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A OUTRIGGER_OUTPUT -d 169.254.169.254/32 -j RETURN',
    ]) {
      expect(at(rule), rule).to.be.within(0, redirect - 1);
    }
    expect(v4.join('\n')).not.to.contain('fd00::/8');
    const v6 = redirectRules(opts, 6);
    expect(v6).to.contain('-A OUTRIGGER_OUTPUT -d ::1/128 -j RETURN');
    expect(v6).to.contain('-A OUTRIGGER_OUTPUT -d fd00::/8 -j RETURN');
    expect(v6).not.to.contain('169.254');
  });

  it('captures only the included ranges when not "*"', () => {
    const r = redirectRules({ ...opts, includeOutboundIpRanges: ['10.96.0.0/12'] }, 4);
    expect(r).to.contain('-A OUTRIGGER_OUTPUT -d 10.96.0.0/12 -j OUTRIGGER_REDIRECT');
    expect(r).not.to.contain('-A OUTRIGGER_OUTPUT -j OUTRIGGER_REDIRECT');
  });

  it('parses and rejects flag values', () => {
    expect(parseInboundPorts('8080=15100, 9090=15101')).to.deep.equal([[8080, 15100], [9090, 15101]]);
    expect(() => parseInboundPorts('8080')).to.throw(/APP=LISTENER/);
    expect(() => parseInboundPorts('8080=70000')).to.throw(/bad port/);
    expect(() => parseCidrList('10.0.0.0/8,*', false)).to.throw(/bad CIDR/);
    expect(parseCidrList('10.0.0.0/8,*', true)).to.deep.equal(['10.0.0.0/8', '*']);
    expect(parseIncludePorts(' * ')).to.equal('*');
    expect(parseIncludePorts('')).to.deep.equal([]);
    expect(parseIncludePorts('8080, 9000')).to.deep.equal([8080, 9000]);
    expect(() => parseIncludePorts('8080,*')).to.throw(/bad port/);
  });

  it('`outrigger redirect --dry-run` prints both families and touches nothing', () => {
    const bin = fileURLToPath(new URL('../../../bin/outrigger.js', import.meta.url));
    const out = execFileSync(process.execPath, [bin, 'redirect', '--dry-run', '--inbound-ports', '8080=15100'], {
      encoding: 'utf8',
      env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' },
    });
    expect(out).to.match(/^# iptables\n\*nat\n/);
    expect(out).to.contain('# ip6tables\n*nat\n');
    expect(out.match(/^COMMIT$/gm)).to.have.length(2);
    // Without --include-inbound-ports (the args of a pod injected before the catch-all): no catch-all.
    expect(out).not.to.contain('15006');
  });

  it('`outrigger redirect --dry-run` with the catch-all prints it in both families; bad inbound flags exit 2', () => {
    const bin = fileURLToPath(new URL('../../../bin/outrigger.js', import.meta.url));
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [bin, 'redirect', '--dry-run', ...args], { encoding: 'utf8', env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' } });
    const r = run('--inbound-ports', '8080=15100', '--include-inbound-ports', '*', '--exclude-inbound-ports', '8081');
    expect(r.status, r.stderr).to.equal(0);
    for (const family of ['# iptables\n', '# ip6tables\n']) {
      const part = r.stdout.slice(r.stdout.indexOf(family)).split('COMMIT')[0]!;
      const at = (rule: string): number => part.indexOf(rule);
      expect(at('--dport 8080 -j REDIRECT --to-ports 15100'), family).to.be.greaterThan(0);
      expect(at('--dport 8081 -j RETURN')).to.be.greaterThan(at('--dport 8080 -j REDIRECT'));
      expect(at('-A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports 15006')).to.be.greaterThan(at('--dport 8081 -j RETURN'));
    }
    expect(run('--include-inbound-ports', 'all').stderr).to.contain('bad port "all"');
    expect(run('--include-inbound-ports', 'all').status).to.equal(2);
    expect(run('--inbound-port', '15006,15007').stderr).to.contain('--inbound-port must be one port');
  });
});

describe('injector: bootstrap config (inbound and outbound listeners)', () => {
  async function snapshotOf(yaml: string): Promise<{ kind: string; name: string; spec: Record<string, any> }[]> {
    const { parseDocuments } = await import('../../../src/config/documents.js');
    const { buildSnapshot } = await import('../../../src/config/loader.js');
    const parsed = parseDocuments(yaml);
    expect(parsed.ok).to.equal(true);
    if (!parsed.ok) return [];
    const snap = buildSnapshot(parsed.value);
    expect(snap.ok, JSON.stringify(!snap.ok && snap.errors)).to.equal(true);
    if (!snap.ok) return [];
    return snap.value.documents.map((d) => ({ kind: d.kind, name: d.metadata.name, spec: d.spec as Record<string, any> }));
  }
  const base = { inboundPorts: [[8080, 15100], [9090, 15101]] as [number, number][], bindHost: '::', outboundPort: 15001 };
  const isPerPort = (d: { name: string }): boolean => /^inbound-\d+$/.test(d.name);

  it('is a valid config: per captured port a listener, a route to the app and the app as default TCP cluster', async () => {
    const { inboundConfigYaml } = await import('../../../injector/inbound-config.js');
    const docs = await snapshotOf(inboundConfigYaml({ ...base, outboundPolicy: 'ALLOW_ANY' }));
    const inbound = docs.filter((d) => d.kind === 'Listener' && isPerPort(d)).map((d) => d.spec);
    expect(inbound.map((l) => [l.address.host, l.address.port, l.defaultCluster])).to.deep.equal([
      ['::', 15100, 'inbound-8080'],
      ['::', 15101, 'inbound-9090'],
    ]);
    const clusters = docs.filter((d) => d.kind === 'Cluster' && isPerPort(d)).map((d) => d.spec.endpoints[0].address.port);
    expect(clusters).to.deep.equal([8080, 9090]);
    expect(docs.map((d) => d.name), 'no catch-all unless asked for').not.to.include('inbound');
  });

  it('the inbound catch-all: Listener "inbound" on 15006 → every request and opaque TCP to an ORIGINAL_DST cluster that never routes by Host', async () => {
    const { inboundConfigYaml } = await import('../../../injector/inbound-config.js');
    const yaml = inboundConfigYaml({ ...base, inboundPort: 15006, outboundPolicy: 'ALLOW_ANY' });
    expect(yaml).to.contain('the catch-all on 15006');
    const docs = await snapshotOf(yaml);
    const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.name === name)?.spec;
    expect(find('Listener', 'inbound')).to.deep.equal({ address: { host: '::', port: 15006 }, routeConfig: 'inbound', defaultCluster: 'inbound-passthrough' });
    expect(find('RouteConfiguration', 'inbound')).to.deep.equal({
      virtualHosts: [{ name: 'any-port', domains: ['*'], routes: [{ name: 'to-original-destination', match: { prefix: '/' }, route: { cluster: 'inbound-passthrough' } }] }],
    });
    // useHostHeader: false survives normalisation (explicit presence): the inbound Host is the pod's own name.
    expect(find('Cluster', 'inbound-passthrough')).to.deep.equal({ type: 'DISCOVERY_TYPE_ORIGINAL_DST', originalDst: { useHostHeader: false } });
    // In the file: per-port listeners first, then the catch-all, then outbound.
    expect([...yaml.matchAll(/kind: Listener\nmetadata:\n  name: (\S+)/g)].map((m) => m[1])).to.deep.equal(['inbound-8080', 'inbound-9090', 'inbound', 'outbound']);
  });

  it('ALLOW_ANY: the outbound listener sends unknown HTTP (catch-all virtual host) and opaque TCP to the ORIGINAL_DST cluster', async () => {
    const { inboundConfigYaml } = await import('../../../injector/inbound-config.js');
    const docs = await snapshotOf(inboundConfigYaml({ ...base, outboundPolicy: 'ALLOW_ANY' }));
    const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.name === name)?.spec;
    expect(find('Listener', 'outbound')).to.deep.equal({
      address: { host: '::', port: 15001 },
      routeConfig: 'outbound',
      defaultCluster: 'passthrough',
    });
    expect(find('RouteConfiguration', 'outbound')).to.deep.equal({
      virtualHosts: [{ name: 'allow-any', domains: ['*'], routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: 'passthrough' } }] }],
    });
    expect(find('Cluster', 'passthrough')).to.deep.equal({ type: 'DISCOVERY_TYPE_ORIGINAL_DST', connectTimeout: '10s' });
  });

  it('REGISTRY_ONLY: the outbound listener has no catch-all and no default cluster (unknown destinations are refused)', async () => {
    const { inboundConfigYaml } = await import('../../../injector/inbound-config.js');
    const yaml = inboundConfigYaml({ ...base, inboundPorts: [], bindHost: '0.0.0.0', outboundPolicy: 'REGISTRY_ONLY' });
    expect(yaml).to.contain('outbound traffic policy REGISTRY_ONLY');
    const docs = await snapshotOf(yaml);
    expect(docs.map((d) => `${d.kind}/${d.name}`)).to.deep.equal(['Listener/outbound', 'RouteConfiguration/outbound']);
    expect(docs[0]!.spec).to.deep.equal({ address: { host: '0.0.0.0', port: 15001 }, routeConfig: 'outbound' });
    expect(docs[1]!.spec).to.deep.equal({});
  });

  it('`outrigger redirect --dry-run` refuses a bad --outbound-policy with usage (exit 2)', () => {
    const bin = fileURLToPath(new URL('../../../bin/outrigger.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'redirect', '--dry-run', '--outbound-policy', 'DENY'], {
      encoding: 'utf8',
      env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' },
    });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('--outbound-policy must be ALLOW_ANY or REGISTRY_ONLY');
  });
});
