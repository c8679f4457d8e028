import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parseAllDocuments, stringify } from 'yaml';
import { parseMeshConfig } from '../../injector/mesh-config.js';
import { inject } from '../../injector/inject.js';
import { startFakeKubeApi, type FakeKubeApi, type SecretObject } from '../support/fake-kube-api.js';
import { helmBinary } from '../support/helm-binary.js';
import { makeTestPki } from '../support/injector-pki.js';

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
    meshConfig: { nativeSidecars: 'enabled', outboundTrafficPolicy: 'REGISTRY_ONLY', includeInboundPorts: [8080, 9090] },
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
        // Four ConfigMaps: the mesh config and the three Grafana dashboards.
        'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'ConfigMap', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'PersistentVolumeClaim',
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

    it('RBAC: read-only watch of EndpointSlices, Services, Pods, Namespaces, TokenReviews (workload identity); only its own Secrets and ConfigMap', () => {
      const cr = find(objs, 'ClusterRole')!;
      const read = cr.rules.filter((r: { resources: string[] }) => !r.resources.includes('tokenreviews'));
      const verbs = new Set(read.flatMap((r: { verbs: string[] }) => r.verbs));
      expect([...verbs].sort()).to.deep.equal(['get', 'list', 'watch']);
      expect(read.flatMap((r: { resources: string[] }) => r.resources).sort()).to.deep.equal(['endpointslices', 'namespaces', 'pods', 'services']);
      // The one write: TokenReviews, to check sidecars' service-account tokens.
      expect(cr.rules.find((r: { resources: string[] }) => r.resources.includes('tokenreviews'))).to.deep.equal({ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] });
      const args = find(objs, 'Deployment')!.spec.template.spec.containers[0].args as string[];
      expect(args.join(' ')).to.include('--trust-domain cluster.local --cert-ttl 24h --token-review');
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
      expect(find(objs, 'HorizontalPodAutoscaler')!.spec.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name: control.metadata.name });
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
      expect(mesh.includeInboundPorts).to.deep.equal([8080, 9090]);
    });
  });

  it('dashboards as grafana_dashboard ConfigMaps; with alerts.enabled, the SLO rules as a PrometheusRule', () => {
    const off = template('outrigger', 'outrigger-system', { dashboards: { enabled: false } });
    expect(off.filter((o) => o.metadata.labels?.grafana_dashboard)).to.deep.equal([]);
    expect(find(off, 'PrometheusRule')).to.equal(undefined);
    const on = template('outrigger', 'outrigger-system', { alerts: { enabled: true, labels: { release: 'prom' } }, dashboards: { labels: { team: 'mesh' } } });
    const dashboards = on.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    expect(dashboards.map((d) => Object.keys(d.data)[0]).sort()).to.deep.equal(['control-plane.json', 'golden-signals.json', 'sidecar-health.json']);
    for (const d of dashboards) {
      expect(d.metadata.labels?.team).to.equal('mesh');
      expect(JSON.parse(Object.values(d.data)[0] as string).uid).to.match(/^outrigger-/);
    }
    const rule = find(on, 'PrometheusRule', 'outrigger-slo')!;
    expect(rule.apiVersion).to.equal('monitoring.coreos.com/v1');
    expect(rule.metadata.labels?.release).to.equal('prom');
    expect(rule.spec.groups.map((g: { name: string }) => g.name)).to.deep.equal(['outrigger-slo-recording', 'outrigger-slo-alerts', 'outrigger-sidecar']);
  });

  it('N control-plane replicas on Redis without the HPA: replicas as given, rolling updates, a PDB, no PVC', async () => {
    const objs = template('outrigger', 'outrigger-system', { control: { replicas: 3, store: { redisUrl: 'redis://redis.data.svc:6379' } } });
    for (const o of objs) await validate(o);
    const dep = find(objs, 'Deployment', 'outrigger-control')!;
    expect(dep.spec.replicas).to.equal(3);
    expect(dep.spec.strategy).to.equal(undefined);
    expect(dep.spec.template.spec.volumes.map((v: { name: string }) => v.name)).to.not.include('store');
    expect(find(objs, 'PersistentVolumeClaim')).to.equal(undefined);
    expect(find(objs, 'HorizontalPodAutoscaler')).to.equal(undefined);
    const pdb = find(objs, 'PodDisruptionBudget', 'outrigger-control')!;
    expect(pdb.spec.minAvailable).to.equal(1);
    expect(matches(pdb.spec.selector, dep.spec.template.metadata.labels)).to.equal(true);
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

  /*
   * The `lookup` branch of the templates (reuse the installed webhook
   * certificate and control token) against a fake API server on 127.0.0.1:
   * `helm template --dry-run=server` (Helm >= 3.13) lets lookup query the
   * cluster of the kubeconfig, and renders without installing anything.
   */
  describe('lookup against an API server (helm template --dry-run=server, fake API server)', () => {
    const NS = 'outrigger-system';
    const TLS = 'outrigger-webhook-tls';
    const TOKEN = 'outrigger-control-token';
    let api: FakeKubeApi;
    let home: string;
    let first: Obj[];

    /** helm against the fake API server: async (the server runs in this process), clean env. */
    const helmServer = (args: string[]): Promise<{ status: number; out: string; err: string }> =>
      new Promise((resolve, reject) => {
        const env = {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          XDG_CONFIG_HOME: join(home, '.config'),
          XDG_CACHE_HOME: join(home, '.cache'),
          XDG_DATA_HOME: join(home, '.local/share'),
          HELM_CACHE_HOME: join(home, 'helm-cache'),
          HELM_CONFIG_HOME: join(home, 'helm-config'),
          HELM_DATA_HOME: join(home, 'helm-data'),
          KUBECONFIG: api.kubeconfig,
          NO_PROXY: '127.0.0.1',
        };
        const child = spawn(helm, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.stderr.on('data', (d: Buffer) => (err += d));
        child.on('error', reject);
        child.on('close', (code) => resolve({ status: code ?? -1, out, err }));
      });
    async function render(values?: unknown): Promise<Obj[]> {
      const args = ['template', 'outrigger', CHART, '--namespace', NS, '--dry-run=server'];
      if (values) args.push('-f', valuesFile(`server-${Math.random().toString(16).slice(2)}`, values));
      const r = await helmServer(args);
      expect(r.status, r.err).to.equal(0);
      return parseAllDocuments(r.out).map((d) => d.toJSON() as Obj).filter((o) => o !== null);
    }
    /** The webhook Secret and caBundle of a render, checked to be one coherent CA + serving pair. */
    function webhookTls(objs: Obj[]): Record<'ca.crt' | 'tls.crt' | 'tls.key', string> {
      const secret = find(objs, 'Secret', TLS)!;
      expect(secret, 'webhook Secret rendered').to.not.equal(undefined);
      expect(Object.keys(secret.data).sort()).to.deep.equal(['ca.crt', 'tls.crt', 'tls.key']);
      const mwc = find(objs, 'MutatingWebhookConfiguration')!;
      for (const w of mwc.webhooks) expect(w.clientConfig.caBundle, w.name).to.equal(secret.data['ca.crt']);
      const pem = (k: string): string => Buffer.from(secret.data[k], 'base64').toString('utf8');
      const ca = new X509Certificate(pem('ca.crt'));
      const cert = new X509Certificate(pem('tls.crt'));
      expect(cert.verify(ca.publicKey), 'tls.crt signed by ca.crt').to.equal(true);
      expect(cert.checkHost(`outrigger-injector.${NS}.svc`)).to.equal(`outrigger-injector.${NS}.svc`);
      expect(cert.checkPrivateKey(createPrivateKey(pem('tls.key'))), 'tls.key matches tls.crt').to.equal(true);
      return secret.data;
    }
    /** What the API server would hand back for a rendered object. */
    const installed = (o: Obj): SecretObject => ({ metadata: { ...o.metadata, namespace: NS }, type: o.type, data: { ...o.data } });

    before(async () => {
      home = join(dir, 'server-home');
      mkdirSync(home);
      api = await startFakeKubeApi(dir);
      // Nothing installed yet: the first render, which later tests install as the existing Secrets.
      first = await render();
    });
    after(() => api?.close());

    it('no Secret installed: lookup asks the API server (404), a fresh CA and certificate are rendered, caBundle = ca.crt', async () => {
      for (const o of first) await validate(o);
      const tls = webhookTls(first);
      expect(new X509Certificate(Buffer.from(tls['ca.crt'], 'base64')).subject).to.include('CN=outrigger-webhook-ca');
      expect(api.secretGets(NS, TLS), 'GET of the webhook Secret').to.equal(1);
      expect(api.secretGets(NS, TOKEN), 'GET of the token Secret').to.equal(1);
      expect(api.requests.filter((r) => r.path.endsWith(`/secrets/${TLS}`)).map((r) => r.status)).to.deep.equal([404]);
      // Only reads, all authenticated and routed: nothing was installed, nothing unexpected asked.
      expect(api.requests.every((r) => r.method === 'GET' && r.status !== 401 && r.status !== 405)).to.equal(true);
      expect(api.unrouted().map((r) => r.path)).to.deep.equal([]);
    });

    it('an installed Secret is reused byte for byte: tls.crt, tls.key, ca.crt and both caBundles (no rotation on upgrade)', async () => {
      const before = webhookTls(first);
      api.putSecret(installed(find(first, 'Secret', TLS)!));
      api.putSecret(installed(find(first, 'Secret', TOKEN)!));
      const gets = api.secretGets(NS, TLS);
      const again = await render();
      expect(api.secretGets(NS, TLS), 'the lookup GET reached the server').to.equal(gets + 1);
      expect(api.requests.filter((r) => r.path.endsWith(`/secrets/${TLS}`)).at(-1)!.status).to.equal(200);
      expect(webhookTls(again)).to.deep.equal(before);
      for (const w of find(again, 'MutatingWebhookConfiguration')!.webhooks) expect(w.clientConfig.caBundle).to.equal(before['ca.crt']);
      expect(find(again, 'Secret', TOKEN)!.data.token, 'control token kept too').to.equal(find(first, 'Secret', TOKEN)!.data.token);
      // Not an accident of deterministic generation: without the Secret the CA changes.
      api.deleteSecret(NS, TLS);
      expect(webhookTls(await render())['ca.crt']).to.not.equal(before['ca.crt']);
    });

    it('reuses an installed Secret Helm did not generate (openssl CA, EC PKCS#8 key) unchanged', async () => {
      const pki = makeTestPki();
      try {
        const leaf = pki.issue(`outrigger-injector.${NS}.svc`, 'injector');
        const data = {
          'ca.crt': Buffer.from(pki.caCert).toString('base64'),
          'tls.crt': Buffer.from(leaf.cert).toString('base64'),
          'tls.key': readFileSync(leaf.keyFile).toString('base64'),
        };
        api.putSecret({ metadata: { name: TLS, namespace: NS }, type: 'kubernetes.io/tls', data });
        expect(webhookTls(await render())).to.deep.equal(data);
      } finally {
        api.deleteSecret(NS, TLS);
        pki.cleanup();
      }
    });

    it('a present but malformed Secret is regenerated as a whole, never rendered into caBundle', async () => {
      const good = webhookTls(first);
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const cases: Record<string, Record<string, string> | undefined> = {
        'no data': undefined,
        'ca.crt missing': { 'tls.crt': good['tls.crt'], 'tls.key': good['tls.key'] },
        'tls.crt missing': { 'ca.crt': good['ca.crt'], 'tls.key': good['tls.key'] },
        'tls.key empty': { ...good, 'tls.key': '' },
        // A real API server only returns base64 in data; the template must still not paste anything else into YAML.
        'ca.crt not base64': { ...good, 'ca.crt': '%%% not base64 %%%' },
        'ca.crt not PEM': { ...good, 'ca.crt': b64('hello') },
        'tls.crt holds the key': { ...good, 'tls.crt': good['tls.key'] },
        'tls.key holds a certificate': { ...good, 'tls.key': good['ca.crt'] },
        'ca.crt truncated PEM': { ...good, 'ca.crt': b64(Buffer.from(good['ca.crt'], 'base64').toString('utf8').split('\n').slice(0, 3).join('\n')) },
      };
      const failures: string[] = [];
      for (const [name, data] of Object.entries(cases)) {
        api.putSecret({ metadata: { name: TLS, namespace: NS }, type: 'kubernetes.io/tls', ...(data ? { data } : {}) });
        const gets = api.secretGets(NS, TLS);
        try {
          const objs = await render();
          expect(api.secretGets(NS, TLS), 'lookup GET').to.equal(gets + 1);
          const tls = webhookTls(objs); // coherent: caBundle = ca.crt, which signed tls.crt, whose key is tls.key
          for (const k of ['ca.crt', 'tls.crt', 'tls.key'] as const) expect(tls[k], `${k} regenerated`).to.not.equal(good[k]);
        } catch (e) {
          failures.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
        }
      }
      api.deleteSecret(NS, TLS);
      expect(failures).to.deep.equal([]);
    });

    it('a lookup the API server refuses (403) or fails (500) fails the render instead of rotating the CA', async () => {
      api.putSecret(installed(find(first, 'Secret', TLS)!));
      try {
        for (const [code, msg] of [[403, /forbidden/i], [500, /internalerror|error on the server|prevented the request/i]] as const) {
          api.failSecret(NS, TLS, code);
          const r = await helmServer(['template', 'outrigger', CHART, '--namespace', NS, '--dry-run=server']);
          expect(r.status, `${code}`).to.not.equal(0);
          expect(r.err, `${code}`).to.match(msg);
          expect(r.out, `${code}`).to.not.match(/caBundle/);
        }
      } finally {
        api.failSecret(NS, TLS, null);
        api.deleteSecret(NS, TLS);
      }
    });

    it('with cert-manager the webhook Secret is never looked up (an installed one is ignored)', async () => {
      api.putSecret(installed(find(first, 'Secret', TLS)!));
      const gets = { tls: api.secretGets(NS, TLS), token: api.secretGets(NS, TOKEN) };
      const objs = await render({ webhook: { certManager: { enabled: true } } });
      expect(api.secretGets(NS, TOKEN), 'the server was asked (token Secret)').to.equal(gets.token + 1);
      expect(api.secretGets(NS, TLS), 'no lookup of the webhook Secret').to.equal(gets.tls);
      expect(find(objs, 'Secret', TLS)).to.equal(undefined);
      expect(find(objs, 'Certificate')!.spec.secretName).to.equal(TLS);
      for (const w of find(objs, 'MutatingWebhookConfiguration')!.webhooks) expect(w.clientConfig.caBundle).to.equal(undefined);
      api.deleteSecret(NS, TLS);
    });
  });

  it('control.tls: the control plane serves TLS from the Secret, and the mesh config carries the CA injected sidecars verify it with', async () => {
    const pki = makeTestPki();
    const objs = template('outrigger', 'outrigger-system', { control: { tls: { secret: 'control-tls', caBundle: pki.caCert } } });
    for (const o of objs) await validate(o);
    const dep = find(objs, 'Deployment', 'outrigger-control')!;
    const c = dep.spec.template.spec.containers.find((x: { name: string }) => x.name === 'control');
    const args: string[] = c.args;
    expect(args[args.indexOf('--tls-cert') + 1]).to.equal('/etc/outrigger/control-tls/tls.crt');
    expect(args[args.indexOf('--tls-key') + 1]).to.equal('/etc/outrigger/control-tls/tls.key');
    const mount = c.volumeMounts.find((m: { name: string }) => m.name === 'control-tls');
    expect(mount.mountPath).to.equal('/etc/outrigger/control-tls');
    expect(dep.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'control-tls').secret.secretName).to.equal('control-tls');
    const mesh = parseMeshConfig(find(objs, 'ConfigMap', 'outrigger-mesh')!.data['mesh.yaml']);
    expect(new X509Certificate(mesh.controlPlaneCaBundle).fingerprint256).to.equal(new X509Certificate(pki.caCert).fingerprint256);
    // What the injector then does with it: the bundle inline, --control-plane-ca env:…
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app' }] } };
    const proxy = inject(pod as never, mesh, '1.28').pod.spec!.containers.find((x) => x.name === 'outrigger-proxy')!;
    expect(proxy.args).to.include('env:OUTRIGGER_CONTROL_PLANE_CA');
    // Default: h2c, no TLS flags, no bundle.
    const plain = template('outrigger', 'outrigger-system');
    const plainControl = find(plain, 'Deployment', 'outrigger-control')!.spec.template.spec.containers.find((x: { name: string }) => x.name === 'control');
    expect(plainControl.args).not.to.include('--tls-cert');
    rmSync(pki.dir, { recursive: true, force: true });
    expect(parseMeshConfig(find(plain, 'ConfigMap', 'outrigger-mesh')!.data['mesh.yaml']).controlPlaneCaBundle).to.equal('');
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
    expect(fails({ meshConfig: { includeInboundPorts: ['*', 8080] } })).to.match(/includeInboundPorts/);
    expect(fails({ control: { autoscaling: { enabled: true } } })).to.match(/autoscaling|redisUrl|enabled/);
    // The injector would refuse this mesh config at startup (and the proxy this level).
    expect(fails({ meshConfig: { logLevel: 'verbose' } })).to.match(/logLevel/);
    // A TLS control plane that sidecars could not verify; a bundle that is not PEM.
    expect(fails({ control: { tls: { secret: 'control-tls' } } })).to.match(/caBundle/);
    expect(fails({ control: { tls: { secret: 'control-tls', caBundle: '/etc/ca.crt' } } })).to.match(/caBundle/);
  });
});
