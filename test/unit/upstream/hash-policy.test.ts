import { expect } from 'chai';
import { hash32 } from '../../../src/core/hash.js';
import { requestHash, type HashPart } from '../../../src/proxy/router/index.js';

describe('route hash policy', () => {
  const header: HashPart = { kind: 'header', name: 'x-user', terminal: false };
  const cookie: HashPart = { kind: 'cookie', name: 'session', ttlMs: undefined, path: '', terminal: true };
  const query: HashPart = { kind: 'queryParameter', name: 'id', terminal: false };
  const source: HashPart = { kind: 'sourceIp', terminal: false };
  const req = (headers: Record<string, string>, target = '/', clientAddress = '10.1.2.3') => ({ headers, target, clientAddress });

  it('hashes the value each part finds, and nothing when none applies', () => {
    expect(requestHash([header], req({ 'x-user': 'ann' }))).to.equal(hash32('ann'));
    expect(requestHash([cookie], req({ cookie: 'a=1; session=s42; b=2' }))).to.equal(hash32('s42'));
    expect(requestHash([query], req({}, '/p?x=1&id=9'))).to.equal(hash32('9'));
    expect(requestHash([source], req({}))).to.equal(hash32('10.1.2.3'));
    expect(requestHash([header, query], req({}, '/p'))).to.equal(undefined);
  });

  it('combines parts; a terminal part that found a value ends the list', () => {
    const both = requestHash([header, query], req({ 'x-user': 'ann' }, '/?id=9'));
    expect(both).to.not.equal(hash32('ann'));
    expect(both).to.not.equal(requestHash([header, query], req({ 'x-user': 'bob' }, '/?id=9')));
    expect(requestHash([cookie, header], req({ cookie: 'session=s', 'x-user': 'ann' }))).to.equal(hash32('s'));
    // Terminal without a value: the list goes on.
    expect(requestHash([cookie, header], req({ 'x-user': 'ann' }))).to.equal(hash32('ann'));
  });

  it('a cookie policy with a ttl generates the cookie when absent: hashed on, Set-Cookie with Max-Age and Path, one value per connection', () => {
    const sticky: HashPart = { kind: 'cookie', name: 'lb', ttlMs: 3_600_000, path: '/app', terminal: false };
    const conn = {};
    const set: string[] = [];
    const h1 = requestHash([sticky], { ...req({}), connection: conn, setCookie: (v) => set.push(v) });
    expect(set).to.have.length(1);
    const m = /^lb=([0-9a-f]{16}); Max-Age=3600; Path=\/app; HttpOnly$/.exec(set[0]!);
    expect(m, set[0]).to.not.equal(null);
    expect(h1).to.equal(hash32(m![1]!));
    // The next request on the same connection gets the same value; the client sending it back hashes the same.
    requestHash([sticky], { ...req({}), connection: conn, setCookie: (v) => set.push(v) });
    expect(set[1]).to.equal(set[0]);
    expect(requestHash([sticky], { ...req({ cookie: `lb=${m![1]}` }), setCookie: (v) => set.push(v) })).to.equal(h1);
    expect(requestHash([sticky], { ...req({ cookie: `lb="${m![1]}"` }) })).to.equal(h1);
    expect(set).to.have.length(2);
    // Another connection, another value; ttl 0 is a session cookie (no Max-Age); no ttl, no cookie.
    const other: string[] = [];
    requestHash([{ ...sticky, ttlMs: 0, path: '' }], { ...req({}), connection: {}, setCookie: (v) => other.push(v) });
    expect(other[0]).to.match(/^lb=[0-9a-f]{16}; HttpOnly$/);
    expect(other[0]!.slice(0, 19)).to.not.equal(set[0]!.slice(0, 19));
    const none: string[] = [];
    expect(requestHash([cookie], { ...req({}), setCookie: (v) => none.push(v) })).to.equal(undefined);
    expect(none).to.deep.equal([]);
  });
});
