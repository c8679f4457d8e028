import { expect } from 'chai';
import { Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import * as k8s from '@kubernetes/client-node';
import { startFakeTokenReviewApi, type FakeTokenReviewApi } from '../../support/fake-token-review.js';
import { startMeshControlPlane, type MeshControlPlane } from '../../support/mesh-harness.js';
import { codeOf, removeDir, tempDir } from '../../support/control-harness.js';
import { TokenReviewAuthenticator, type TokenReviewApi } from '../../../src/control/server/ca/workload-auth.js';
import { IdentityService } from '../../../src/gen/outrigger/control/v1/identity_pb.js';
import { newKeyAndCsr } from '../../../src/control/client/csr.js';

/**
 * Kubernetes service-account tokens: the control plane asks the API server
 * (TokenReview through @kubernetes/client-node, real HTTPS) who a token
 * belongs to and whether it is for audience "outrigger".
 */
describe('identity: service-account tokens checked with TokenReview', function () {
  this.timeout(20_000);
  let dir: string;
  let api: FakeTokenReviewApi;
  let cp: MeshControlPlane;

  before(async () => {
    dir = await tempDir('outrigger-tr-');
    api = await startFakeTokenReviewApi(dir, {
      'sa-web': { namespace: 'shop', serviceAccount: 'web', audiences: ['outrigger'] },
      'sa-default-aud': { namespace: 'shop', serviceAccount: 'web', audiences: ['https://kubernetes.default.svc'] },
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(api.kubeconfig);
    const reviewer = new TokenReviewAuthenticator(kc.makeApiClient(k8s.AuthenticationV1Api) as unknown as TokenReviewApi);
    cp = await startMeshControlPlane({}, { auth: reviewer });
  });
  after(async () => {
    await cp?.stop();
    await api?.close();
    await removeDir(dir);
  });

  it('issues for the token’s service account; refuses another audience and unknown tokens', async () => {
    const client = createClient(IdentityService, createGrpcTransport({ baseUrl: `http://${cp.address}` }));
    const { csrPem } = await newKeyAndCsr();
    const call = (token: string, nodeId: string) => client.createCertificate({ csr: csrPem, nodeId }, { headers: { authorization: `Bearer ${token}` } });
    const ok = await call('sa-web', 'web-7d9f.shop');
    expect(ok.spiffeId).to.equal('spiffe://cluster.local/ns/shop/sa/web');
    expect(api.reviews.at(-1)).to.deep.equal({ token: 'sa-web', audiences: ['outrigger'] });
    expect(await codeOf(call('sa-default-aud', 'web-7d9f.shop')), 'the pod’s default API token').to.equal(Code.Unauthenticated);
    expect(await codeOf(call('forged', 'web-7d9f.shop'))).to.equal(Code.Unauthenticated);
    expect(await codeOf(call('sa-web', 'web-7d9f.billing')), 'another namespace’s node id').to.equal(Code.PermissionDenied);
    const refusals = cp.logs.filter((l) => l.op === 'issue' && l.result === 'unauthenticated').map((l) => String(l.reason));
    expect(refusals.some((r) => r.includes('token not authenticated'))).to.equal(true);
  });
});
