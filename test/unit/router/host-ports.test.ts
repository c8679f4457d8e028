import { expect } from 'chai';
import { HostMatcher } from '../../../src/proxy/router/host-matcher.js';
import { checkDomain } from '../../../src/config/net-names.js';

describe('router: domains with a port', () => {
  const fail = (vi: number, di: number, m: string): never => {
    throw new Error(`${vi}/${di}: ${m}`);
  };
  const m = HostMatcher.build(
    ['cart-8080', 'cart-9090', 'cart-any', 'ip', 'v6', 'any'],
    [['cart:8080', 'cart.shop:8080'], ['cart:9090'], ['cart'], ['10.96.0.1:80'], ['[fd00::1]:80'], ['*']],
    fail,
  );

  it('a domain with a port matches only that port; one without matches any port; the ported one wins', () => {
    expect(m.select('cart:8080')).to.equal('cart-8080');
    expect(m.select('CART.Shop:8080')).to.equal('cart-8080');
    expect(m.select('cart:9090')).to.equal('cart-9090');
    expect(m.select('cart:7000')).to.equal('cart-any');
    expect(m.select('cart')).to.equal('cart-any');
    expect(m.select('cart.shop')).to.equal('any');
    expect(m.select('10.96.0.1:80')).to.equal('ip');
    expect(m.select('10.96.0.1:81')).to.equal('any');
    expect(m.select('[fd00::1]:80')).to.equal('v6');
  });

  it('validates ports in domains', () => {
    expect(checkDomain('cart:8080')).to.equal(undefined);
    expect(checkDomain('10.0.0.1:80')).to.equal(undefined);
    expect(checkDomain('[::1]:80')).to.equal(undefined);
    expect(checkDomain('cart:0')).to.match(/invalid port/);
    expect(checkDomain('cart:70000')).to.match(/invalid port/);
    expect(checkDomain('*.shop:80')).to.match(/never with "\*"/);
    expect(checkDomain('[1::2::3]:80')).to.match(/IPv6/);
  });
});
