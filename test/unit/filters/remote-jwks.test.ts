import { expect } from 'chai';
import { generateKeyPair, exportJWK, SignJWT, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { FakeClock } from '../../support/fake-clock.js';
import { RemoteJwks, KID_MISS_REFETCH_MS } from '../../../src/proxy/filters/jwt-authn/remote-jwks.js';

/** The remote JWKS cache on the fake clock: background refresh, kid-miss refetch limit, stale keys when the issuer is down. */
describe('filters: RemoteJwks', () => {
  async function key(kid: string): Promise<{ jwk: JWK; sign: () => Promise<string> }> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256' };
    return { jwk, sign: () => new SignJWT({ sub: 's' }).setProtectedHeader({ alg: 'ES256', kid }).sign(privateKey) };
  }

  function setup(initial: JWK[]) {
    const clock = new FakeClock();
    const state = { keys: initial, fetches: 0, down: false };
    const fetcher = async (): Promise<JSONWebKeySet> => {
      state.fetches++;
      if (state.down) throw new Error('connect ECONNREFUSED');
      return { keys: state.keys };
    };
    const jwks = new RemoteJwks('http://issuer/jwks', 60_000, 1000, clock, fetcher);
    return { clock, state, jwks, verify: (t: string) => jwtVerify(t, jwks.resolve) };
  }

  it('fetches once, then serves from the cache until the cache duration passes; refreshes in the background', async () => {
    const a = await key('a');
    const { clock, state, verify } = setup([a.jwk]);
    await verify(await a.sign());
    await verify(await a.sign());
    expect(state.fetches).to.equal(1);
    clock.advance(60_000);
    await verify(await a.sign()); // served from the old set while the refresh runs
    expect(state.fetches).to.equal(2);
    await verify(await a.sign());
    expect(state.fetches, 'the refreshed set is fresh again').to.equal(2);
  });

  it('refetches at most once per unknown kid per 30 s', async () => {
    const a = await key('a');
    const b = await key('b');
    const { clock, state, verify } = setup([a.jwk]);
    await verify(await a.sign());
    for (let i = 0; i < 5; i++) await verify(await b.sign()).catch(() => undefined);
    expect(state.fetches).to.equal(2);
    clock.advance(KID_MISS_REFETCH_MS);
    state.keys = [a.jwk, b.jwk];
    await verify(await b.sign());
    expect(state.fetches).to.equal(3);
  });

  it('keeps serving the last good keys while the issuer is down, retrying at most every 30 s', async () => {
    const a = await key('a');
    const { clock, state, verify } = setup([a.jwk]);
    await verify(await a.sign());
    state.down = true;
    clock.advance(120_000);
    await verify(await a.sign()); // stale, triggers a failing refresh
    await new Promise((r) => setImmediate(r));
    const after = state.fetches;
    await verify(await a.sign());
    expect(state.fetches, 'no retry before 30 s').to.equal(after);
    clock.advance(KID_MISS_REFETCH_MS);
    await verify(await a.sign());
    expect(state.fetches).to.equal(after + 1);
  });

  it('without any keys yet, an unreachable issuer fails the verification', async () => {
    const a = await key('a');
    const { state, verify } = setup([a.jwk]);
    state.down = true;
    const err = await verify(await a.sign()).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/ECONNREFUSED/);
  });
});
