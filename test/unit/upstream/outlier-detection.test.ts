import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom } from '../../../src/core/random.js';
import { ClusterSchema, type Cluster } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import type { AttemptOutcome } from '../../../src/proxy/upstream/endpoint-stats.js';
import { classify } from '../../../src/proxy/upstream/outlier/classify.js';
import { OutlierDetectors } from '../../../src/proxy/upstream/outlier/outlier-detectors.js';
import { FakeClock } from '../../support/fake-clock.js';

const ports = [8001, 8002, 8003, 8004];
const key = (i: number): string => `127.0.0.1:${ports[i]}`;
const ok: AttemptOutcome = { status: 200, flag: undefined, grpcStatus: undefined };
const e503: AttemptOutcome = { status: 503, flag: undefined, grpcStatus: undefined };
const connectFail: AttemptOutcome = { status: 503, flag: 'UF', grpcStatus: undefined };

function setup(outlierDetection: unknown, n = 4) {
  const c: Cluster = fromJson(ClusterSchema, {
    name: 'c',
    type: 'DISCOVERY_TYPE_STATIC',
    endpoints: ports.slice(0, n).map((port) => ({ address: { host: '127.0.0.1', port } })),
    outlierDetection,
  } as never);
  const clock = new FakeClock();
  const runtime = ClusterRuntime.build(c, undefined, { clock, random: seededRandom(3) });
  const ejected: string[] = [];
  const detectors = new OutlierDetectors(clock, (_c, ep, reason) => ejected.push(`${ep} ${reason}`));
  detectors.sync(new Map([['c', c]]), new Map([['c', runtime]]));
  const send = (i: number, o: AttemptOutcome, times = 1): void => {
    for (let t = 0; t < times; t++) runtime.beginAttempt(key(i)).end(o);
  };
  const picks = (): Set<string> => new Set(Array.from({ length: 12 }, () => runtime.pick({}).ep!.key));
  return { clock, runtime, detectors, ejected, send, picks, c };
}

describe('outlier detection', () => {
  it('classifies outcomes as Envoy does', () => {
    expect(classify(ok)).to.deep.include({ ignored: false, is5xx: false, gateway: false });
    expect(classify({ status: 500, flag: undefined, grpcStatus: undefined })).to.deep.include({ is5xx: true, gateway: false });
    expect(classify(e503)).to.deep.include({ is5xx: true, gateway: true, localOrigin: false });
    expect(classify(connectFail)).to.deep.include({ is5xx: true, gateway: true, localOrigin: true });
    expect(classify({ status: 200, flag: undefined, grpcStatus: '14' })).to.deep.include({ is5xx: true, gateway: true });
    expect(classify({ status: 200, flag: undefined, grpcStatus: '5' })).to.deep.include({ is5xx: false });
    expect(classify({ status: 499, flag: 'DC', grpcStatus: undefined }).ignored).to.equal(true);
  });

  it('consecutive 5xx ejects; the ejection ends on its own after base × count, capped at max', () => {
    const h = setup({ consecutive5xx: 3, baseEjectionTime: '10s', maxEjectionTime: '15s', maxEjectionPercent: 50, interval: '100s' });
    h.send(0, e503, 2);
    h.send(0, ok); // a success resets the run
    h.send(0, e503, 2);
    expect(h.runtime.healthLabelOf(key(0))).to.equal('healthy');
    h.send(0, e503);
    expect(h.ejected).to.deep.equal([`${key(0)} consecutive_5xx`]);
    expect(h.runtime.healthLabelOf(key(0))).to.equal('outlier_ejected');
    expect(h.picks().has(key(0))).to.equal(false);
    h.clock.advance(9_999);
    expect(h.picks().has(key(0))).to.equal(false);
    h.clock.advance(1);
    expect(h.picks().has(key(0))).to.equal(true);
    // Second ejection: 2 × 10s, capped at 15s.
    h.send(0, e503, 3);
    h.clock.advance(14_999);
    expect(h.detectors.get('c')!.isEjected(key(0))).to.equal(true);
    h.clock.advance(1);
    expect(h.detectors.get('c')!.isEjected(key(0))).to.equal(false);
    expect(h.detectors.get('c')!.ejectionsOf(key(0))).to.equal(2);
    h.detectors.close();
  });

  it('gateway and local-origin failure counters; a 500 is not a gateway failure', () => {
    const h = setup({ consecutive5xx: 0, consecutiveGatewayFailure: 2, consecutiveLocalOriginFailure: 2, maxEjectionPercent: 100 });
    h.send(0, { status: 500, flag: undefined, grpcStatus: undefined }, 5);
    expect(h.ejected).to.deep.equal([]);
    h.send(1, e503, 2);
    h.send(2, connectFail, 2);
    expect(h.ejected).to.deep.equal([`${key(1)} consecutive_gateway_failure`, `${key(2)} consecutive_gateway_failure`]);
    const l = setup({ consecutive5xx: 0, consecutiveLocalOriginFailure: 2, maxEjectionPercent: 100 });
    l.send(0, e503, 4);
    l.send(1, connectFail, 2);
    expect(l.ejected).to.deep.equal([`${key(1)} consecutive_local_origin_failure`]);
    h.detectors.close();
    l.detectors.close();
  });

  it('maxEjectionPercent: no new ejection while that share is out (default 10 %: one)', () => {
    const h = setup({ consecutive5xx: 1 });
    h.send(0, e503);
    h.send(1, e503);
    h.send(2, e503);
    expect(h.ejected).to.deep.equal([`${key(0)} consecutive_5xx`]);
    h.detectors.close();
  });

  it('success rate: an endpoint far below the others is ejected at the interval', () => {
    const h = setup({ consecutive5xx: 0, interval: '10s', maxEjectionPercent: 50, successRate: { minimumHosts: 4, requestVolume: 20, stdevFactor: 1000 } });
    for (let i = 0; i < 3; i++) h.send(i, ok, 50);
    h.send(3, ok, 25);
    h.send(3, e503, 25);
    h.clock.advance(9_999);
    expect(h.ejected).to.deep.equal([]);
    h.clock.advance(1);
    expect(h.ejected).to.deep.equal([`${key(3)} success_rate`]);
    h.detectors.close();
  });

  it('failure percentage at or above the threshold ejects; below the volume nothing is judged', () => {
    const h = setup({ consecutive5xx: 0, interval: '10s', maxEjectionPercent: 100, failurePercentage: { threshold: 50, minimumHosts: 2, requestVolume: 10 } });
    h.send(0, ok, 10);
    h.send(1, e503, 5);
    h.send(1, ok, 5);
    h.send(2, e503, 9); // under the volume
    h.clock.advance(10_000);
    expect(h.ejected).to.deep.equal([`${key(1)} failure_percentage`]);
    h.detectors.close();
  });

  it('an ejection survives a new config version of the cluster; removing the section stops the detector', () => {
    const h = setup({ consecutive5xx: 1, maxEjectionPercent: 50 });
    h.send(0, e503);
    const next = ClusterRuntime.build(h.c, undefined, { clock: h.clock });
    h.detectors.sync(new Map([['c', h.c]]), new Map([['c', next]]));
    expect(next.healthLabelOf(key(0))).to.equal('outlier_ejected');
    h.detectors.sync(new Map(), new Map());
    expect(h.clock.pending).to.equal(0);
  });
});
