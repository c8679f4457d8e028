import { expect } from 'chai';
import { applyDocuments } from '../../../src/control/server/resource-state.js';
import { buildNodeView, NodeViewCache } from '../../../src/control/server/node-view.js';
import { globMatch } from '../../../src/control/server/selector.js';
import { EMPTY_STATE } from '../../../src/control/store/store-state.js';
import { backoffDelayMs } from '../../../src/control/client/backoff.js';
import { seededRandom } from '../../../src/core/random.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';

describe('control: scoping by selector', () => {
  const docs = [
    listener('main'),
    routes('main', [prefixRoute('/', 'web')]),
    cluster('web', [1000]),
    { ...cluster('extra', [1001]), metadata: { name: 'extra', selector: { nodeId: 'web-*', labels: { tier: 'gold' } } } },
  ];
  const applied = applyDocuments(EMPTY_STATE, { documents: docs, who: 't', nowMs: 1 }, { allowEphemeralPorts: true });

  it('a resource with a selector reaches only the nodes it selects', () => {
    if (!applied.ok) throw new Error(JSON.stringify(applied.errors));
    const gold = buildNodeView(applied.state, { id: 'web-1', cluster: 'web', labels: { tier: 'gold' } }, { allowEphemeralPorts: true });
    const other = buildNodeView(applied.state, { id: 'api-1', cluster: 'api', labels: { tier: 'gold' } }, { allowEphemeralPorts: true });
    expect([...gold.view!.byKind.get('Cluster')!.keys()]).to.deep.equal(['extra', 'web']);
    expect([...other.view!.byKind.get('Cluster')!.keys()]).to.deep.equal(['web']);
    expect(gold.view!.versions.get('Cluster')).not.to.equal(other.view!.versions.get('Cluster'));
    expect(gold.view!.versions.get('Listener')).to.equal(other.view!.versions.get('Listener'));
  });

  it('reports a bad selector with its field path and stores nothing', () => {
    const bad = { ...cluster('x', [1]), metadata: { name: 'x', selector: { nodeIdz: 'a' } } };
    const out = applyDocuments(EMPTY_STATE, { documents: [bad], who: 't', nowMs: 1 }, {});
    expect(out.ok).to.equal(false);
    if (!out.ok) expect(out.errors[0]).to.include({ document: 'Cluster/x', path: 'metadata.selector.nodeIdz' });
  });

  it('keeps a node\'s last good view only while the node has an open stream', () => {
    if (!applied.ok) throw new Error(JSON.stringify(applied.errors));
    const cache = new NodeViewCache({ allowEphemeralPorts: true }, () => {});
    const a = { id: 'web-1', cluster: 'web', labels: { tier: 'gold' } };
    const a2 = { id: 'web-1', cluster: 'web', labels: { tier: 'gold' } }; // the same node on a second stream
    cache.retain(a);
    cache.retain(a2);
    const v = cache.get(applied.state, a);
    expect(v).not.to.equal(undefined);
    expect(cache.get(applied.state, a2)).to.equal(v); // one view per selection
    expect(cache.size).to.equal(1);
    cache.release(a);
    expect(cache.size).to.equal(1); // the node still has a stream
    cache.release(a2);
    expect(cache.size).to.equal(0);
    // A node without an open stream is served but not remembered.
    expect(cache.get(applied.state, { id: 'api-1', cluster: 'api', labels: {} })).not.to.equal(undefined);
    expect(cache.size).to.equal(0);
  });

  it('globs', () => {
    expect(globMatch('web-*', 'web-12')).to.equal(true);
    expect(globMatch('web-?', 'web-12')).to.equal(false);
    expect(globMatch('a.b', 'axb')).to.equal(false);
  });
});

describe('control: reconnect backoff', () => {
  it('doubles up to the cap with jitter in [d/2, d]', () => {
    const r = seededRandom(7);
    for (let n = 0; n < 12; n++) {
      const d = Math.min(30_000, 250 * 2 ** n);
      const got = backoffDelayMs(n, r);
      expect(got).to.be.within(d / 2, d);
    }
  });
});
