import { expect } from 'chai';
import { editBase, errorsOf } from './helpers.js';

describe('config validation: identity fields (listener peerAuthentication, cluster tls)', () => {
  it('accepts mesh mTLS on a listener and MESH / SIMPLE clusters', () => {
    const docs = editBase((find) => {
      Object.assign(find('Listener', 'main'), { peerAuthentication: 'PEER_AUTHENTICATION_STRICT', forwardClientCert: true });
      Object.assign(find('Cluster', 'books'), { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/books', 'spiffe://cluster.local/ns/shop/*'] } });
      Object.assign(find('Cluster', 'web'), { tls: { mode: 'TLS_MODE_SIMPLE', sni: 'web.example.com' } });
    });
    expect(errorsOf(docs)).to.deep.equal([]);
  });

  it('reports contradictions with their field paths', () => {
    const docs = editBase((find) => {
      Object.assign(find('Listener', 'main'), { peerAuthentication: 'PEER_AUTHENTICATION_PERMISSIVE', tls: { certFile: '/c', keyFile: '/k' } });
      Object.assign(find('Cluster', 'books'), { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: ['books.shop.svc'], caFile: '/etc/ca.pem' } });
      Object.assign(find('Cluster', 'web'), { tls: { sni: 'web.example.com' } });
    });
    expect(errorsOf(docs)).to.deep.equal([
      'Listener/main: spec.peerAuthentication: mesh mTLS terminates TLS with the workload certificate; it cannot be combined with tls.certFile',
      'Cluster/books: spec.tls.subjectAltNames[0]: "books.shop.svc": mesh identities are SPIFFE IDs (spiffe://TRUST-DOMAIN/ns/NS/sa/SA, or a prefix ending in "*")',
      'Cluster/books: spec.tls.caFile: not used with TLS_MODE_MESH (the mesh trust bundle verifies the peer)',
      'Cluster/web: spec.tls.mode: set TLS_MODE_MESH or TLS_MODE_SIMPLE for sni, caFile or subjectAltNames to apply',
    ]);
  });

  it('refuses a SIMPLE caFile that does not exist and an unknown mode', () => {
    const docs = editBase((find) => {
      Object.assign(find('Cluster', 'books'), { tls: { mode: 'TLS_MODE_SIMPLE', caFile: '/nonexistent/ca.pem' } });
      Object.assign(find('Listener', 'main'), { peerAuthentication: 'PEER_AUTHENTICATION_SOMETIMES' });
    });
    const errs = errorsOf(docs);
    expect(errs.some((e) => e.startsWith('Cluster/books: spec.tls.caFile: file "/nonexistent/ca.pem" does not exist'))).to.equal(true);
    expect(errs.some((e) => e.startsWith('Listener/main: spec.peerAuthentication'))).to.equal(true);
  });
});
