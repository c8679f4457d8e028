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

  it('sidecar with a bad tracing setting exits 2 naming the flag or OTEL_* variable', () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['bin/outrigger.js', 'sidecar', '--config', 'x.yaml', ...args], { env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', ...env }, encoding: 'utf8' });
    const a = run(['--trace-otlp-endpoint', 'http://c:4318', '--trace-sampling', '2']);
    expect(a.status).to.equal(2);
    expect(a.stderr).to.include('--trace-sampling: a ratio in [0, 1] expected, got "2"');
    const b = run([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER: 'nope' });
    expect(b.status).to.equal(2);
    expect(b.stderr).to.include('OTEL_TRACES_SAMPLER: unsupported sampler "nope"');
  });
});
