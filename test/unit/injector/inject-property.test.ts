import { expect } from 'chai';
import { inject } from '../../../injector/inject.js';
import { defaultMeshConfig } from '../../../injector/mesh-config.js';
import type { Container, Pod, Probe } from '../../../injector/pod-types.js';
import { applyTo, validatePod } from '../../support/injector-golden.js';

/** Small seeded generator (mulberry32): the same pods on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomPod(r: () => number, i: number): Pod {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const probe = (ports: number[]): Probe | undefined =>
    pick<Probe | undefined>([
      undefined,
      { httpGet: { path: '/h', port: pick(ports) }, periodSeconds: 3 },
      { httpGet: { path: '/h', port: 'http' } },
      { tcpSocket: { port: pick(ports) } },
      { grpc: { port: pick(ports) } },
      { exec: { command: ['true'] } },
    ]);
  const containers: Container[] = [];
  const n = 1 + Math.floor(r() * 3);
  for (let c = 0; c < n; c++) {
    const ports = Array.from({ length: Math.floor(r() * 3) }, () => pick([80, 8080, 9090, 15021, 50051, 5432]));
    const uniquePorts = [...new Set(ports)];
    const container: Container = { name: `c${c}`, image: `img${c}:1` };
    if (uniquePorts.length) container.ports = uniquePorts.map((p, k) => ({ containerPort: p, ...(k === 0 ? { name: 'http' } : {}) }));
    const withPorts = uniquePorts.length ? uniquePorts : [8080];
    const rp = probe(withPorts);
    if (rp) container.readinessProbe = rp;
    const lp = probe(withPorts);
    if (lp) container.livenessProbe = lp;
    containers.push(container);
  }
  const annotations: Record<string, string> = {};
  if (r() < 0.3) annotations['outrigger.io/exclude-inbound-ports'] = pick(['8080', '9090,80', 'x']);
  if (r() < 0.3) annotations['outrigger.io/native-sidecar'] = pick(['true', 'false']);
  if (r() < 0.2) annotations['outrigger.io/rewrite-app-probes'] = 'false';
  if (r() < 0.2) annotations['outrigger.io/include-outbound-ip-ranges'] = pick(['10.0.0.0/8', '*', 'fd00::/8,10.96.0.0/12']);
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', spec: { containers } };
  if (r() < 0.9) {
    pod.metadata = r() < 0.5 ? { generateName: `p${i}-` } : { name: `p${i}`, namespace: 'ns' };
    if (Object.keys(annotations).length) pod.metadata.annotations = annotations;
    if (r() < 0.5) pod.metadata.labels = { app: `a${i}` };
  }
  if (r() < 0.3) pod.spec!.initContainers = [{ name: 'setup', image: 'setup:1' }];
  if (r() < 0.3) pod.spec!.volumes = [{ name: 'data', emptyDir: {} }];
  return pod;
}

describe('injector: inject() properties over generated pods', () => {
  it('for 300 pods: the patch applies, gives the returned pod, validates, keeps app order, and re-injection is a no-op', () => {
    const r = rng(20261125);
    const mesh = defaultMeshConfig();
    for (let i = 0; i < 300; i++) {
      const pod = randomPod(r, i);
      const version = ['1.27', '1.29', '1.33', undefined][i % 4];
      const res = inject(pod, mesh, version, { namespace: 'ns' });
      const ctx = `pod ${i}: ${JSON.stringify(pod)}`;
      expect(res.skipReason, ctx).to.equal(undefined);
      const out = applyTo(pod, res.patch);
      expect(out, ctx).to.deep.equal(res.pod);
      validatePod(out);
      const spec = out.spec!;
      expect(spec.initContainers![0]!.name, ctx).to.equal('outrigger-init');
      const apps = spec.containers.filter((c) => c.name !== 'outrigger-proxy').map((c) => c.name);
      expect(apps, ctx).to.deep.equal(pod.spec!.containers.map((c) => c.name));
      const names = [...spec.containers, ...spec.initContainers!].map((c) => c.name);
      expect(names.filter((n) => n === 'outrigger-proxy'), ctx).to.have.length(1);
      expect(new Set(spec.volumes!.map((v) => v.name)).size, ctx).to.equal(spec.volumes!.length);
      const again = inject(out, mesh, version, { namespace: 'ns' });
      expect(again.patch, ctx).to.deep.equal([]);
    }
  });
});
