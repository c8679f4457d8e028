import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JsonObject } from '../../src/config/snapshot.js';
import { redact, unredact, REDACTED } from '../../src/config/redact.js';
import type { DiscoveryResponse } from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { cluster, listener, routes, type Doc } from '../support/config-docs.js';
import { client, outrigger, removeDir, spawnControlPlane, startTestControlPlane, tempDir, TOKEN, writeToken } from '../support/control-harness.js';
import { LightDelta, LightSotw, TYPE, kindOf, nodeOf, transportFor } from '../support/xds-light.js';
import { waitFor } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
const SECRET = 'Bearer s3cr3t-abcdef';
const guarded = (): Doc =>
  routes('main', [{ name: 'guarded', match: { prefix: '/', headers: [{ name: 'authorization', exact: SECRET }] }, route: { cluster: 'web' } }]);

/** The value of one sample of a metric in the registry's text output (0 when absent). */
function sample(text: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}]/g, '')}\\}` : ''} ([0-9.e+-]+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

describe('control plane: metrics and redaction', function () {
  this.timeout(15000);

  it('convergence waits only for the streams a push sent something: a sidecar that never ACKs does not hold back later pushes it gets nothing from', async () => {
    const cp = await startTestControlPlane({ debounceMs: 10 });
    const api = client(cp.address);
    const streams: LightSotw[] = [];
    try {
      await api.apply({ documents: J(listener('main'), routes('main', [{ name: 'a', match: { prefix: '/' }, route: { cluster: 'web' } }]), cluster('web', [1001])) });
      const mute = new LightSotw(transportFor(cp.address)); // takes its clusters, never ACKs
      streams.push(mute);
      mute.send({ node: nodeOf('mute'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      await mute.next();
      const good = new LightSotw(transportFor(cp.address));
      streams.push(good);
      const subs: Record<string, string[]> = { Cluster: ['*'], RouteConfiguration: ['main'] };
      good.onResponse = (r) => good.ack(r, subs[kindOf(r.typeUrl)]!);
      good.send({ node: nodeOf('good'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      good.send({ typeUrl: TYPE('RouteConfiguration'), resourceNames: ['main'] });
      await waitFor(async () => (await api.status({})).sidecars.find((x) => x.nodeId === 'good')?.types.every((t) => t.state === 1) ?? false, 'good SYNCED');
      const count = async (): Promise<number> => sample(await cp.registry.metrics(), 'outrigger_control_convergence_seconds_count');
      const c0 = await count();
      // Only routes change: 'mute' (clusters only, still un-ACKed) is sent nothing; 'good' gets and ACKs the routes.
      await api.apply({ documents: J(routes('main', [{ name: 'b', match: { prefix: '/b' }, route: { cluster: 'web' } }])) });
      await waitFor(async () => (await count()) === c0 + 1, 'the routes change to converge without the mute sidecar');
    } finally {
      for (const st of streams) st.close();
      await cp.close();
    }
  });

  it('counts connected streams, pushes and NACKs by kind, convergence and push latency', async () => {
    const cp = await startTestControlPlane({ debounceMs: 10 });
    const api = client(cp.address);
    const streams: { close(): void }[] = [];
    try {
      await api.apply({ documents: J(listener('main'), guarded(), cluster('web', [1001])) });
      const subs: Record<string, string[]> = { Cluster: ['*'], Listener: ['*'], RouteConfiguration: ['main'] };
      let nackListener = false;
      const sotw = (id: string): LightSotw => {
        const s = new LightSotw(transportFor(cp.address));
        streams.push(s);
        s.onResponse = (r: DiscoveryResponse) => {
          const kind = kindOf(r.typeUrl);
          if (nackListener && kind === 'Listener' && id === 's1') {
            s.send({ typeUrl: r.typeUrl, responseNonce: r.nonce, resourceNames: subs[kind], errorDetail: { code: 3, message: 'listener main: port in use' } });
          } else s.ack(r, subs[kind]!);
        };
        let first = true;
        for (const [kind, names] of Object.entries(subs)) {
          s.send({ node: first ? nodeOf(id) : undefined, typeUrl: TYPE(kind), resourceNames: names });
          first = false;
        }
        return s;
      };
      sotw('s1');
      sotw('s2');
      const d = new LightDelta(transportFor(cp.address));
      streams.push(d);
      d.onResponse = (r) => d.ack(r);
      d.send({ node: nodeOf('d1'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'] });

      const metrics = (): Promise<string> => cp.registry.metrics();
      await waitFor(async () => {
        const m = await metrics();
        return sample(m, 'outrigger_control_connected_sidecars', 'stream="sotw"') === 2 && sample(m, 'outrigger_control_connected_sidecars', 'stream="delta"') === 1;
      }, '2 sotw streams and 1 delta stream');
      await waitFor(async () => (await api.status({})).sidecars.every((s) => s.types.every((t) => t.state === 1)), 'all SYNCED');
      const before = await metrics();
      expect(sample(before, 'outrigger_control_pushes_total', 'kind="Cluster"')).to.equal(3);
      expect(sample(before, 'outrigger_control_pushes_total', 'kind="RouteConfiguration"')).to.equal(2);

      // A change of one cluster: one push per stream, all ACKed → one convergence observation.
      const convBefore = sample(before, 'outrigger_control_convergence_seconds_count');
      const pushRunsBefore = sample(before, 'outrigger_control_push_duration_seconds_count');
      await api.apply({ documents: J(cluster('web', [1002])) });
      await waitFor(async () => sample(await metrics(), 'outrigger_control_convergence_seconds_count') === convBefore + 1, 'convergence observed');
      const after = await metrics();
      expect(sample(after, 'outrigger_control_pushes_total', 'kind="Cluster"')).to.equal(6);
      expect(sample(after, 'outrigger_control_pushes_total', 'kind="Listener"')).to.equal(2); // unchanged: not pushed again
      expect(sample(after, 'outrigger_control_convergence_seconds_sum')).to.be.below(2);
      expect(sample(after, 'outrigger_control_push_latency_seconds_count', 'kind="Cluster"')).to.be.at.least(6);
      expect(sample(after, 'outrigger_control_operations_total', 'op="apply",result="ok"')).to.equal(2);
      expect(sample(after, 'outrigger_control_store_seconds_count', 'op="commit"')).to.equal(2);
      expect(sample(after, 'outrigger_control_store_seconds_count', 'op="load"')).to.be.at.least(1);
      expect(sample(after, 'outrigger_control_push_duration_seconds_count')).to.equal(pushRunsBefore + 1);

      // A NACK of listeners from one stream.
      nackListener = true;
      await api.apply({ documents: J(listener('main', { address: { host: '127.0.0.1', port: 0 }, detectTimeout: '0.2s' })) });
      await waitFor(async () => sample(await metrics(), 'outrigger_control_nacks_total', 'kind="Listener"') === 1, 'NACK counted');
      expect(sample(await metrics(), 'outrigger_control_nacks_total', 'kind="Cluster"')).to.equal(0);
      expect(cp.logs.some((l) => l.msg === 'NACK' && l.kind === 'Listener' && l.error === 'listener main: port in use')).to.equal(true);

      // Streams closing are counted down.
      d.close();
      await waitFor(async () => sample(await metrics(), 'outrigger_control_connected_sidecars', 'stream="delta"') === 0, 'delta stream gone');
      expect(cp.logs.filter((l) => l.msg === 'stream opened')).to.have.length(3);
      await waitFor(() => cp.logs.some((l) => l.msg === 'stream closed' && l.node === 'd1'), 'stream closed line');
      const lines = cp.logs.filter((l) => ['stream opened', 'stream closed', 'NACK'].includes(l.msg as string) || l.audit === true);
      expect(lines.every((l) => l.level === 30), 'all at info').to.equal(true);
    } finally {
      for (const s of streams) s.close();
      await cp.close();
    }
  });

  it('outrigger control serves every metric of point 7 on --metrics-port, and they move', async () => {
    const dir = await tempDir();
    const cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--port', '0', '--token-file', await writeToken(dir)]);
    const s = new LightSotw(transportFor(`127.0.0.1:${cp.port}`));
    try {
      const metricsPort = Number(/"metricsPort":(\d+)/.exec(cp.stdout())![1]);
      const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const api = client(`127.0.0.1:${cp.port}`);
      await api.apply({ documents: J(listener('main'), routes('main', [{ name: 'r', match: { prefix: '/' }, route: { cluster: 'web' } }]), cluster('web', [1001])) });
      s.onResponse = (r) => s.ack(r, ['*']);
      s.send({ node: nodeOf('m1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      await waitFor(async () => sample(await scrape(), 'outrigger_control_push_latency_seconds_count', 'kind="Cluster"') === 1, 'first ACK observed');
      const conv0 = sample(await scrape(), 'outrigger_control_convergence_seconds_count');
      await api.apply({ documents: J(cluster('web', [1002])) });
      await waitFor(async () => sample(await scrape(), 'outrigger_control_convergence_seconds_count') === conv0 + 1, 'convergence of the change observed');
      await waitFor(async () => sample(await scrape(), 'outrigger_control_push_latency_seconds_count', 'kind="Cluster"') === 2, 'the ACK of the change');
      const text = await scrape();
      expect(sample(text, 'outrigger_control_connected_sidecars', 'stream="sotw"')).to.equal(1);
      expect(sample(text, 'outrigger_control_pushes_total', 'kind="Cluster"')).to.equal(2);
      expect(sample(text, 'outrigger_control_push_duration_seconds_count')).to.be.at.least(1);
      expect(sample(text, 'outrigger_control_push_latency_seconds_count', 'kind="Cluster"')).to.equal(2);
      expect(sample(text, 'outrigger_control_store_seconds_count', 'op="commit"')).to.equal(2);
      expect(sample(text, 'outrigger_control_operations_total', 'op="apply",result="ok"')).to.equal(2);
      expect(text).to.match(/^# TYPE outrigger_control_nacks_total counter$/m);
      expect(text).to.match(/^outrigger_control_process_resident_memory_bytes \d+/m);
      s.close();
      await waitFor(async () => sample(await scrape(), 'outrigger_control_connected_sidecars', 'stream="sotw"') === 0, 'stream gone');
    } finally {
      s.close();
      cp.child.kill('SIGTERM');
      await new Promise((r) => cp.child.once('exit', r));
      await removeDir(dir);
    }
  });

  it('secret-bearing fields are redacted in get/list/history output and never logged; get -o yaml re-applies unchanged', async () => {
    const cp = await startTestControlPlane({ debounceMs: 10 });
    const api = client(cp.address);
    const env = { OUTRIGGER_CONTROL_PLANE: cp.address, OUTRIGGER_TOKEN: TOKEN };
    const dir = await tempDir();
    try {
      await api.apply({ documents: J(listener('main'), guarded(), cluster('web', [1001])) });
      const got = JSON.stringify((await api.get({ kind: 'RouteConfiguration', name: 'main' })).resource!.document);
      expect(got).not.to.contain('s3cr3t');
      expect(got).to.contain(REDACTED);
      expect(JSON.stringify((await api.list({})).resources.map((r) => r.document))).not.to.contain('s3cr3t');
      expect(JSON.stringify((await api.history({ kind: 'RouteConfiguration', name: 'main' })).revisions.map((r) => r.document))).not.to.contain('s3cr3t');
      const yaml = await outrigger(['get', 'routes', 'main', '-o', 'yaml'], env);
      expect(yaml.code, yaml.stderr).to.equal(0);
      expect(yaml.stdout).not.to.contain('s3cr3t');
      expect(yaml.stdout).to.contain(REDACTED);
      await writeFile(join(dir, 'got.yaml'), yaml.stdout);
      const again = await outrigger(['apply', '-f', join(dir, 'got.yaml')], env);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout).to.contain('RouteConfiguration/main unchanged');
      // The sidecars still get the real value: redaction is for operators' eyes only.
      const s = new LightSotw(transportFor(cp.address));
      s.send({ node: nodeOf('r1'), typeUrl: TYPE('RouteConfiguration'), resourceNames: ['main'] });
      const r = await s.next();
      s.close();
      expect(Buffer.from(r.resources[0]!.value).toString('latin1')).to.contain('s3cr3t');
      const logs = JSON.stringify(cp.logs);
      expect(logs).not.to.contain('s3cr3t');
      expect(logs).not.to.contain(TOKEN);
      expect(logs).to.match(/"who":"token:[0-9a-f]{8}"/);
    } finally {
      await cp.close();
      await removeDir(dir);
    }
  });

  it('redact: inline secrets and credential header matchers go, names and paths stay; unredact restores stored values', () => {
    const doc = {
      keyFile: '/etc/tls/key.pem',
      tokenCookie: 'session',
      clientSecret: 'hunter2',
      forwardHeaders: ['x-token'],
      headers: [
        { name: 'Authorization', exact: 'Bearer x' },
        { name: 'x-env', exact: 'prod' },
      ],
    } as JsonObject;
    const r = redact(doc);
    expect(r).to.deep.equal({
      keyFile: '/etc/tls/key.pem',
      tokenCookie: 'session',
      clientSecret: REDACTED,
      forwardHeaders: ['x-token'],
      headers: [
        { name: 'Authorization', exact: REDACTED },
        { name: 'x-env', exact: 'prod' },
      ],
    });
    expect(unredact(r, doc)).to.deep.equal(doc);
  });
});
