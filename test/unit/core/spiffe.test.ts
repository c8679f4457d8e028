import { expect } from 'chai';
import { checkPeerSvid, parseSpiffeId, principalMatcher, spiffeIdOf, trustDomainError, uriSans } from '../../../src/core/spiffe.js';

describe('SPIFFE IDs', () => {
  it('formats and parses mesh identities, refusing anything else', () => {
    const id = spiffeIdOf({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
    expect(id).to.equal('spiffe://cluster.local/ns/shop/sa/web');
    expect(parseSpiffeId(id)).to.deep.equal({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web' });
    for (const bad of ['spiffe://cluster.local/ns/shop', 'spiffe://Cluster/ns/a/sa/b', 'https://cluster.local/ns/a/sa/b', 'spiffe://td/ns/a/sa/b/c', 'spiffe://td/ns/A_B/sa/b']) {
      expect(parseSpiffeId(bad), bad).to.equal(undefined);
    }
    expect(trustDomainError('example.org')).to.equal(undefined);
    expect(trustDomainError('Example.org')).to.be.a('string');
  });

  it('matches principals exactly or by a "*" prefix', () => {
    expect(principalMatcher('spiffe://td/ns/shop/sa/web')('spiffe://td/ns/shop/sa/web')).to.equal(true);
    expect(principalMatcher('spiffe://td/ns/shop/sa/web')('spiffe://td/ns/shop/sa/webx')).to.equal(false);
    expect(principalMatcher('spiffe://td/ns/shop/*')('spiffe://td/ns/shop/sa/api')).to.equal(true);
    expect(principalMatcher('spiffe://td/ns/shop/*')('spiffe://td/ns/shopping/sa/api')).to.equal(false);
  });

  it('checks a peer certificate by the X.509-SVID rules', () => {
    expect(uriSans('DNS:a.b, URI:spiffe://td/ns/a/sa/b, IP Address:1.2.3.4')).to.deep.equal(['spiffe://td/ns/a/sa/b']);
    expect(checkPeerSvid('URI:spiffe://td/ns/a/sa/b', 'td')).to.deep.equal({ ok: true, id: 'spiffe://td/ns/a/sa/b' });
    expect(checkPeerSvid('URI:spiffe://other/ns/a/sa/b', 'td').ok).to.equal(false);
    expect(checkPeerSvid('URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/c/sa/d', 'td').ok, 'two URI SANs').to.equal(false);
    expect(checkPeerSvid('DNS:web', 'td').ok).to.equal(false);
    expect(checkPeerSvid(undefined, 'td').ok).to.equal(false);
    expect(checkPeerSvid('URI:spiffe://td/ns/a/sa/b', 'td', principalMatcher('spiffe://td/ns/x/*')).ok).to.equal(false);
  });
});
