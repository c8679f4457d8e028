import { expect } from 'chai';
import { cidrList, templateRegex } from '../../../src/proxy/filters/rbac/matchers.js';
import { claimAt } from '../../../src/proxy/filters/jwt-authn/jwt-authn-filter.js';
import { matchKey, parseDigest, parseKeyFile } from '../../../src/proxy/filters/api-keys/key-set.js';
import { createHash } from 'node:crypto';

describe('filters: rbac matchers, claims, key sets', () => {
  it('route templates as anchored regexes', () => {
    const re = templateRegex('/v1/{name=shelves/*}/books/*', 'at');
    expect(re.test('/v1/shelves/1/books/2')).to.equal(true);
    expect(re.test('/v1/shelves/1/books/2/x')).to.equal(false);
    expect(re.test('/v1/shelves/books/2')).to.equal(false);
    const rest = templateRegex('/files/**', 'at');
    expect(['/files', '/files/a', '/files/a/b.txt'].map((p) => rest.test(p))).to.deep.equal([true, true, true]);
    expect(rest.test('/filesystem')).to.equal(false);
    expect(() => templateRegex('/a/**/b', 'p.template')).to.throw('p.template: "**" must be the last segment');
  });

  it('CIDRs for IPv4 and IPv6; bad ones throw with the path', () => {
    expect(cidrList('10.0.0.0/8', 'at').check('10.1.2.3', 'ipv4')).to.equal(true);
    expect(cidrList('::1', 'at').check('::1', 'ipv6')).to.equal(true);
    expect(cidrList('fd00::/8', 'at').check('fe80::1', 'ipv6')).to.equal(false);
    expect(() => cidrList('10.0.0.0/40', 'x.cidr')).to.throw('x.cidr: "10.0.0.0/40" is not a CIDR');
  });

  it('claims by dotted path; a claim whose name holds a dot wins', () => {
    const c = { realm: { roles: ['a'] }, 'realm.roles': 'flat', sub: 's' };
    expect(claimAt(c, 'realm.roles')).to.equal('flat');
    expect(claimAt({ realm: { roles: ['a'] } }, 'realm.roles')).to.deep.equal(['a']);
    expect(claimAt(c, 'sub.x')).to.equal(undefined);
  });

  it('key files and constant-time matching by digest', () => {
    const d = (k: string) => createHash('sha256').update(k).digest('hex');
    const keys = parseKeyFile(`# comment\n\nalice:${d('a-key')}\n bob : ${d('b-key')} \n`, 'keys.txt');
    expect(keys.map((k) => k.name)).to.deep.equal(['alice', 'bob']);
    expect(matchKey(keys, 'b-key')).to.equal('bob');
    expect(matchKey(keys, 'c-key')).to.equal(undefined);
    expect(() => parseKeyFile('carol:nothex', 'keys.txt')).to.throw('keys.txt:1.sha256: must be 64 hex digits');
    expect(() => parseDigest('', d('x'), 'keys[0]')).to.throw('keys[0].name: required');
  });
});
