import { expect } from 'chai';
import { hash32 } from '../../../src/core/hash.js';
import { requestHash, type HashPart } from '../../../src/proxy/router/index.js';

describe('route hash policy', () => {
  const header: HashPart = { kind: 'header', name: 'x-user', terminal: false };
  const cookie: HashPart = { kind: 'cookie', name: 'session', ttlMs: 0, path: '', terminal: true };
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
});
