import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { JsonObject } from '../../src/config/snapshot.js';
import { systemClock } from '../../src/core/clock.js';
import { systemRandom } from '../../src/core/random.js';
import { buildTracer, resolveTracing } from '../../src/observability/trace-config.js';
import { cluster, listener, routes, type Doc } from '../support/config-docs.js';
import { client, startTestControlPlane } from '../support/control-harness.js';
import { OtlpReceiver, SPAN_KIND_SERVER } from '../support/otlp-receiver.js';
import { LightSotw, TYPE, nodeOf, transportFor } from '../support/xds-light.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];

describe('control plane tracing (issue 18 point 1): an apply → the push it caused → its stream batches', function () {
  this.timeout(15_000);

  it('exports the apply as a root span, the push as its child and each stream batch as a child of the push (OTLP http/protobuf)', async () => {
    const otlp = await OtlpReceiver.start();
    const tracer = buildTracer(resolveTracing({ endpoint: otlp.httpEndpoint }, { OTEL_BSP_SCHEDULE_DELAY: '50' })!, {
      clock: systemClock(),
      random: systemRandom(),
      registry: new Registry(),
      serviceName: 'outrigger-control',
    });
    const cp = await startTestControlPlane({ debounceMs: 10, tracer });
    const api = client(cp.address);
    const sidecars: LightSotw[] = [];
    try {
      for (const id of ['a', 'b']) {
        const s = new LightSotw(transportFor(cp.address));
        sidecars.push(s);
        s.send({ node: nodeOf(id), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      }
      await api.apply({ documents: J(listener('main'), routes('main', [{ name: 'a', match: { prefix: '/' }, route: { cluster: 'web' } }]), cluster('web', [1001])) });
      const spans = await otlp.waitFor((s) => s.some((x) => x.name === 'control push batch'));
      const apply = spans.find((s) => s.name === 'control apply')!;
      const push = spans.find((s) => s.name === 'control push')!;
      const batch = spans.find((s) => s.name === 'control push batch')!;
      expect(apply).to.include({ kind: SPAN_KIND_SERVER, parentSpanId: '' });
      expect(apply.attributes).to.include({ 'outrigger.operation': 'apply', 'outrigger.result': 'ok' });
      expect(apply.resource['service.name']).to.equal('outrigger-control');
      expect(push).to.include({ traceId: apply.traceId, parentSpanId: apply.spanId });
      expect(push.attributes['outrigger.streams']).to.equal(2);
      expect(batch).to.include({ traceId: apply.traceId, parentSpanId: push.spanId });
      expect(batch.attributes['outrigger.responses']).to.be.greaterThan(0);
    } finally {
      for (const s of sidecars) s.close();
      await cp.close();
      await otlp.close();
    }
  });
});
