import { expect } from 'chai';
import { inject, type InjectionStatus } from '../../../injector/inject.js';
import { inboundConfigYaml } from '../../../injector/inbound-config.js';
import { defaultMeshConfig, parseMeshConfig, supportsNativeSidecars } from '../../../injector/mesh-config.js';
import { ANNOTATIONS, ENV, type Container, type Pod } from '../../../injector/pod-types.js';
import { CASES, applyTo, checkGolden, loadCase, strayFixtures, validatePod } from '../../support/injector-golden.js';

const mesh = defaultMeshConfig();

const envOf = (c: Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;
const proxyOf = (pod: Pod): Container =>
  [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers].find((c) => c.name === 'outrigger-proxy')!;

describe('injector: inject() golden table', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.skip ? `skipped (${c.skip})` : 'patch applies, matches golden, validates'}`, () => {
      const pod = loadCase(c.name);
      const before = structuredClone(pod);
      const r = inject(pod, mesh, c.k8sVersion, { namespace: c.namespace });
      expect(pod, 'input not mutated').to.deep.equal(before);
      expect(r.skipReason).to.equal(c.skip);
      if (c.skip) expect(r.patch).to.deep.equal([]);
      const injected = applyTo(pod, r.patch);
      checkGolden(c.name, injected);
      validatePod(injected);
      // Injecting the injected pod again changes nothing (reinvocationPolicy: IfNeeded).
      const again = inject(injected, mesh, c.k8sVersion, { namespace: c.namespace });
      expect(again.patch).to.deep.equal([]);
      if (!c.skip) expect(again.skipReason).to.equal('already_injected');
    });
  }

  it('has no stale fixtures without a case', () => {
    expect(strayFixtures()).to.deep.equal([]);
  });
});

describe('injector: inject() behaviour', () => {
  it('non-native: proxy first among containers with a postStart wait-ready hook; init first among init containers', () => {
    const r = inject(loadCase('probes-init'), mesh, '1.28');
    const spec = r.pod.spec!;
    expect(spec.initContainers!.map((c) => c.name)).to.deep.equal(['outrigger-init', 'migrate']);
    expect(spec.containers.map((c) => c.name)).to.deep.equal(['outrigger-proxy', 'ledger', 'log-shipper']);
    expect(spec.containers[0]!.lifecycle).to.deep.equal({ postStart: { exec: { command: ['outrigger', 'wait-ready', '--timeout', '5m'] } } });
    expect(spec.containers[0]!.restartPolicy).to.equal(undefined);
  });

  it('native (1.29+): proxy right after outrigger-init with restartPolicy Always and a startup probe', () => {
    const r = inject(loadCase('probes-init'), mesh, '1.29');
    const spec = r.pod.spec!;
    expect(spec.initContainers!.map((c) => c.name)).to.deep.equal(['outrigger-init', 'outrigger-proxy', 'migrate']);
    expect(spec.containers.map((c) => c.name)).to.deep.equal(['ledger', 'log-shipper']);
    const proxy = spec.initContainers![1]!;
    expect(proxy.restartPolicy).to.equal('Always');
    expect(proxy.startupProbe).to.include.keys('httpGet');
    expect(proxy.lifecycle).to.equal(undefined);
    const status = JSON.parse(r.pod.metadata!.annotations![ANNOTATIONS.status]!) as InjectionStatus;
    expect(status).to.deep.equal({ initContainers: ['outrigger-init', 'outrigger-proxy'], containers: [], volumes: ['outrigger-podinfo', 'outrigger-state', 'outrigger-token'], native: true });
  });

  it('native mode: auto by version, forced by mesh config, overridden by annotation', () => {
    expect(supportsNativeSidecars('1.28')).to.equal(false);
    expect(supportsNativeSidecars('v1.29.0')).to.equal(true);
    expect(supportsNativeSidecars('1.33+')).to.equal(true);
    expect(supportsNativeSidecars(undefined)).to.equal(false);
    const pod = loadCase('generate-name');
    const isNative = (p: Pod): boolean => proxyOf(p).restartPolicy === 'Always';
    expect(isNative(inject(pod, mesh, undefined).pod)).to.equal(false);
    expect(isNative(inject(pod, { ...mesh, nativeSidecars: 'enabled' }, undefined).pod)).to.equal(true);
    expect(isNative(inject(pod, { ...mesh, kubernetesVersion: '1.30' }, undefined).pod)).to.equal(true);
    expect(isNative(inject(pod, { ...mesh, nativeSidecars: 'disabled' }, '1.33').pod)).to.equal(false);
    const annotated = { ...pod, metadata: { ...pod.metadata, annotations: { [ANNOTATIONS.nativeSidecar]: 'true' } } };
    expect(isNative(inject(annotated, mesh, '1.20').pod)).to.equal(true);
  });

  it('rewrites HTTP, TCP and gRPC probes to the status port and keeps the originals in an env var', () => {
    const r = inject(loadCase('probes-init'), mesh, '1.28');
    const ledger = r.pod.spec!.containers.find((c) => c.name === 'ledger')!;
    expect(ledger.readinessProbe).to.deep.equal({
      initialDelaySeconds: 3,
      httpGet: { path: '/app-health/ledger/readyz', port: 15021, scheme: 'HTTP' },
    });
    expect(ledger.livenessProbe!.httpGet!.path).to.equal('/app-health/ledger/livez');
    expect(ledger.livenessProbe!.failureThreshold).to.equal(5);
    expect(ledger.startupProbe!.httpGet!.path).to.equal('/app-health/ledger/startupz');
    const shipper = r.pod.spec!.containers.find((c) => c.name === 'log-shipper')!;
    expect(shipper.livenessProbe).to.deep.equal({ exec: { command: ['/bin/true'] } });
    const probes = JSON.parse(envOf(proxyOf(r.pod), ENV.appProbes)!) as Record<string, unknown>;
    expect(probes).to.deep.equal({
      '/app-health/ledger/readyz': {
        httpGet: { path: '/ready', port: 8443, scheme: 'HTTPS', httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] },
        timeoutSeconds: 1,
      },
      '/app-health/ledger/livez': { grpc: { port: 50051, service: 'ledger.v1.Ledger' }, timeoutSeconds: 1 },
      '/app-health/ledger/startupz': { tcpSocket: { port: 50051 }, timeoutSeconds: 1 },
    });
  });

  it('captures declared TCP ports inbound, each to its own listener, minus excluded and reserved ports', () => {
    const pod: Pod = {
      metadata: { name: 'p', annotations: { [ANNOTATIONS.excludeInboundPorts]: '9000' } },
      spec: {
        containers: [
          { name: 'a', image: 'a', ports: [{ containerPort: 9090 }, { containerPort: 8080 }, { containerPort: 53, protocol: 'UDP' }] },
          { name: 'b', image: 'b', ports: [{ containerPort: 9000 }, { containerPort: 15021 }, { containerPort: 8080 }] },
        ],
      },
    };
    const r = inject(pod, mesh, '1.28');
    expect(envOf(proxyOf(r.pod), ENV.inboundPorts)).to.equal('8080=15100,9090=15101');
    const init = r.pod.spec!.initContainers![0]!;
    expect(init.args).to.include.members(['--inbound-ports', '8080=15100,9090=15101']);
    expect(r.warnings.join('\n')).to.match(/15021.*reserved/);
  });

  it('inbound catch-all by default: "*" and the excluded ports go to outrigger-init', () => {
    const pod: Pod = {
      metadata: { name: 'p', annotations: { [ANNOTATIONS.excludeInboundPorts]: '9000, 9001' } },
      spec: { containers: [{ name: 'a', image: 'a', ports: [{ containerPort: 8080 }, { containerPort: 9000 }] }] },
    };
    const args = inject(pod, { ...mesh, excludeInboundPorts: [7000] }, '1.28').pod.spec!.initContainers![0]!.args!.join(' ');
    expect(args).to.contain('--inbound-ports 8080=15100 --include-inbound-ports * --exclude-inbound-ports 7000,9000,9001 ');
  });

  it('outrigger.io/include-inbound-ports: a list captures exactly those ports (declared: own listener; others: 15006), minus excluded and reserved', () => {
    const pod = (include: string | undefined, exclude = '9000'): Pod => ({
      metadata: {
        name: 'p',
        annotations: { [ANNOTATIONS.excludeInboundPorts]: exclude, ...(include === undefined ? {} : { [ANNOTATIONS.includeInboundPorts]: include }) },
      },
      spec: { containers: [{ name: 'a', image: 'a', ports: [{ containerPort: 8080 }, { containerPort: 9090 }, { containerPort: 9000 }] }] },
    });
    const initArgs = (p: Pod, m = mesh) => {
      const r = inject(p, m, '1.28');
      return { args: r.pod.spec!.initContainers![0]!.args!, env: envOf(proxyOf(r.pod), ENV.inboundPorts), warnings: r.warnings };
    };
    const listed = initArgs(pod('7000, 8080,9000,15021'));
    expect(listed.env, '9090 is declared but not listed: not captured').to.equal('8080=15100');
    expect(listed.args.join(' ')).to.contain('--inbound-ports 8080=15100 --include-inbound-ports 7000,8080 --exclude-inbound-ports 9000 ');
    expect(listed.warnings).to.deep.equal(['outrigger.io/include-inbound-ports: port 15021 is reserved by the sidecar and not captured']);

    // "" (Istio's empty includeInboundPorts): nothing captured inbound.
    const none = initArgs(pod(''));
    expect(none.env).to.equal('');
    expect(none.args).not.to.include.members(['--inbound-ports', '--include-inbound-ports']);

    // The mesh config's default, and the annotation over it.
    const meshList = { ...mesh, includeInboundPorts: [9090] };
    expect(initArgs(pod(undefined), meshList).args.join(' ')).to.contain('--inbound-ports 9090=15100 --include-inbound-ports 9090 ');
    expect(initArgs(pod('*'), meshList).args.join(' ')).to.contain('--inbound-ports 8080=15100,9090=15101 --include-inbound-ports * ');

    // Nothing usable: a warning and the mesh default (a typo does not turn capture off); "*" wins over ports.
    const typo = initArgs(pod('http'), meshList);
    expect(typo.args.join(' ')).to.contain('--include-inbound-ports 9090 ');
    expect(typo.warnings).to.deep.equal([
      'outrigger.io/include-inbound-ports: ignored "http" (not a port)',
      'outrigger.io/include-inbound-ports: no port in "http"; using the mesh config\'s',
    ]);
    const star = initArgs(pod('*,80'));
    expect(star.args.join(' ')).to.contain('--include-inbound-ports * ');
    expect(star.warnings).to.have.length(1);
  });

  it('passes the outbound traffic policy to outrigger-init (the bootstrap it writes) and the proxy; the proxy always reads that bootstrap', () => {
    const pod: Pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a' }] } };
    for (const policy of ['ALLOW_ANY', 'REGISTRY_ONLY'] as const) {
      const r = inject(pod, { ...mesh, outboundTrafficPolicy: policy }, '1.28');
      const init = r.pod.spec!.initContainers![0]!;
      // No declared ports: no inbound capture, but the outbound listener is still written and read.
      expect(init.args).not.to.include('--inbound-ports');
      expect(init.args!.join(' ')).to.contain(`--inbound-config /var/lib/outrigger/inbound.yaml --outbound-policy ${policy}`);
      expect(proxyOf(r.pod).args!.join(' ')).to.contain('--config /var/lib/outrigger/inbound.yaml');
      expect(envOf(proxyOf(r.pod), ENV.outboundPolicy)).to.equal(policy);
    }
  });

  it('ignores bad annotation values with a warning instead of failing the pod', () => {
    const pod: Pod = {
      metadata: { name: 'p', annotations: { [ANNOTATIONS.excludeOutboundPorts]: '80,http', [ANNOTATIONS.excludeOutboundIpRanges]: '10.0.0.0/33', [ANNOTATIONS.rewriteAppProbes]: 'yes' } },
      spec: { containers: [{ name: 'a', image: 'a' }] },
    };
    const r = inject(pod, mesh, '1.28');
    expect(r.warnings).to.have.length(3);
    const args = r.pod.spec!.initContainers![0]!.args!;
    expect(args.join(' ')).to.contain('--exclude-outbound-ports 80');
    expect(args).not.to.include('--exclude-outbound-ip-ranges');
  });

  it('a bad log level or resource quantity annotation is ignored with a warning (they would crash the proxy or get the pod rejected)', () => {
    const pod: Pod = {
      metadata: {
        name: 'p',
        annotations: {
          [ANNOTATIONS.logLevel]: 'verbose',
          [ANNOTATIONS.proxyCpu]: 'lots',
          [ANNOTATIONS.proxyMemory]: '64 Mi',
          [ANNOTATIONS.proxyCpuLimit]: '-1',
          [ANNOTATIONS.proxyMemoryLimit]: '512Mi',
        },
      },
      spec: { containers: [{ name: 'a', image: 'a' }] },
    };
    const r = inject(pod, mesh, '1.28');
    const proxy = proxyOf(r.pod);
    expect(envOf(proxy, ENV.logLevel)).to.equal('info');
    expect(proxy.resources).to.deep.equal({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '512Mi' } });
    expect(r.warnings).to.deep.equal([
      'outrigger.io/log-level: ignored "verbose" (expected trace, debug, info, warn, error, fatal or silent)',
      'outrigger.io/proxy-cpu: ignored "lots" (not a Kubernetes quantity)',
      'outrigger.io/proxy-memory: ignored "64 Mi" (not a Kubernetes quantity)',
      'outrigger.io/proxy-cpu-limit: ignored "-1" (not a Kubernetes quantity)',
    ]);
    for (const [key, value] of [[ANNOTATIONS.proxyCpu, '1.5'], [ANNOTATIONS.proxyCpu, '250m'], [ANNOTATIONS.proxyMemory, '1e9'], [ANNOTATIONS.proxyMemory, '100M']] as const) {
      const ok = inject({ ...pod, metadata: { name: 'p', annotations: { [key]: value } } }, mesh, '1.28');
      expect(ok.warnings, `${key}=${value}`).to.deep.equal([]);
    }
  });

  it('a request above its limit raises the limit to the request, with a warning (the API server rejects requests > limits)', () => {
    const annotated = (a: Record<string, string>): Pod => ({ metadata: { name: 'p', annotations: a }, spec: { containers: [{ name: 'a', image: 'a' }] } });
    // Above the mesh config's default limits (cpu 2, memory 1Gi).
    const r = inject(annotated({ [ANNOTATIONS.proxyCpu]: '2500m', [ANNOTATIONS.proxyMemory]: '2Gi' }), mesh, '1.28');
    expect(proxyOf(r.pod).resources).to.deep.equal({ requests: { cpu: '2500m', memory: '2Gi' }, limits: { cpu: '2500m', memory: '2Gi' } });
    expect(r.warnings).to.deep.equal([
      'proxy cpu request 2500m is above its limit 2; the limit is raised to 2500m',
      'proxy memory request 2Gi is above its limit 1Gi; the limit is raised to 2Gi',
    ]);
    validatePod(applyTo(annotated({ [ANNOTATIONS.proxyCpu]: '2500m', [ANNOTATIONS.proxyMemory]: '2Gi' }), r.patch));
    // A limit annotated alone, below the mesh config's request: the request follows it.
    const low = inject(annotated({ [ANNOTATIONS.proxyMemoryLimit]: '64Mi' }), mesh, '1.28');
    expect(proxyOf(low.pod).resources).to.deep.equal({ requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '2', memory: '64Mi' } });
    expect(low.warnings).to.deep.equal(['proxy memory request 128Mi is above the annotated limit 64Mi; the request is lowered to 64Mi']);
    // Both annotated and inconsistent: the limit is raised.
    const both = inject(annotated({ [ANNOTATIONS.proxyMemory]: '256Mi', [ANNOTATIONS.proxyMemoryLimit]: '64Mi' }), mesh, '1.28');
    expect((proxyOf(both.pod).resources as { limits: { memory: string } }).limits.memory).to.equal('256Mi');
    // Equal or below: unchanged, no warning.
    const same = inject(annotated({ [ANNOTATIONS.proxyMemory]: '1024Mi', [ANNOTATIONS.proxyCpu]: '2' }), mesh, '1.28');
    expect(same.warnings).to.deep.equal([]);
    expect((proxyOf(same.pod).resources as { limits: unknown }).limits).to.deep.equal({ cpu: '2', memory: '1Gi' });
  });

  it('sets kubectl.kubernetes.io/default-container to the first app container only when absent', () => {
    expect(inject(loadCase('probes-init'), mesh, '1.28').pod.metadata!.annotations![ANNOTATIONS.defaultContainer]).to.equal('ledger');
    expect(inject(loadCase('annotated'), mesh, '1.28').pod.metadata!.annotations![ANNOTATIONS.defaultContainer]).to.equal('payments');
  });

  it('node cluster: app.kubernetes.io/name, then app, then the service account', () => {
    const arg = (p: Pod): string => {
      const args = proxyOf(inject(p, mesh, '1.28').pod).args!;
      return args[args.indexOf('--node-cluster') + 1]!;
    };
    expect(arg(loadCase('probes-init'))).to.equal('ledger');
    expect(arg(loadCase('deployment-pod'))).to.equal('reviews');
    expect(arg({ spec: { serviceAccountName: 'sa1', containers: [{ name: 'a', image: 'a' }] } })).to.equal('sa1');
    expect(arg({ spec: { containers: [{ name: 'a', image: 'a' }] } })).to.equal('default');
  });

  it('skips ignored namespaces (from the object or the request) and annotation opt-out', () => {
    const pod = loadCase('generate-name');
    expect(inject(pod, mesh, '1.30', { namespace: 'kube-system' }).skipReason).to.equal('ignored_namespace');
    const annotated = { ...pod, metadata: { ...pod.metadata, annotations: { [ANNOTATIONS.inject]: 'false' } } };
    expect(inject(annotated, mesh, '1.30').skipReason).to.equal('opted_out');
  });

  it('treats a pod that still has outrigger-proxy (status annotation removed) as injected', () => {
    const injected = inject(loadCase('deployment-pod'), mesh, '1.28').pod;
    delete injected.metadata!.annotations![ANNOTATIONS.status];
    expect(inject(injected, mesh, '1.28').skipReason).to.equal('already_injected');
  });

  it('a pod (template) without metadata gets a patch that applies (regression: /metadata/annotations on no /metadata)', () => {
    const pod: Pod = { spec: { containers: [{ name: 'a', image: 'a' }] } };
    const r = inject(pod, mesh, '1.28');
    expect(r.patch[0]).to.include({ op: 'add', path: '/metadata' });
    expect(applyTo(pod, r.patch)).to.deep.equal(r.pod);
  });

  it('null lists and annotations (YAML "initContainers:" with nothing after it) get a patch that applies', () => {
    const pod = { metadata: { name: 'p', annotations: null }, spec: { initContainers: null, volumes: null, containers: [{ name: 'a', image: 'a' }] } } as unknown as Pod;
    for (const version of ['1.28', '1.30']) {
      const r = inject(pod, mesh, version);
      const out = applyTo(pod, r.patch);
      expect(out).to.deep.equal(r.pod);
      expect(out.spec!.initContainers!.map((c) => c.name)[0]).to.equal('outrigger-init');
      expect(out.spec!.volumes!.map((v) => v.name)).to.deep.equal(['outrigger-podinfo', 'outrigger-state', 'outrigger-token']);
      validatePod(out);
    }
  });

  it('throws on a pod without containers (the webhook answers allowed: false)', () => {
    expect(() => inject({ metadata: { name: 'x' }, spec: { containers: [] } }, mesh, '1.28')).to.throw(/no spec.containers/);
  });
});

describe('injector: mesh config', () => {
  it('defaults work without a file; a file overrides per field', () => {
    const m = parseMeshConfig('proxyImage: img:2\nresources:\n  limits:\n    memory: 2Gi\n');
    expect(m.proxyImage).to.equal('img:2');
    expect(m.controlPlaneAddress).to.equal('outrigger-control.outrigger-system.svc:15010');
    expect(m.resources).to.deep.equal({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '2Gi' } });
    expect(parseMeshConfig('')).to.deep.equal(defaultMeshConfig());
  });

  it('includeInboundPorts: ["*"] (default) or a list of ports', () => {
    expect(defaultMeshConfig().includeInboundPorts).to.deep.equal(['*']);
    expect(parseMeshConfig('includeInboundPorts: [8080, 9090]\n').includeInboundPorts).to.deep.equal([8080, 9090]);
    expect(parseMeshConfig('includeInboundPorts: []\n').includeInboundPorts).to.deep.equal([]);
    for (const bad of ['"*"', '["*", 80]', '[0]', '[http]']) {
      expect(() => parseMeshConfig(`includeInboundPorts: ${bad}\n`), bad).to.throw(/includeInboundPorts: expected \["\*"\] or a list of ports/);
    }
  });

  it('the proxy gets its worker count from proxyConcurrency (default 2, as Istio: the proxy cannot see a CPU quota)', () => {
    const pod: Pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'a' }] } };
    expect(envOf(proxyOf(inject(pod, defaultMeshConfig(), '1.28').pod), ENV.concurrency)).to.equal('2');
    expect(envOf(proxyOf(inject(pod, parseMeshConfig('proxyConcurrency: 4\n'), '1.28').pod), ENV.concurrency)).to.equal('4');
    expect(() => parseMeshConfig('proxyConcurrency: 0\n')).to.throw(/proxyConcurrency: expected a whole number from 1 to 1024/);
  });

  it('logLevel must be a level the proxy knows (it refuses to start otherwise)', () => {
    expect(parseMeshConfig('logLevel: debug\n').logLevel).to.equal('debug');
    expect(() => parseMeshConfig('logLevel: verbose\n')).to.throw(/logLevel: expected trace, debug, info, warn, error, fatal or silent/);
  });

  it('resources must be Kubernetes quantities', () => {
    expect(() => parseMeshConfig('resources: { requests: { cpu: lots } }\n')).to.throw(/resources: requests.cpu: "lots" is not a Kubernetes quantity/);
  });

  it('reports every unknown field and wrong type', () => {
    expect(() => parseMeshConfig('proxyImag: x\nnativeSidecars: sometimes\nexcludeInboundPorts: [0]\n')).to.throw(
      /proxyImag: unknown field[\s\S]*nativeSidecars: expected auto[\s\S]*excludeInboundPorts: expected a list of ports/,
    );
  });
});

describe('injector: workload identity (docs/security.md)', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'app', ports: [{ containerPort: 8080 }] }] } };

  it('mounts the projected token (audience outrigger), passes --sa-token-file and the mesh mTLS mode', () => {
    const mesh = { ...defaultMeshConfig(), mtlsMode: 'STRICT' as const };
    const out = inject(pod as never, mesh, '1.28');
    const spec = out.pod.spec!;
    const vol = spec.volumes!.find((v) => v.name === 'outrigger-token') as unknown as { projected: { sources: { serviceAccountToken: { audience: string } }[] } };
    expect(vol.projected.sources[0]!.serviceAccountToken.audience).to.equal('outrigger');
    const proxy = spec.containers.find((c) => c.name === 'outrigger-proxy')!;
    expect(proxy.args).to.include.members(['--sa-token-file', '/var/run/secrets/outrigger/tokens/outrigger-token']);
    const init = spec.initContainers!.find((c) => c.name === 'outrigger-init')!;
    expect(init.args!.join(' ')).to.include('--mtls-mode STRICT');
  });

  it('workloadIdentity: false leaves the token and the mode out', () => {
    const out = inject(pod as never, { ...defaultMeshConfig(), workloadIdentity: false }, '1.28');
    expect(out.pod.spec!.volumes!.map((v) => v.name)).not.to.include('outrigger-token');
    expect(JSON.stringify(out.pod.spec)).not.to.include('--sa-token-file');
    expect(JSON.stringify(out.pod.spec)).not.to.include('--mtls-mode');
  });

  it('a TLS control plane (mesh config controlPlaneCaBundle): the bundle inlined in the proxy env, --control-plane-ca env:…', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const out = inject(pod as never, { ...defaultMeshConfig(), controlPlaneCaBundle: pem }, '1.28');
    const proxy = out.pod.spec!.containers.find((c) => c.name === 'outrigger-proxy')!;
    expect(proxy.args![proxy.args!.indexOf('--control-plane-ca') + 1]).to.equal('env:OUTRIGGER_CONTROL_PLANE_CA');
    expect(proxy.env!.find((e) => e.name === 'OUTRIGGER_CONTROL_PLANE_CA')!.value).to.equal(pem);
    // The SVID then authenticates the streams over TLS; the token stays for the first certificate.
    expect(proxy.args).to.include('--sa-token-file');
    // h2c by default: neither the flag nor the variable.
    const plain = inject(pod as never, defaultMeshConfig(), '1.28');
    expect(JSON.stringify(plain.pod.spec)).not.to.include('OUTRIGGER_CONTROL_PLANE_CA');
    expect(JSON.stringify(plain.pod.spec)).not.to.include('--control-plane-ca');
  });

  it('controlPlaneCaBundle must be PEM certificates or empty', () => {
    expect(parseMeshConfig('controlPlaneCaBundle: ""\n').controlPlaneCaBundle).to.equal('');
    expect(parseMeshConfig('controlPlaneCaBundle: |\n  -----BEGIN CERTIFICATE-----\n  MIIB\n  -----END CERTIFICATE-----\n').controlPlaneCaBundle).to.include('BEGIN CERTIFICATE');
    expect(() => parseMeshConfig('controlPlaneCaBundle: /etc/ca.crt\n')).to.throw(/controlPlaneCaBundle: expected PEM certificates/);
    expect(() => parseMeshConfig('controlPlaneCaBundle: 3\n')).to.throw(/controlPlaneCaBundle: expected a string \(PEM\)/);
  });

  it('the bootstrap config gives inbound listeners the mode', () => {
    const yaml = inboundConfigYaml({ inboundPorts: [[8080, 15100]], inboundPort: 15006, bindHost: '::', outboundPort: 15001, outboundPolicy: 'ALLOW_ANY', mtls: 'PERMISSIVE' });
    expect(yaml.match(/peerAuthentication: PEER_AUTHENTICATION_PERMISSIVE/g)).to.have.length(2);
    expect(inboundConfigYaml({ inboundPorts: [[8080, 15100]], inboundPort: 15006, bindHost: '::', outboundPort: 15001, outboundPolicy: 'ALLOW_ANY' })).not.to.include('peerAuthentication');
  });
});
