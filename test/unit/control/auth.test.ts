import { expect } from 'chai';
import { Code, ConnectError, createContextValues, type HandlerContext } from '@connectrpc/connect';
import { authenticate, peerKey, type Peer } from '../../../src/control/server/auth.js';

function ctx(authorization: string | undefined, peer: Peer = {}): HandlerContext {
  const requestHeader = new Headers();
  if (authorization !== undefined) requestHeader.set('authorization', authorization);
  return { requestHeader, values: createContextValues().set(peerKey, peer) } as unknown as HandlerContext;
}

function codeOf(fn: () => unknown): Code | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as ConnectError).code;
  }
}

describe('control: operator authentication (server side)', () => {
  it('a bearer token must match exactly; a verified certificate alone is enough; an unverified one is refused even with the token', () => {
    const opts = { token: 's3cret', mtls: true };
    expect(authenticate(ctx('Bearer s3cret'), opts)).to.match(/^token:[0-9a-f]{8}$/);
    expect(codeOf(() => authenticate(ctx('Bearer s3cret2'), opts))).to.equal(Code.Unauthenticated);
    expect(codeOf(() => authenticate(ctx('s3cret'), opts))).to.equal(Code.Unauthenticated);
    expect(codeOf(() => authenticate(ctx(undefined), opts))).to.equal(Code.Unauthenticated);
    expect(authenticate(ctx(undefined, { certSubject: 'alice' }), opts)).to.equal('cert:alice');
    expect(codeOf(() => authenticate(ctx('Bearer s3cret', { certError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), opts))).to.equal(Code.Unauthenticated);
    // A certificate is worth nothing when --client-ca was not given.
    expect(codeOf(() => authenticate(ctx(undefined, { certSubject: 'alice' }), { token: 's3cret', mtls: false }))).to.equal(Code.Unauthenticated);
  });

  it('an empty configured token never authenticates (a whitespace-only bearer value must not match it)', () => {
    const opts = { token: '', mtls: false };
    for (const h of ['Bearer ', 'Bearer \u00a0', 'Bearer\u00a0\u00a0', 'Bearer \t ']) {
      expect(codeOf(() => authenticate(ctx(h), opts)), JSON.stringify(h)).to.equal(Code.Unauthenticated);
    }
  });
});
