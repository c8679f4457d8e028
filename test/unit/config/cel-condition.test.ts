import { expect } from 'chai';
import { compileCondition } from '../../../src/config/cel-condition.js';

/** The compile-time check that decides whether rbac waits for the first request message. */
describe('CEL conditions: reading request.message', () => {
  const reads = (src: string): boolean => {
    const c = compileCondition(src);
    if (!c.ok) throw new Error(c.error);
    return c.readsMessage;
  };

  it('is seen in selections, indexes, macros and bare uses of request', () => {
    expect(reads("request.message.shelf.theme == 'x'")).to.equal(true);
    expect(reads("request['message'].size() > 0")).to.equal(true);
    expect(reads('has(request.message)')).to.equal(true);
    expect(reads("jwt.claims.sub == 'a' && request.message.items.exists(i, i.id == 1)")).to.equal(true);
    expect(reads("'message' in request")).to.equal(true);
  });

  it('is not seen where only headers, path or other roots are read (no waiting, no cost)', () => {
    expect(reads("request.headers['x-message'] == 'message'")).to.equal(false);
    expect(reads("request['path'].startsWith('/v1')")).to.equal(false);
    expect(reads("jwt.claims.message == 'hi' && source.address != ''")).to.equal(false);
  });

  it('evaluates over the decoded message; a missing message is an error (fail closed)', () => {
    const c = compileCondition("request.message.shelf.theme.startsWith('public')");
    if (!c.ok) throw new Error(c.error);
    const base = { headers: {}, path: '/p', method: 'POST', host: 'h' };
    const attrs = (message?: unknown) => ({ request: message === undefined ? base : { ...base, message }, source: { address: '', principal: '' }, jwt: { claims: {} } });
    expect(c.condition(attrs({ shelf: { theme: 'public-1' } }))).to.equal(true);
    expect(c.condition(attrs({ shelf: { theme: 'secret' } }))).to.equal(false);
    expect(c.condition(attrs())).to.be.instanceOf(Error);
  });
});
