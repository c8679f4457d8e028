import { expect } from 'chai';
import { ConnectError, Code } from '@connectrpc/connect';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import type { JsonObject } from '../../src/config/snapshot.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
import { waitFor } from '../support/wait.js';
import { client, startCpSidecar, startTestControlPlane, type TestCpSidecar } from '../support/control-harness.js';
import { backendOf } from '../support/backend-of.js';

type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

describe('control plane: apply → sidecar traffic', function () {
  let a: Started<unknown>, b: Started<unknown>;
  let cp: CP;
  let sc: TestCpSidecar | undefined;
  before(async () => {
    a = await startH1Echo('a');
    b = await startH1Echo('b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });
  beforeEach(async () => {
    cp = await startTestControlPlane();
  });
  afterEach(async () => {
    await sc?.close();
    sc = undefined;
    await cp.close();
  });

  it('applies documents and traffic follows them', async () => {
    const api = client(cp.address);
    await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
    sc = await startCpSidecar({ address: cp.address, nodeId: 'n1' });
    const port = sc.port();
    expect(await backendOf(port)).to.equal('a');
    await api.apply({ documents: J(cluster('web', [b.port])) });
    await waitFor(async () => (await backendOf(port)) === 'b', 'traffic to b');
    const status = await api.status({});
    expect(status.sidecars).to.have.length(1);
    await waitFor(async () => (await api.status({})).sidecars[0]!.types.every((t) => t.state === 1), 'SYNCED');
  });

  it('rejects an invalid document with its field path and stores nothing', async () => {
    const api = client(cp.address);
    const bad = cluster('web', [a.port]);
    (bad.spec.endpoints as { address: { port: number } }[])[0]!.address.port = 0;
    const v = await api.validate({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), bad) });
    expect(v.valid).to.equal(false);
    expect(v.errors.map((e) => `${e.document}: ${e.path}`)).to.include('Cluster/web: spec.endpoints[0].address.port');
    let err: ConnectError | undefined;
    try {
      await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), bad) });
    } catch (e) {
      err = e as ConnectError;
    }
    expect(err?.code).to.equal(Code.InvalidArgument);
    expect(err?.rawMessage).to.contain('spec.endpoints[0].address.port');
    expect((await api.list({})).resources).to.have.length(0);
  });

  it('refuses unauthenticated calls and changes nothing', async () => {
    for (const token of ['', 'wrong']) {
      const api = client(cp.address, token);
      let err: ConnectError | undefined;
      try {
        await api.apply({ documents: J(cluster('web', [a.port])) });
      } catch (e) {
        err = e as ConnectError;
      }
      expect(err?.code).to.equal(Code.Unauthenticated);
    }
    expect((await client(cp.address).list({})).resources).to.have.length(0);
  });
});
