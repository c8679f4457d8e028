import { expect } from 'chai';
import { review } from '../../../injector/admission.js';
import { defaultMeshConfig } from '../../../injector/mesh-config.js';

const mesh = defaultMeshConfig();
const body = (request: Record<string, unknown>): string =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', ...request } });
const pod = { metadata: { generateName: 'web-' }, spec: { containers: [{ name: 'a', image: 'a' }] } };

describe('injector: review() (AdmissionReview handling, pure)', () => {
  it('accepts application/json with parameters and any case; anything else is 415', () => {
    expect(review('application/json; charset=utf-8', body({ object: pod }), mesh, '1.28').httpStatus).to.equal(200);
    expect(review('Application/JSON', body({ object: pod }), mesh, '1.28').httpStatus).to.equal(200);
    expect(review(undefined, body({ object: pod }), mesh, '1.28').httpStatus).to.equal(415);
    expect(review('text/plain', body({ object: pod }), mesh, '1.28').outcome).to.equal('unsupported_media_type');
  });

  it('names the pod for logs: namespace from the request, generateName + *** when unnamed', () => {
    const r = review('application/json', body({ object: pod, namespace: 'shop' }), mesh, '1.28');
    expect(r).to.include({ outcome: 'injected', uid: 'u', pod: 'shop/web-***' });
  });

  it('skips what is not a core Pod CREATE without a patch', () => {
    for (const req of [{ operation: 'UPDATE' }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }, { kind: { group: 'example.com', version: 'v1', kind: 'Pod' } }]) {
      const r = review('application/json', body({ object: pod, ...req }), mesh, '1.28');
      expect(r.skipReason).to.equal('not_a_pod_create');
      expect(JSON.parse(r.body).response).to.deep.equal({ uid: 'u', allowed: true });
    }
  });

  it('answers allowed: false when the object is missing or injection throws', () => {
    const r = review('application/json', body({ object: null }), mesh, '1.28');
    expect(r.outcome).to.equal('error');
    expect(JSON.parse(r.body).response).to.deep.include({ allowed: false, status: { code: 500, message: 'outrigger injection failed: request.object is not a Pod' } });
    const thrown = review('application/json', body({ object: pod }), mesh, '1.28', () => {
      throw new Error('boom');
    });
    expect(JSON.parse(thrown.body).response.status.message).to.equal('outrigger injection failed: boom');
  });
});
