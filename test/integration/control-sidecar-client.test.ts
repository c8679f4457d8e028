import { expect } from 'chai';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { ResourceDocument } from '../../src/config/snapshot.js';
import { AsyncQueue } from '../../src/control/async-queue.js';
import { toWire } from '../../src/control/protocol.js';
import {
  AggregatedDiscoveryService,
  DiscoveryResponseSchema,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { backendOf } from '../support/backend-of.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { startCpSidecar, type TestCpSidecar } from '../support/control-harness.js';
import { TYPE } from '../support/xds-light.js';
import { FakeClock } from '../support/fake-clock.js';
import { waitFor } from '../support/wait.js';

/**
 * A scripted ADS server on a real h2c socket: records every request the
 * sidecar sends and lets the test send any response, including ones our own
 * control plane never would (a name twice, an undecodable resource, an
 * inconsistent set), so the sidecar's side of the b1 rules can be checked.
 */
class FakeAds {
  readonly requests: DiscoveryRequest[] = [];
  streams = 0;
  private marks = 0;
  private out: AsyncQueue<DiscoveryResponse> | undefined;
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  port = 0;

  constructor() {
    const handler = connectNodeAdapter({
      routes: (router) =>
        router.service(AggregatedDiscoveryService, {
          streamAggregatedResources: (reqs) => {
            const out = new AsyncQueue<DiscoveryResponse>();
            this.out = out;
            this.streams++;
            void (async () => {
              try {
                for await (const r of reqs) this.requests.push(r);
              } catch {
                // the sidecar went away
              }
            })();
            return out;
          },
          deltaAggregatedResources: () => new AsyncQueue<never>(),
        }),
    });
    this.server = http2.createServer(handler);
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  send(kind: string, version: string, nonce: string, docs: Doc[]): void {
    const resources = docs.map((d) => toWire(d as unknown as ResourceDocument).any);
    this.out!.push(
      create(DiscoveryResponseSchema, {
        versionInfo: version,
        resources,
        typeUrl: TYPE(kind),
        nonce,
        controlPlane: { identifier: 'fake', changeTime: timestampFromMs(Date.now()) },
      }),
    );
  }

  /** The first request (from `from` on) answering `nonce`. */
  async reply(nonce: string, from = 0): Promise<DiscoveryRequest> {
    let found: DiscoveryRequest | undefined;
    await waitFor(() => (found = this.requests.slice(from).find((r) => r.responseNonce === nonce)) !== undefined, `a request with nonce ${nonce}`);
    return found!;
  }

  /**
   * Sends an undecodable ClusterLoadAssignment and waits for its NACK. The
   * sidecar handles responses one at a time, in order, on one stream, so
   * anything it sends for the responses before this one is recorded before
   * the NACK: returns the NACK's index in `requests`.
   */
  async marker(): Promise<number> {
    const nonce = `n-mark-${++this.marks}`;
    this.send('ClusterLoadAssignment', 'mark', nonce, [{ apiVersion: 'outrigger.io/v1', kind: 'ClusterLoadAssignment', metadata: { name: 'Bad_Name' }, spec: {} }]);
    return this.requests.indexOf(await this.reply(nonce));
  }

  /** Ends the current stream with an error (the sidecar reconnects). */
  drop(): void {
    this.out?.close(new Error('dropped by the test'));
  }

  async close(): Promise<void> {
    this.out?.close();
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('sidecar xDS client against a scripted control plane (ACK/NACK, warming, reconnect, metrics)', function () {
  this.timeout(30000);
  let a: Started<unknown>, b: Started<unknown>;
  let ads: FakeAds;
  // Drives the sidecar's timers: warming, reconnect backoff, the drain at close.
  let clock: FakeClock;
  let sc: TestCpSidecar | undefined;
  let busy: net.Server | undefined;
  before(async () => {
    [a, b] = await Promise.all([startH1Echo('a'), startH1Echo('b')]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });
  beforeEach(async () => {
    clock = new FakeClock();
    ads = new FakeAds();
    await ads.listen();
  });
  afterEach(async () => {
    const closing = sc?.close();
    clock.advance(60_000); // past the drain timeout
    await closing;
    sc = undefined;
    busy?.close();
    busy = undefined;
    await ads.close();
  });

  it('holds listeners until their routes arrive, ACKs each type with its version and nonce, NACKs bad responses with the previous version and the resource and field, keeps serving', async () => {
    const warmingMs = 300;
    const starting = startCpSidecar({ address: `127.0.0.1:${ads.port}`, nodeId: 'fake-1', warmingTimeoutMs: warmingMs }, { clock });
    await waitFor(() => ads.requests.length >= 2, 'the first CDS and LDS requests');
    const first = ads.requests.slice(0, 2);
    expect(first.map((r) => r.typeUrl)).to.deep.equal([TYPE('Cluster'), TYPE('Listener')]);
    expect(first[0]!.node?.id).to.equal('fake-1');
    expect(first.map((r) => r.resourceNames)).to.deep.equal([['*'], ['*']]);

    // Warming: clusters and the listener, but not its routes yet — nothing is ACKed, nothing goes live.
    ads.send('Cluster', 'c1', 'n-c1', [cluster('web', [a.port])]);
    ads.send('Listener', 'l1', 'n-l1', [listener('main')]);
    await waitFor(() => ads.requests.some((r) => r.typeUrl === TYPE('RouteConfiguration') && r.resourceNames.join() === 'main'), 'RDS subscription to main');
    const mark1 = await ads.marker();
    expect(ads.requests.slice(0, mark1).filter((r) => r.responseNonce === 'n-c1' || r.responseNonce === 'n-l1')).to.deep.equal([]);
    ads.send('RouteConfiguration', 'r1', 'n-r1', [routes('main', [prefixRoute('/', 'web')])]);
    for (const [nonce, version] of [['n-c1', 'c1'], ['n-l1', 'l1'], ['n-r1', 'r1']] as const) {
      const ack = await ads.reply(nonce);
      expect(ack.versionInfo, nonce).to.equal(version);
      expect(ack.errorDetail, nonce).to.equal(undefined);
    }
    sc = await starting;
    const port = sc.port();
    expect(await backendOf(port)).to.equal('a');

    // A name twice: NACK at once, previous version, message naming it.
    ads.send('Cluster', 'c2', 'n-c2', [cluster('web', [b.port]), cluster('web', [b.port])]);
    let nack = await ads.reply('n-c2');
    expect(nack.versionInfo).to.equal('c1');
    expect(nack.errorDetail?.message).to.contain('Cluster/web: named twice in one response');

    // An undecodable resource: NACK naming the resource and the field.
    ads.send('Cluster', 'c3', 'n-c3', [cluster('web', [b.port]), cluster('Bad_Name', [b.port])]);
    nack = await ads.reply('n-c3');
    expect(nack.versionInfo).to.equal('c1');
    expect(nack.errorDetail?.message).to.match(/Cluster\/Bad_Name: metadata\.name: invalid name/);

    // Decodes, but the set is inconsistent (the route's cluster is gone): held for the warming timeout, then NACKed.
    ads.send('Cluster', 'c4', 'n-c4', [cluster('other', [b.port])]);
    const mark2 = await ads.marker();
    expect(ads.requests.slice(0, mark2).some((r) => r.responseNonce === 'n-c4')).to.equal(false);
    clock.advance(warmingMs - 1);
    const mark3 = await ads.marker();
    expect(ads.requests.slice(0, mark3).some((r) => r.responseNonce === 'n-c4')).to.equal(false);
    clock.advance(1);
    nack = await ads.reply('n-c4');
    expect(nack.versionInfo).to.equal('c1');
    expect(nack.errorDetail?.message).to.match(/RouteConfiguration\/main: spec\.virtualHosts\[0\]\.routes\[0\]\.route\.cluster: .*web/);
    expect(await backendOf(port)).to.equal('a');

    // A listener on a port in use: the install fails, NACK naming the listener and its address.
    busy = net.createServer();
    await new Promise<void>((r) => busy!.listen(0, '127.0.0.1', () => r()));
    const busyPort = (busy.address() as AddressInfo).port;
    ads.send('Listener', 'l2', 'n-l2', [listener('main', { address: { host: '127.0.0.1', port: busyPort } })]);
    nack = await ads.reply('n-l2');
    expect(nack.versionInfo).to.equal('l1');
    expect(nack.errorDetail?.message).to.match(/Listener\/main: spec\.address\.port: .*EADDRINUSE/);
    expect(await backendOf(port)).to.equal('a');

    // A good change is applied and ACKed.
    ads.send('Cluster', 'c5', 'n-c5', [cluster('web', [b.port])]);
    expect((await ads.reply('n-c5')).versionInfo).to.equal('c5');
    await waitFor(async () => (await backendOf(port)) === 'b', 'traffic to b');

    // Every response was answered exactly once (ACK or NACK).
    for (const n of ['n-c1', 'n-l1', 'n-r1', 'n-c2', 'n-c3', 'n-c4', 'n-l2', 'n-c5']) {
      expect(ads.requests.filter((r) => r.responseNonce === n && (r.errorDetail !== undefined || r.versionInfo !== '')).length, n).to.be.at.least(1);
    }

    // Metrics: connected, the ACKed version per kind, NACKs by kind, updates, push latency.
    const m = await sc.sidecar.registry.metrics();
    expect(m).to.match(/^outrigger_xds_connected 1$/m);
    expect(m).to.match(/^outrigger_xds_version_info\{kind="Cluster",version="c5"\} 1$/m);
    expect(m).to.match(/^outrigger_xds_version_info\{kind="Listener",version="l1"\} 1$/m);
    expect(m).not.to.match(/version="c1"/);
    expect(m).to.match(/^outrigger_xds_nacks_total\{kind="Cluster"\} 3$/m);
    expect(m).to.match(/^outrigger_xds_nacks_total\{kind="Listener"\} 1$/m);
    expect(m).to.match(/^outrigger_xds_updates_total\{kind="Cluster"\} 2$/m);
    expect(Number(/^outrigger_xds_push_latency_seconds_count (\d+)$/m.exec(m)?.[1])).to.be.at.least(4);

    // The stream drops: disconnected, keeps serving; on reconnect each type names its last ACKed version, node first.
    const mark = ads.requests.length;
    ads.drop();
    await waitFor(async () => /^outrigger_xds_connected 0$/m.test(await sc!.sidecar.registry.metrics()), 'disconnected');
    expect(await backendOf(port)).to.equal('b');
    clock.advance(500); // maxBackoffMs: the reconnect is due
    await waitFor(() => ads.streams === 2 && ads.requests.length >= mark + 3, 'the reconnect requests');
    const again = ads.requests.slice(mark, mark + 3);
    expect(again.map((r) => [r.typeUrl, r.versionInfo, r.responseNonce])).to.deep.equal([
      [TYPE('Cluster'), 'c5', ''],
      [TYPE('Listener'), 'l1', ''],
      [TYPE('RouteConfiguration'), 'r1', ''],
    ]);
    expect(again[0]!.node?.id).to.equal('fake-1');
    expect(again[1]!.node).to.equal(undefined);
  });
});
