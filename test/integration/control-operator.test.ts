import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Code } from '@connectrpc/connect';
import type { JsonObject } from '../../src/config/snapshot.js';
import { REDACTED } from '../../src/config/redact.js';
import { WatchResponse_EventType, type WatchResponse } from '../../src/gen/outrigger/control/v1/operator_pb.js';
import { cluster, listener, prefixRoute, routes, toYaml, type Doc } from '../support/config-docs.js';
import { client, outrigger, removeDir, startTestControlPlane, tempDir, TOKEN, codeOf } from '../support/control-harness.js';
import { waitFor } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

const SECRET = 'Bearer w4tch-s3cr3t';
const guarded = (clusterName: string): Doc =>
  routes('main', [{ name: 'guarded', match: { prefix: '/', headers: [{ name: 'authorization', exact: SECRET }] }, route: { cluster: clusterName } }]);

/**
 * The operator API beyond apply/get: optimistic concurrency
 * (FAILED_PRECONDITION, nothing stored), the audit line of every change,
 * Watch (events, kind filter, redaction), and the CLI's validate --server,
 * delete and history against a real control plane.
 */
describe('control plane: operator API and CLI', function () {
  this.timeout(20000);
  let cp: CP;
  let dir: string;
  const env = (): Record<string, string> => ({ OUTRIGGER_CONTROL_PLANE: cp.address, OUTRIGGER_TOKEN: TOKEN });
  beforeEach(async () => {
    cp = await startTestControlPlane({ debounceMs: 10 });
    dir = await tempDir();
    await client(cp.address).apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001])) });
  });
  afterEach(async () => {
    await cp.close();
    await removeDir(dir);
  });

  it('optimistic concurrency: a wrong expected version is FAILED_PRECONDITION and stores nothing; "" means must not exist', async () => {
    const api = client(cp.address);
    const before = await api.list({});
    const web = before.resources.find((r) => (r.document as { kind: string }).kind === 'Cluster')!;
    expect(await codeOf(api.apply({ documents: J(cluster('web', [1002])), expectedVersions: { 'Cluster/web': '999' } }))).to.equal(Code.FailedPrecondition);
    expect(await codeOf(api.apply({ documents: J(cluster('web', [1002])), expectedVersions: { 'Cluster/web': '' } }))).to.equal(Code.FailedPrecondition);
    expect((await api.list({})).revision).to.equal(before.revision);
    // The right version wins; the one it replaced is now stale.
    const ok = await api.apply({ documents: J(cluster('web', [1002])), expectedVersions: { 'Cluster/web': web.version } });
    expect(ok.revision).to.equal(before.revision + 1n);
    expect(await codeOf(api.apply({ documents: J(cluster('web', [1003])), expectedVersions: { 'Cluster/web': web.version } }))).to.equal(Code.FailedPrecondition);
    // Create-only.
    await api.apply({ documents: J(cluster('api', [1004])), expectedVersions: { 'Cluster/api': '' } });
    expect(await codeOf(api.apply({ documents: J(cluster('api', [1005])), expectedVersions: { 'Cluster/api': '' } }))).to.equal(Code.FailedPrecondition);
    // The CLI: delete with a stale --expected-version exits 1 with the status, and deletes nothing.
    const del = await outrigger(['delete', 'cluster', 'api', '--expected-version', '1'], env());
    expect(del.code).to.equal(1);
    expect(del.stderr).to.match(/^outrigger delete: FAILED_PRECONDITION: Cluster\/api: metadata: version conflict/);
    expect(await codeOf(api.get({ kind: 'Cluster', name: 'api' }))).to.equal('ok');
  });

  it('every Apply/Delete/Rollback writes one audit line: who, what, from which version to which (never the token or documents)', async () => {
    const api = client(cp.address);
    await api.apply({ documents: J(cluster('web', [1002]), cluster('api', [1003])) }); // rev 2: web 1→2, api new
    await api.delete({ kind: 'Cluster', name: 'api' }); // rev 3
    await api.rollback({ kind: 'Cluster', name: 'web', toRevision: 1n }); // rev 4: web 2→4
    await api.apply({ documents: J(cluster('web', [1001])) }); // unchanged: no change, no audit line
    const audit = cp.logs.filter((l) => l.audit === true);
    const who = audit[0]!.who as string;
    expect(who).to.match(/^token:[0-9a-f]{8}$/);
    expect(audit.map(({ op, who: w, fromRevision, toRevision, changes, msg }) => ({
        op,
        who: w,
        fromRevision,
        toRevision,
        changes: [...(changes as { resource: string }[])].sort((a, b) => (a.resource < b.resource ? -1 : 1)),
        msg,
      }))).to.deep.equal([
      { op: 'apply', who, fromRevision: 0, toRevision: 1, msg: 'apply committed', changes: [
        { resource: 'Cluster/web', from: null, to: '1' },
        { resource: 'Listener/main', from: null, to: '1' },
        { resource: 'RouteConfiguration/main', from: null, to: '1' },
      ] },
      { op: 'apply', who, fromRevision: 1, toRevision: 2, msg: 'apply committed', changes: [
        { resource: 'Cluster/api', from: null, to: '2' },
        { resource: 'Cluster/web', from: '1', to: '2' },
      ] },
      { op: 'delete', who, fromRevision: 2, toRevision: 3, msg: 'delete committed', changes: [{ resource: 'Cluster/api', from: '2', to: null }] },
      { op: 'rollback', who, fromRevision: 3, toRevision: 4, msg: 'rollback committed', changes: [{ resource: 'Cluster/web', from: '2', to: '4' }] },
    ]);
    for (const l of audit) expect(l.level, 'info').to.equal(30);
    expect(JSON.stringify(cp.logs)).not.to.contain(TOKEN);
    expect(JSON.stringify(audit)).not.to.contain('endpoints');
  });

  it('Watch streams PUT and DELETE events of its kind, redacted', async () => {
    const api = client(cp.address);
    const abort = new AbortController();
    const events: WatchResponse[] = [];
    const watching = (async () => {
      try {
        for await (const e of api.watch({ kind: 'RouteConfiguration' }, { signal: abort.signal })) events.push(e);
      } catch {
        // aborted
      }
    })();
    try {
      // Until the watch is registered, changes are not seen: keep changing the route until one event arrives.
      let port = 2000;
      await waitFor(async () => {
        await api.apply({ documents: J(cluster(`c${port}`, [port]), guarded(`c${port++}`)) });
        return events.length > 0;
      }, 'the first watch event');
      const seen = events.length;
      await api.apply({ documents: J(cluster('web', [1009])) }); // another kind: no event
      await api.apply({ documents: J(listener('main', { routeConfig: 'other' }), routes('other', [prefixRoute('/', 'web')])) });
      await api.delete({ kind: 'RouteConfiguration', name: 'main' });
      await waitFor(() => events.length >= seen + 2, 'PUT of other, DELETE of main');
      const tail = events.slice(seen).map((e) => `${WatchResponse_EventType[e.type]} ${(e.resource!.document as { metadata: { name: string } }).metadata.name}`);
      expect(tail).to.deep.equal(['PUT other', 'DELETE main']);
      const text = JSON.stringify(events.map((e) => e.resource!.document));
      expect(text).not.to.contain('w4tch-s3cr3t');
      expect(text).to.contain(REDACTED);
    } finally {
      abort.abort();
      await watching;
    }
  });

  it('CLI: validate --server reports every error with document and field path and stores nothing; delete and history', async () => {
    const api = client(cp.address);
    const rev = (await api.list({})).revision;
    const bad = cluster('web', [0]);
    const badFile = join(dir, 'bad.yaml');
    await writeFile(badFile, toYaml([bad, routes('main', [prefixRoute('/', 'nowhere')])]));
    const v = await outrigger(['validate', '-f', badFile, '--server'], env());
    expect(v.code).to.equal(1);
    expect(v.stderr).to.contain('Cluster/web: spec.endpoints[0].address.port');
    expect(v.stderr).to.match(/RouteConfiguration\/main: .*nowhere/);
    // apply -f of the same file: refused with the status, document and field path; nothing stored.
    const applied = await outrigger(['apply', '-f', badFile], env());
    expect(applied.code).to.equal(1);
    expect(applied.stderr).to.match(/^outrigger apply: INVALID_ARGUMENT: .*Cluster\/web: spec\.endpoints\[0\]\.address\.port/);
    expect((await api.list({})).revision).to.equal(rev);
    const goodFile = join(dir, 'good.yaml');
    await writeFile(goodFile, toYaml([cluster('web', [1010])]));
    const ok = await outrigger(['validate', '-f', goodFile, '--server'], env());
    expect(ok.code, ok.stderr).to.equal(0);
    expect((await api.list({})).revision).to.equal(rev);
    const noAuth = await outrigger(['validate', '-f', goodFile, '--server'], { OUTRIGGER_CONTROL_PLANE: cp.address });
    expect(noAuth.code).to.equal(1);
    expect(noAuth.stderr).to.contain('UNAUTHENTICATED');

    await api.apply({ documents: J(cluster('api', [1011])) });
    const del = await outrigger(['delete', 'clusters', 'api'], env());
    expect(del.code, del.stderr).to.equal(0);
    expect(await codeOf(api.get({ kind: 'Cluster', name: 'api' }))).to.equal(Code.NotFound);
    const hist = await outrigger(['history', 'cluster', 'api'], env());
    expect(hist.code, hist.stderr).to.equal(0);
    const rows = hist.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    expect(rows.map((r) => r.slice(0, 3))).to.deep.equal([
      ['REVISION', 'ACTION', 'WHO'],
      [String(rev + 1n), 'APPLY', rows[1]![2]!],
      [String(rev + 2n), 'DELETE', rows[1]![2]!],
    ]);
    expect(rows[1]![2]).to.match(/^token:/);
  });

  it('outrigger control refuses an empty --token-file', async () => {
    const empty = join(dir, 'empty-token');
    await writeFile(empty, '\n');
    const res = await outrigger(['control', '--store', `file:${join(dir, 'store')}`, '--port', '0', '--metrics-port', '0', '--token-file', empty]);
    expect(res.code).to.equal(2);
    expect(res.stderr).to.contain('is empty');
  });
});
