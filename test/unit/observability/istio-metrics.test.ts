import { expect } from 'chai';
import { Registry } from 'prom-client';
import { IstioMetrics, serviceOf, serviceParts } from '../../../src/observability/istio-metrics.js';
import { workloadIdentity } from '../../../src/observability/workload.js';
import { samplesOf } from '../../support/prom-text.js';

const self = { workload: 'reviews-v1', namespace: 'shop', app: 'reviews', version: 'v1' };
const req = (authority: string) => ({ listener: 'outbound', authority, cluster: 'c', protocol: 'http1', status: 200, grpcStatus: undefined, flags: undefined, durationMs: 3, bytesIn: 0, bytesOut: 10 });

describe('Istio metrics', () => {
  it('folds the service labels past the series budget, and counts each folded observation', async () => {
    const reg = new Registry();
    const m = new IstioMetrics(reg, { self, outboundListeners: new Set(['outbound']), seriesBudget: 2 });
    m.observeRequest(req('a.shop.svc.cluster.local'));
    m.observeRequest(req('b.shop'));
    m.observeRequest(req('c.other:8080'));
    m.observeRequest(req('d.other:8080'));
    m.observeRequest(req('a.shop.svc.cluster.local'));
    const text = await reg.metrics();
    const rows = samplesOf(text, 'istio_requests_total').map((s) => [s.labels.destination_service, s.labels.destination_service_name, s.labels.destination_service_namespace, s.value]);
    expect(rows).to.deep.equal([
      ['a.shop.svc.cluster.local', 'a', 'shop', 2],
      ['b.shop', 'b', 'shop', 1],
      ['unknown', 'unknown', 'unknown', 2],
    ]);
    expect(samplesOf(text, 'outrigger_metrics_series_folded_total')[0]!.value).to.equal(2);
    const s = samplesOf(text, 'istio_requests_total')[0]!.labels;
    expect(s.reporter).to.equal('source');
    expect([s.source_workload, s.source_workload_namespace, s.source_app, s.source_version, s.source_principal]).to.deep.equal(['reviews-v1', 'shop', 'reviews', 'v1', 'unknown']);
    expect(s.destination_workload).to.equal('unknown');
    expect(s.connection_security_policy).to.equal('unknown');
  });

  it('derives the service from the authority and the workload from the pod', () => {
    expect(serviceOf('Ratings.Shop.svc.cluster.local:9080', 'c')).to.equal('ratings.shop.svc.cluster.local');
    expect(serviceOf('[::1]:80', 'c')).to.equal('[::1]');
    expect(serviceOf('', 'c')).to.equal('c');
    expect(serviceOf('', '')).to.equal('unknown');
    expect(serviceParts('10.0.0.1', 'shop')).to.deep.equal({ name: '10.0.0.1', namespace: 'unknown' });
    expect(serviceParts('ratings', 'shop')).to.deep.equal({ name: 'ratings', namespace: 'shop' });
    expect(workloadIdentity({ POD_NAME: 'reviews-v1-7d9f8c-x2k4p', POD_NAMESPACE: 'shop' }, { 'pod-template-hash': '7d9f8c', app: 'reviews', version: 'v1' })).to.deep.equal(self);
    expect(workloadIdentity({})).to.deep.equal({ workload: 'unknown', namespace: 'unknown', app: 'unknown', version: 'unknown' });
  });
});
