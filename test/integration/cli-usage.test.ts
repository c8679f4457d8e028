import { expect } from 'chai';
import { spawnSync } from 'node:child_process';

/** Regression: an unknown flag on a command without its own parse-error handling crashed with a stack trace. */
describe('outrigger CLI usage errors', function () {
  this.timeout(30000);
  for (const cmd of ['sidecar', 'demo']) {
    it(`${cmd} with an unknown flag exits 2 with one usage line`, () => {
      const r = spawnSync(process.execPath, ['bin/outrigger.js', cmd, '--bogus-flag'], {
        env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' },
        encoding: 'utf8',
      });
      expect(r.status).to.equal(2);
      expect(r.stderr).to.include(`outrigger ${cmd}: Unknown option '--bogus-flag'`);
      expect(r.stderr).to.not.include('    at ');
    });
  }

  it('sidecar with a malformed --locality exits 2 naming the flag', () => {
    const r = spawnSync(process.execPath, ['bin/outrigger.js', 'sidecar', '--config', 'x.yaml', '--locality', 'a/b/c/d'], {
      env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' },
      encoding: 'utf8',
    });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.include('--locality: expected region[/zone[/subZone]], got "a/b/c/d"');
  });
});
