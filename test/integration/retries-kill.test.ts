import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * A backend in its own process (so SIGKILL is a real crash: no FIN, no
 * GOAWAY, sockets reset by the kernel) answering its name; `/healthz` for
 * the HTTP health check. HTTP/1.1 or h2c.
 */
class ChildBackend {
  proc: ChildProcess | undefined;
  port = 0;

  constructor(
    readonly name: string,
    private readonly h2: boolean,
  ) {}

  async start(port = 0): Promise<void> {
    const mod = this.h2 ? 'http2' : 'http';
    const script =
      `const m=require('${mod}');const name=process.argv[1];` +
      `const s=m.createServer((req,res)=>{req.resume();res.writeHead(200,{'content-type':'text/plain'});res.end(req.url==='/healthz'?'ok':name)});` +
      `s.listen(Number(process.argv[2]),'127.0.0.1',()=>process.stdout.write(s.address().port+'\\n'));`;
    const proc = spawn(process.execPath, ['-e', script, this.name, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc = proc;
    this.port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).once('line', (l) => resolve(Number(l)));
      proc.once('exit', (code) => reject(new Error(`backend ${this.name} exited (${code})`)));
    });
  }

  /** SIGKILL, and the exit observed (the port is closed from then on). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
  }
}

describe('retries under a crashing endpoint (issue 12 proof a)', function () {
  for (const protocol of ['UPSTREAM_PROTOCOL_HTTP1', 'UPSTREAM_PROTOCOL_HTTP2'] as const) {
    it(`${protocol}: SIGKILL one of 3 endpoints under steady load: zero failed requests; no attempts on it after 1 s; back after its health checks pass`, async () => {
      const h2 = protocol === 'UPSTREAM_PROTOCOL_HTTP2';
      const backends = ['a', 'b', 'c'].map((n) => new ChildBackend(n, h2));
      await Promise.all(backends.map((b) => b.start()));
      const victim = backends[2]!;
      const victimKey = `127.0.0.1:${victim.port}`;
      const sc = await startTestSidecar([
        listener('main'),
        routes('main', [
          prefixRoute('/', 'c', {
            retryPolicy: { retryOn: ['reset', 'connect-failure', '5xx'], numRetries: 3, retryBudget: { budgetPercent: 100, minRetryConcurrency: 20 } },
          }),
        ]),
        cluster('c', backends.map((b) => b.port), protocol, {
          healthCheck: {
            interval: '0.1s',
            // Checks armed before the first request would otherwise wait the 60 s default.
            noTrafficInterval: '0.1s',
            timeout: '0.5s',
            unhealthyThreshold: 1,
            healthyThreshold: 2,
            // h2c backends do not speak HTTP/1.1: a TCP connect check.
            ...(h2 ? { tcp: {} } : { http: { path: '/healthz' } }),
          },
        }),
      ]);
      const runtime = sc.sidecar.listeners.current()!.clusters.get('c')!;
      // Every attempt on the victim, as it ends (the seam feeds the endpoint stats).
      const victimAttempts: number[] = [];
      runtime.stats.onAttempt((key) => {
        if (key === victimKey) victimAttempts.push(performance.now());
      });
      const agent = new Agent({ connections: 16 });
      const url = `http://127.0.0.1:${sc.port()}/x`;
      const answers: { name: string; at: number }[] = [];
      const failures: string[] = [];
      let stop = false;
      const MAX_REQUESTS = 20_000; // a bound on the load, whatever happens
      const worker = async (): Promise<void> => {
        while (!stop && answers.length + failures.length < MAX_REQUESTS) {
          try {
            const r = await request(url, { dispatcher: agent });
            const body = await r.body.text();
            if (r.statusCode === 200) answers.push({ name: body, at: performance.now() });
            else failures.push(`${r.statusCode} ${r.headers['x-outrigger-local-reply'] ?? ''} ${body.trim()}`);
          } catch (err) {
            failures.push(`error ${(err as Error).message}`);
          }
        }
      };
      const workers = Array.from({ length: 6 }, () => worker());
      try {
        await waitFor(() => new Set(answers.map((a) => a.name)).size === 3 && answers.length >= 150, 'steady traffic on all three endpoints', 10_000);
        const killAt = performance.now();
        await victim.kill();
        await waitFor(() => runtime.healthLabelOf(victimKey) === 'failed_active_hc', 'the health checks take the victim out', 5000);
        const outAt = performance.now();
        const mark = answers.length;
        await waitFor(() => answers.length >= mark + 300, '300 more requests', 10_000);
        const last = Math.max(...victimAttempts);
        expect(last - killAt, 'ms from the kill to the last attempt on the dead endpoint').to.be.below(1000);
        // Answers the victim sent just before dying may still be on their way; none comes once it is out.
        expect(answers.filter((a) => a.at > outAt && a.name === 'c')).to.have.length(0);
        // Back on the same port: traffic returns once healthyThreshold checks passed.
        await victim.start(victim.port);
        await waitFor(() => runtime.healthLabelOf(victimKey) === 'healthy', 'the restarted endpoint passes its health checks', 5000);
        const restartedAt = performance.now();
        await waitFor(() => answers.filter((a) => a.at > restartedAt && a.name === 'c').length >= 20, 'traffic on the restarted endpoint', 10_000);
      } finally {
        stop = true;
        await Promise.all(workers);
        await agent.close();
        await sc.close();
        await Promise.all(backends.map((b) => b.kill()));
      }
      expect(failures, 'failed requests').to.deep.equal([]);
      const metrics = await sc.metrics();
      // The crash cost retries (in-flight resets and connect failures), none of them visible to a client.
      expect(metrics).to.match(/outrigger_upstream_retries_total\{cluster="c",kind="retry"\} [1-9]/);
    });
  }
});
