import { existsSync } from 'node:fs';
import { TlsMode, type Cluster } from '../gen/outrigger/config/v1/cluster_pb.js';
import { PeerAuthentication, type Listener } from '../gen/outrigger/config/v1/listener_pb.js';
import type { Report } from './report.js';

/** Mesh mTLS on a listener (docs/security.md). */
export function checkListenerIdentity(l: Listener, report: Report): void {
  const mesh = l.peerAuthentication === PeerAuthentication.PERMISSIVE || l.peerAuthentication === PeerAuthentication.STRICT;
  if (!mesh) return;
  if (l.tls && (l.tls.certFile !== '' || l.tls.keyFile !== '')) {
    report('spec.peerAuthentication', 'mesh mTLS terminates TLS with the workload certificate; it cannot be combined with tls.certFile');
  }
  if (l.opaque) report('spec.peerAuthentication', 'opaque listeners are not detected, so they cannot terminate mesh mTLS');
}

/** A cluster's upstream TLS (docs/security.md). */
export function checkClusterTls(c: Cluster, report: Report): void {
  const t = c.tls;
  if (!t) return;
  if (t.mode === TlsMode.MESH) {
    t.subjectAltNames.forEach((n, i) => {
      if (!n.startsWith('spiffe://')) report(`spec.tls.subjectAltNames[${i}]`, `"${n}": mesh identities are SPIFFE IDs (spiffe://TRUST-DOMAIN/ns/NS/sa/SA, or a prefix ending in "*")`);
    });
    if (t.caFile !== '') report('spec.tls.caFile', 'not used with TLS_MODE_MESH (the mesh trust bundle verifies the peer)');
  } else if (t.mode === TlsMode.SIMPLE) {
    if (t.caFile !== '' && !existsSync(t.caFile)) report('spec.tls.caFile', `file "${t.caFile}" does not exist`);
  } else if (t.sni !== '' || t.caFile !== '' || t.subjectAltNames.length > 0) {
    report('spec.tls.mode', 'set TLS_MODE_MESH or TLS_MODE_SIMPLE for sni, caFile or subjectAltNames to apply');
  }
}
