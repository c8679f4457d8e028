import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parseAllDocuments, stringify } from 'yaml';
import { parseMeshConfig } from '../../injector/mesh-config.js';
import { helmBinary } from '../support/helm-binary.js';

const CHART = fileURLToPath(new URL('../../charts/outrigger', import.meta.url));

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> }; [k: string]: any };
interface Expr { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }

/** Label-selector semantics (matchExpressions), to check who the webhook is called for. */
function matches(sel: { matchExpressions?: Expr[]; matchLabels?: Record<string, string> } | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const ok = e.operator === 'In' ? has && e.values!.includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !e.values!.includes(labels[e.key]!)
      : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

/** Validates one rendered object against the Kubernetes schemas (kubernetes-models). */
async function validate(o: Obj): Promise<void> {
  if (o.apiVersion.startsWith('cert-manager.io/')) {
    // Not a built-in kind: only its envelope is checked here.
    expect(['Issuer', 'Certificate']).to.include(o.kind);
    expect(o.metadata.name).to.be.a('string');
    return;
  }
  const mod = (await import(`kubernetes-models/${o.apiVersion}`)) as Record<string, new (v: unknown) => { validate(): void }>;
  const Model = mod[o.kind];
  expect(Model, `kubernetes-models has ${o.apiVersion} ${o.kind}`).to.be.a('function');
  new Model!(o).validate();
}

describe('Helm chart charts/outrigger (real helm binary)', function () {
  this.timeout(60_000);
  let helm: string;
  let dir: string;

  const valuesFile = (name: string, values: unknown): string => {
    const f = join(dir, `${name}.yaml`);
    writeFileSync(f, stringify(values));
    return f;
  };
  const run = (args: string[]): { status: number; out: string; err: string } => {
    const r = spawnSync(helm, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data') } });
    return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
  };
  function template(release: string, ns: string, values?: unknown): Obj[] {
    const args = ['template', release, CHART, '--namespace', ns];
    if (values) args.push('-f', valuesFile(`${release}-values`, values));
    const r = run(args);
    expect(r.status, r.err).to.equal(0);
    return parseAllDocuments(r.out).map((d) => d.toJSON() as Obj).filter((o) => o !== null);
  }
  const find = (objs: Obj[], kind: string, name?: string): Obj | undefined => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));

  before(() => {
    helm = helmBinary();
    expect(execFileSync(helm, ['version', '--short'], { encoding: 'utf8' })).to.match(/^v3\./);
    dir = mkdtempSync(join(tmpdir(), 'outrigger-chart-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  const nonDefault = {
    control: { replicas: 3, store: { redisUrl: 'redis://redis.data.svc:6379' }, autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 6 } },
    injector: { mode: 'separate', replicas: 3 },
    webhook: { failurePolicy: 'Ignore', timeoutSeconds: 5, excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', 'cert-manager'] },
    meshConfig: { nativeSidecars: 'enabled', outboundTrafficPolicy: 'REGISTRY_ONLY' },
    networkPolicy: { enabled: true },
    image: { repository: 'registry.example.com/outrigger', tag: '0.2.0' },
  };

  it('passes helm lint --strict with default and non-default values', () => {
    const d = run(['lint', '--strict', CHART]);
    expect(d.status, d.out + d.err).to.equal(0);
    const n = run(['lint', '--strict', CHART, '-f', valuesFile('lint-non-default', nonDefault)]);
    expect(n.status, n.out + n.err).to.equal(0);
    const c = run(['lint', '--strict', CHART, '-f', valuesFile('lint-cert-manager', { webhook: { certManager: { enabled: true, issuerRef: { name: 'ca', kind: 'ClusterIssuer' } } } })]);
    expect(c.status, c.out + c.err).to.equal(0);
  });

  describe('default values', () => {
    let objs: Obj[];
    before(() => (objs = template('outrigger', 'outrigger-system')));

    it('renders only objects that validate against the Kubernetes schemas', async () => {
      expect(objs.map((o) => o.kind).sort()).to.deep.equal([
        'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'PersistentVolumeClaim',
        'Role', 'RoleBinding', 'Secret', 'Secret', 'Service', 'Service', 'ServiceAccount',
      ]);
      for (const o of objs) await validate(o);
    });

    it('runs one control-plane replica on the file store (PVC, Recreate) with the injector embedded', () => {
      const dep = find(objs, 'Deployment', 'outrigger-control')!;
      expect(dep.spec.replicas).to.equal(1);
      expect(dep.spec.strategy).to.deep.equal({ type: 'Recreate' });
      const containers = dep.spec.template.spec.containers as { name: string; args: string[] }[];
      expect(containers.map((c) => c.name)).to.deep.equal(['control', 'injector']);
      expect(containers[0]!.args.slice(0, 3)).to.deep.equal(['control', '--store', 'file:/var/lib/outrigger-control']);
      expect(dep.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'store').persistentVolumeClaim.claimName).to.equal(find(objs, 'PersistentVolumeClaim')!.metadata.name);
      expect(dep.spec.template.metadata.labels['outrigger.io/inject']).to.equal('false');
      const svc = find(objs, 'Service', 'outrigger-injector')!;
      expect(svc.spec.ports).to.deep.equal([{ name: 'https-webhook', port: 443, targetPort: 'https-webhook', protocol: 'TCP' }]);
      expect(matches({ matchLabels: svc.spec.selector }, dep.spec.template.metadata.labels)).to.equal(true);
      const control = find(objs, 'Service', 'outrigger-control')!;
      expect(control.spec.ports.map((p: { port: number }) => p.port)).to.deep.equal([15010, 15014]);
      expect(find(objs, 'PodDisruptionBudget'), 'no PDB on a single replica').to.equal(undefined);
    });

    it('hands the injector a mesh config that parses and points at the control Service', () => {
      const cm = find(objs, 'ConfigMap', 'outrigger-mesh')!;
      const mesh = parseMeshConfig(cm.data['mesh.yaml']);
      expect(mesh.controlPlaneAddress).to.equal('outrigger-control.outrigger-system.svc:15010');
      expect(mesh.proxyImage).to.equal('ghcr.io/outrigger/outrigger:0.1.0');
      expect(mesh.ignoredNamespaces).to.deep.equal(['kube-system', 'kube-public', 'kube-node-lease', 'outrigger-system']);
    });

    it('webhook: CREATE pods, v1 reviews, no side effects, Fail, IfNeeded, /inject on the injector Service', () => {
      const mwc = find(objs, 'MutatingWebhookConfiguration')!;
      expect(mwc.webhooks).to.have.length(2);
      for (const w of mwc.webhooks) {
        expect(w).to.include({ sideEffects: 'None', failurePolicy: 'Fail', reinvocationPolicy: 'IfNeeded', timeoutSeconds: 10 });
        expect(w.admissionReviewVersions).to.deep.equal(['v1']);
        expect(w.rules).to.deep.equal([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
        expect(w.clientConfig.service).to.deep.equal({ name: 'outrigger-injector', namespace: 'outrigger-system', path: '/inject', port: 443 });
      }
    });

    it('webhook selectors: enabled namespaces or opted-in pods, never the excluded namespaces', () => {
      const mwc = find(objs, 'MutatingWebhookConfiguration')!;
      const calledFor = (nsName: string, nsLabels: Record<string, string>, podLabels: Record<string, string>): string[] =>
        mwc.webhooks
          .filter((w: any) => matches(w.namespaceSelector, { 'kubernetes.io/metadata.name': nsName, ...nsLabels }) && matches(w.objectSelector, podLabels))
          .map((w: any) => w.name as string);
      const enabled = { 'outrigger-injection': 'enabled' };
      expect(calledFor('shop', enabled, { app: 'web' })).to.deep.equal(['namespace.injector.outrigger.io']);
      expect(calledFor('shop', enabled, { 'outrigger.io/inject': 'false' })).to.deep.equal([]);
      expect(calledFor('shop', enabled, { 'outrigger.io/inject': 'true' })).to.deep.equal(['namespace.injector.outrigger.io']);
      expect(calledFor('plain', {}, { app: 'web' })).to.deep.equal([]);
      expect(calledFor('plain', {}, { 'outrigger.io/inject': 'true' })).to.deep.equal(['object.injector.outrigger.io']);
      expect(calledFor('off', { 'outrigger-injection': 'disabled' }, { 'outrigger.io/inject': 'true' })).to.deep.equal([]);
      for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'outrigger-system']) {
        expect(calledFor(ns, enabled, { 'outrigger.io/inject': 'true' }), ns).to.deep.equal([]);
        expect(calledFor(ns, {}, { 'outrigger.io/inject': 'true' }), ns).to.deep.equal([]);
      }
    });

    it('caBundle is the CA that signed the serving certificate, which names the injector Service', () => {
      const mwc = find(objs, 'MutatingWebhookConfiguration')!;
      const secret = find(objs, 'Secret', 'outrigger-webhook-tls')!;
      expect(secret.type).to.equal('kubernetes.io/tls');
      const pem = (k: string): string => Buffer.from(secret.data[k], 'base64').toString('utf8');
      for (const w of mwc.webhooks) expect(w.clientConfig.caBundle).to.equal(secret.data['ca.crt']);
      const ca = new X509Certificate(pem('ca.crt'));
      const cert = new X509Certificate(pem('tls.crt'));
      expect(ca.ca).to.equal(true);
      expect(cert.verify(ca.publicKey)).to.equal(true);
      expect(cert.checkHost('outrigger-injector.outrigger-system.svc')).to.equal('outrigger-injector.outrigger-system.svc');
      expect(cert.checkPrivateKey(createPrivateKey(pem('tls.key')))).to.equal(true);
      // The injector mounts exactly this Secret.
      const dep = find(objs, 'Deployment', 'outrigger-control')!;
      expect(dep.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'webhook-tls').secret.secretName).to.equal('outrigger-webhook-tls');
    });

    it('RBAC: read-only watch of EndpointSlices, Services, Pods, Namespaces; only its own Secrets and ConfigMap', () => {
      const cr = find(objs, 'ClusterRole')!;
      const verbs = new Set(cr.rules.flatMap((r: { verbs: string[] }) => r.verbs));
      expect([...verbs].sort()).to.deep.equal(['get', 'list', 'watch']);
      expect(cr.rules.flatMap((r: { resources: string[] }) => r.resources).sort()).to.deep.equal(['endpointslices', 'namespaces', 'pods', 'services']);
      const role = find(objs, 'Role')!;
      for (const r of role.rules) expect(r.resourceNames, 'scoped by name').to.be.an('array').that.is.not.empty;
    });
  });

  describe('non-default values', () => {
    let objs: Obj[];
    before(() => (objs = template('mesh', 'mesh-system', nonDefault)));

    it('renders only valid objects: Redis store with HPA and PDB, separate injector with PDB, NetworkPolicy', async () => {
      for (const o of objs) await validate(o);
      expect(find(objs, 'PersistentVolumeClaim')).to.equal(undefined);
      const control = find(objs, 'Deployment', 'mesh-outrigger-control')!;
      expect(control.spec.replicas, 'the HPA owns replicas').to.equal(undefined);
      expect(control.spec.strategy).to.equal(undefined);
      expect(control.spec.template.spec.containers.map((c: { name: string }) => c.name)).to.deep.equal(['control']);
      expect(control.spec.template.spec.containers[0].args.slice(0, 3)).to.deep.equal(['control', '--store', 'redis://redis.data.svc:6379']);
      expect(control.spec.template.spec.containers[0].image).to.equal('registry.example.com/outrigger:0.2.0');
      expect(find(objs, 'HorizontalPodAutoscaler')!.spec).to.include({ minReplicas: 3, maxReplicas: 6 });
      const injector = find(objs, 'Deployment', 'mesh-outrigger-injector')!;
      expect(injector.spec.replicas).to.equal(3);
      expect(objs.filter((o) => o.kind === 'PodDisruptionBudget').map((o) => o.metadata.name).sort()).to.deep.equal(['mesh-outrigger-control', 'mesh-outrigger-injector']);
      const svc = find(objs, 'Service', 'mesh-outrigger-injector')!;
      expect(matches({ matchLabels: svc.spec.selector }, injector.spec.template.metadata.labels)).to.equal(true);
      expect(matches({ matchLabels: svc.spec.selector }, control.spec.template.metadata.labels)).to.equal(false);
      expect(find(objs, 'NetworkPolicy')).to.not.equal(undefined);
    });

    it('webhook failurePolicy, timeout and excluded namespaces follow the values (release namespace always excluded)', () => {
      const mwc = find(objs, 'MutatingWebhookConfiguration')!;
      for (const w of mwc.webhooks) {
        expect(w).to.include({ failurePolicy: 'Ignore', timeoutSeconds: 5 });
        const notIn = w.namespaceSelector.matchExpressions.find((e: Expr) => e.key === 'kubernetes.io/metadata.name');
        expect(notIn.values).to.deep.equal(['kube-system', 'kube-public', 'kube-node-lease', 'cert-manager', 'mesh-system']);
      }
    });

    it('mesh config carries the overrides and this release\'s address and image', () => {
      const mesh = parseMeshConfig(find(objs, 'ConfigMap', 'mesh-outrigger-mesh')!.data['mesh.yaml']);
      expect(mesh).to.include({
        nativeSidecars: 'enabled',
        outboundTrafficPolicy: 'REGISTRY_ONLY',
        controlPlaneAddress: 'mesh-outrigger-control.mesh-system.svc:15010',
        proxyImage: 'registry.example.com/outrigger:0.2.0',
      });
    });
  });

  it('with cert-manager: a Certificate for the Service, caBundle injected by cert-manager, no generated Secret', async () => {
    const objs = template('outrigger', 'outrigger-system', { webhook: { certManager: { enabled: true } } });
    for (const o of objs) await validate(o);
    expect(find(objs, 'Secret', 'outrigger-webhook-tls')).to.equal(undefined);
    const cert = find(objs, 'Certificate')!;
    expect(cert.spec.secretName).to.equal('outrigger-webhook-tls');
    expect(cert.spec.dnsNames).to.include('outrigger-injector.outrigger-system.svc');
    expect(cert.spec.issuerRef).to.deep.equal({ name: 'outrigger-selfsigned', kind: 'Issuer' });
    expect(find(objs, 'Issuer')!.spec).to.deep.equal({ selfSigned: {} });
    const mwc = find(objs, 'MutatingWebhookConfiguration')!;
    expect(mwc.metadata.annotations!['cert-manager.io/inject-ca-from']).to.equal('outrigger-system/outrigger-webhook');
    for (const w of mwc.webhooks) expect(w.clientConfig.caBundle).to.equal(undefined);
  });

  it('refuses values the schema or the templates reject', () => {
    const fails = (values: unknown): string => {
      const r = run(['template', 'x', CHART, '-f', valuesFile(`bad-${Math.random().toString(16).slice(2)}`, values)]);
      expect(r.status, 'helm template should fail').to.not.equal(0);
      return r.err;
    };
    expect(fails({ control: { replicas: 2 } })).to.match(/replicas|redisUrl/);
    expect(fails({ webhook: { failurePolicy: 'Maybe' } })).to.match(/failurePolicy/);
    expect(fails({ injector: { mode: 'sidecar' } })).to.match(/mode/);
    expect(fails({ meshConfig: { proxyImag: 'x' } })).to.match(/proxyImag/);
    expect(fails({ control: { autoscaling: { enabled: true } } })).to.match(/autoscaling|redisUrl|enabled/);
  });
});
