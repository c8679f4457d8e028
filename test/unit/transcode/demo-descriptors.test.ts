import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/loader.js';
import { buildProxyState } from '../../../src/proxy/state/proxy-state.js';

/** The committed demo descriptor set must be what `npm run demo:descriptors` builds now (stale = fail). */
describe('transcode: demo descriptors', () => {
  it('examples/demo/bookstore.binpb is fresh', function () {
    this.timeout(30_000);
    const dir = mkdtempSync(join(tmpdir(), 'binpb-'));
    try {
      const out = join(dir, 'b.binpb');
      execFileSync('npx', ['buf', 'build', '--exclude-source-info', '-o', out, '--path', 'proto/outrigger/examples/bookstore']);
      expect(Buffer.compare(readFileSync(out), readFileSync('examples/demo/bookstore.binpb'))).to.equal(
        0,
        'run `npm run demo:descriptors` and commit examples/demo/bookstore.binpb',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the demo config compiles a transcoder with every Bookstore REST binding', async () => {
    const r = await loadConfig('examples/demo/sidecar.yaml');
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    const state = buildProxyState(r.value);
    const [tr] = [...state.transcoders.values()];
    expect(tr!.matcher.all.map((b) => b.label)).to.include.members(['GET /v1/shelves', 'POST /v1/shelves/{shelf}/books']);
  });
});
