import { expect } from 'chai';
import { RouteTable } from '../../../src/proxy/router/index.js';
import { normalizeHost } from '../../../src/proxy/router/host-matcher.js';
import { r, req, routeConfig } from './fixtures.js';

function hosts(vhosts: Array<[name: string, domains: string[]]>): RouteTable {
  return RouteTable.compile(
    routeConfig({
      virtualHosts: vhosts.map(([name, domains]) => ({ name, domains, routes: [r(name, { prefix: '/' })] })),
    }),
  );
}

const vhostOf = (t: RouteTable, host: string) => t.match(req('/', { host }))?.route.virtualHost;

describe('router: virtual host selection', () => {
  const t = hosts([
    ['any', ['*']],
    ['wild', ['*.example.com']],
    ['deeper', ['*.api.example.com']],
    ['exact', ['api.example.com', 'www.example.com']],
  ]);

  it('prefers an exact domain over any wildcard', () => {
    expect(vhostOf(t, 'api.example.com')).to.equal('exact');
    expect(vhostOf(t, 'www.example.com')).to.equal('exact');
  });

  it('takes the longest "*.suffix" wildcard, which covers one or more labels', () => {
    expect(vhostOf(t, 'a.example.com')).to.equal('wild');
    expect(vhostOf(t, 'a.b.example.com')).to.equal('wild');
    expect(vhostOf(t, 'v1.api.example.com')).to.equal('deeper');
  });

  it('does not let "*.example.com" match "example.com" itself; "*" takes it', () => {
    expect(vhostOf(t, 'example.com')).to.equal('any');
    expect(vhostOf(t, 'other.org')).to.equal('any');
  });

  it('ignores the port and the case of the host', () => {
    expect(vhostOf(t, 'API.Example.COM:8443')).to.equal('exact');
    expect(vhostOf(t, 'X.EXAMPLE.com:80')).to.equal('wild');
  });

  it('keeps bracketed IPv6 literals whole and strips their port', () => {
    const v6 = hosts([['v6', ['[::1]']]]);
    expect(vhostOf(v6, '[::1]:15001')).to.equal('v6');
    expect(vhostOf(v6, '[::1]')).to.equal('v6');
    expect(normalizeHost('::1')).to.equal('::1');
  });

  it('returns no match when no virtual host takes the host', () => {
    const only = hosts([['exact', ['api.example.com']]]);
    expect(only.match(req('/', { host: 'other.example.com' }))).to.equal(undefined);
    expect(only.match(req('/', { host: '' }))).to.equal(undefined);
  });

  it('normalises configured domains the same way (case); a configured port must match (discovery issue)', () => {
    const t2 = hosts([['a', ['Api.Example.com:8080']]]);
    expect(vhostOf(t2, 'api.example.com:8080')).to.equal('a');
    expect(vhostOf(t2, 'API.example.com:8080')).to.equal('a');
    expect(vhostOf(t2, 'api.example.com')).to.equal(undefined);
    expect(vhostOf(t2, 'api.example.com:9090')).to.equal(undefined);
  });
});
