import { expect } from 'chai';
import { systemClock } from '../../../src/core/clock.js';
import { FileStateStore } from '../../../src/control/store/file-store.js';
import { RedisStateStore } from '../../../src/control/store/redis-store.js';
import type { CaStore } from '../../../src/control/store/state-store.js';
import { openCa } from '../../../src/control/server/ca/open-ca.js';
import { CaHolder } from '../../../src/control/server/ca/ca-holder.js';
import { RotationOrderError } from '../../../src/control/server/ca/root-rotation.js';
import { RedisServer } from '../../support/redis-server.js';
import { collector, removeDir, tempDir } from '../../support/control-harness.js';

const clock = systemClock();
const logger = collector([]);

/** Two replicas sharing `a` and `b` (views of one store): a rotation step on one is what the other signs with after a refresh. */
async function replicasAgree(a: CaStore, b: CaStore): Promise<void> {
  const ca1 = await openCa({ trustDomain: 'cluster.local', store: a, clock, logger });
  const ca2 = await openCa({ trustDomain: 'cluster.local', store: b, clock, logger });
  expect(ca2.bundle).to.deep.equal(ca1.bundle);
  const one = new CaHolder(ca1, a, clock, logger);
  const two = new CaHolder(ca2, b, clock, logger);
  const staged = await one.rotate('stage');
  expect(staged.bundle).to.have.length(2);
  expect((await two.refresh()).bundle).to.deep.equal(staged.bundle);
  expect(await two.phase()).to.equal('staged');
  // Out of order, from either replica.
  await two.rotate('drop').then(() => expect.fail('drop before commit'), (e: unknown) => expect(e).to.be.instanceOf(RotationOrderError));
  const committed = await two.rotate('commit');
  expect((await one.refresh()).signerRootFingerprint).to.equal(committed.signerRootFingerprint);
  expect(committed.signerRootFingerprint).to.not.equal(ca1.signerRootFingerprint);
  await one.rotate('drop');
  const final = await two.refresh();
  expect(final.bundle).to.have.length(1);
  expect(await two.phase()).to.equal('stable');
  // Compare-and-set: a stale expected value writes nothing.
  const text = (await a.loadCa())!;
  expect(await b.replaceCa('stale', '{}')).to.equal(false);
  expect(await a.loadCa()).to.equal(text);
}

describe('identity: the stored CA across replicas (root rotation steps)', function () {
  this.timeout(30_000);

  it('file store', async () => {
    const dir = await tempDir('outrigger-ca-store-');
    try {
      const store = await FileStateStore.open(dir);
      await replicasAgree(store.ca, store.ca);
    } finally {
      await removeDir(dir);
    }
  });

  it('redis store: two replicas', async () => {
    const dir = await tempDir('outrigger-ca-redis-');
    const redis = await RedisServer.start(dir);
    const a = await RedisStateStore.open(redis.url);
    const b = await RedisStateStore.open(redis.url);
    try {
      await replicasAgree(a.ca, b.ca);
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
      await removeDir(dir);
    }
  });
});
