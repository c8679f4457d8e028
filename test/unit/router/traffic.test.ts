import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom } from '../../../src/core/random.js';
import { RouteActionSchema } from '../../../src/gen/outrigger/config/v1/route_pb.js';
import { shadowAuthority } from '../../../src/proxy/forward/forward.js';
import { chooseWeighted, compileTraffic } from '../../../src/proxy/router/traffic.js';

const fail = (rel: string, message: string): never => {
  throw new Error(`${rel}: ${message}`);
};

describe('route traffic management: compiled form', () => {
  it('a route that uses none of it compiles to no extra keys (nothing to check per request)', () => {
    expect(compileTraffic(fromJson(RouteActionSchema, { cluster: 'a' }), fail)).to.deep.equal({});
  });

  it('weighted split: exact to ±2 % over 10 000 draws of a seeded random, for several splits', () => {
    for (const weights of [[80, 20], [1, 1, 1], [95, 5], [1, 99], [10, 30, 60]]) {
      const t = compileTraffic(fromJson(RouteActionSchema, { weightedClusters: weights.map((weight, i) => ({ cluster: `c${i}`, weight })) }), fail);
      const random = seededRandom(weights.length * 1000 + weights[0]!);
      const n = 10_000;
      const counts = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const c = chooseWeighted(t.weighted!, random.next()).cluster;
        counts.set(c, (counts.get(c) ?? 0) + 1);
      }
      const total = weights.reduce((a, b) => a + b, 0);
      weights.forEach((w, i) => expect(Math.abs((counts.get(`c${i}`) ?? 0) / n - w / total), `${weights} c${i}`).to.be.at.most(0.02));
    }
  });

  it('boundaries of a draw go to the right target', () => {
    const t = compileTraffic(fromJson(RouteActionSchema, { weightedClusters: [{ cluster: 'a', weight: 1 }, { cluster: 'b', weight: 3 }] }), fail).weighted!;
    expect(chooseWeighted(t, 0).cluster).to.equal('a');
    expect(chooseWeighted(t, 0.2499).cluster).to.equal('a');
    expect(chooseWeighted(t, 0.25).cluster).to.equal('b');
    expect(chooseWeighted(t, 0.99999).cluster).to.equal('b');
  });

  it('percentages become fractions; absent is 100 %', () => {
    const t = compileTraffic(
      fromJson(RouteActionSchema, {
        cluster: 'a',
        mirror: { cluster: 'm', percent: 12.5 },
        fault: { delay: { fixedDelay: '1.5s' }, abort: { grpcStatus: 14, percent: 50 } },
      }),
      fail,
    );
    expect(t.mirror).to.deep.equal({ cluster: 'm', fraction: 0.125 });
    expect(t.fault).to.deep.equal({ delay: { ms: 1500, fraction: 1 }, abort: { httpStatus: undefined, grpcStatus: 14, fraction: 0.5 } });
  });

  it('mirror authority: -shadow after the host, before the port', () => {
    expect(shadowAuthority('api')).to.equal('api-shadow');
    expect(shadowAuthority('api.ns:8080')).to.equal('api.ns-shadow:8080');
    expect(shadowAuthority('[::1]:80')).to.equal('[::1]-shadow:80');
    expect(shadowAuthority('[::1]')).to.equal('[::1]-shadow');
  });
});
