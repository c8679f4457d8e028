import { expect } from 'chai';
import { editBase, errorsOf, type Obj } from './helpers.js';

const routesOf = (spec: Obj): Obj[] => (spec.virtualHosts as Obj[])[0]!.routes as Obj[];
const withRoute = (route: Obj): Obj[] => editBase((find) => (routesOf(find('RouteConfiguration', 'main'))[0]!.route = route));

describe('config validation: route traffic management', () => {
  it('accepts subsets, splits, mirrors and faults', () => {
    expect(errorsOf(withRoute({ cluster: 'books', endpointSelector: { matchLabels: { version: 'v2' } } }))).to.deep.equal([]);
    expect(
      errorsOf(
        withRoute({
          weightedClusters: [
            { cluster: 'books', weight: 90, endpointSelector: { matchLabels: { version: 'v1' } } },
            { cluster: 'web', weight: 10 },
          ],
          mirror: { cluster: 'web', percent: 2.5 },
          fault: { delay: { fixedDelay: '0.1s', percent: 10 }, abort: { httpStatus: 503, percent: 1 } },
        }),
      ),
    ).to.deep.equal([]);
  });

  it('reports each mistake with its field path', () => {
    const at = 'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route';
    expect(errorsOf(withRoute({ cluster: 'books', weightedClusters: [{ cluster: 'web', weight: 1 }] }))).to.deep.equal([
      `${at}.weightedClusters: set cluster or weightedClusters, not both`,
    ]);
    expect(
      errorsOf(
        withRoute({
          endpointSelector: { matchLabels: { version: 'v1' } },
          weightedClusters: [{ cluster: 'nope', weight: 1 }, { weight: 0, cluster: 'web' }, { weight: 1 }],
        }),
      ),
    ).to.deep.equal([
      `${at}.endpointSelector: with weightedClusters, give each entry its own endpointSelector`,
      `${at}.weightedClusters[0].cluster: unknown cluster "nope"`,
      `${at}.weightedClusters[1].weight: must be > 0`,
      `${at}.weightedClusters[2].cluster: required`,
    ]);
    expect(errorsOf(withRoute({ cluster: 'books', mirror: { cluster: 'nope', percent: 120 } }))).to.deep.equal([
      `${at}.mirror.cluster: unknown cluster "nope"`,
      `${at}.mirror.percent: must be 0..100, got 120`,
    ]);
    expect(errorsOf(withRoute({ cluster: 'books', fault: { abort: { percent: 5 } } }))).to.deep.equal([`${at}.fault.abort: httpStatus or grpcStatus is required`]);
    expect(errorsOf(withRoute({ cluster: 'books', fault: { abort: { httpStatus: 99 }, delay: { percent: -1 } } }))).to.deep.equal([
      `${at}.fault.delay.fixedDelay: required (> 0)`,
      `${at}.fault.delay.percent: must be 0..100, got -1`,
      `${at}.fault.abort.httpStatus: must be 200..599, got 99`,
    ]);
    expect(errorsOf(withRoute({ cluster: 'books', fault: { abort: { grpcStatus: 0 } } }))).to.deep.equal([`${at}.fault.abort.grpcStatus: must be 1..16 (a gRPC error code), got 0`]);
    expect(errorsOf(withRoute({ cluster: 'books', fault: {} }))).to.deep.equal([`${at}.fault: set delay, abort or both`]);
    expect(errorsOf(withRoute({}))).to.deep.equal([`${at}.cluster: required (or weightedClusters)`]);
    // A transcode route mirrors its upstream gRPC calls (test/integration/transcode-mirror.test.ts).
    expect(errorsOf(withRoute({ cluster: 'books', mirror: { cluster: 'web' }, transcode: { descriptorFile: 'x.pb' } })).filter((e) => e.includes('mirror'))).to.deep.equal([]);
  });
});
