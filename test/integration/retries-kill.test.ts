import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * A backend in its own process (so SIGKILL is a real crash: no GOAWAY, its
 * sockets closed or reset by the kernel) answering 200 with its name in
 * `x-backend` and no body; `/healthz` for the HTTP health check. HTTP/1.1
 * or h2c. A backend started with `holds` never answers `/hold` and reports
 * each such request on its stdout (`held`): a request parked there is in
 * flight when it is killed.
 *
 * Each answer leaves in one write (HTTP/1.1: head with content-length 0;
 * h2c: one HEADERS frame with END_STREAM), so a SIGKILL falls before or
 * after an answer, never inside one. node:http2 sends a body's END_STREAM in
 * a later write than the body (`res.end(body)`: HEADERS + DATA, then an empty
 * DATA with END_STREAM once the first write is done); killed between the
 * two, the backend leaves a response that has begun and never ends, which
 * the sidecar rightly passes down as a reset (the head was relayed, no retry
 * is possible: Envoy's behaviour too). That is not what this test is about.
 */
class ChildBackend {
  proc: ChildProcess | undefined;
  port = 0;
  /** `/hold` requests this backend received and is holding. */
  held = 0;
  private heldWaiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly h2: boolean,
    private readonly holds = false,
  ) {}

  async start(port = 0): Promise<void> {
    const common = `const name=process.argv[1];const holds=process.argv[3]==='1';`;
    const listen = `s.listen(Number(process.argv[2]),'127.0.0.1',()=>process.stdout.write(s.address().port+'\\n'));`;
    const script = this.h2
      ? `${common}const s=require('http2').createServer();` +
        `s.on('stream',(st,h)=>{st.resume();if(holds&&h[':path']==='/hold'){process.stdout.write('held\\n');return}` +
        `st.respond({':status':200,'x-backend':name},{endStream:true})});${listen}`
      : `${common}const s=require('http').createServer((req,res)=>{req.resume();` +
        `if(req.url==='/healthz'){res.writeHead(200,{'content-type':'text/plain'});res.end('ok');return}` +
        `if(holds&&req.url==='/hold'){process.stdout.write('held\\n');return}` +
        `res.writeHead(200,{'x-backend':name,'content-length':'0'});res.end()});${listen}`;
    const proc = spawn(process.execPath, ['-e', script, this.name, String(port), this.holds ? '1' : '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc = proc;
    const lines = createInterface({ input: proc.stdout! });
    this.port = await new Promise<number>((resolve, reject) => {
      lines.once('line', (l) => {
        lines.on('line', (more) => {
          if (more !== 'held') return;
          this.held++;
          for (const w of this.heldWaiters.splice(0)) w();
        });
        resolve(Number(l));
      });
      proc.once('exit', (code) => reject(new Error(`backend ${this.name} exited (${code})`)));
    });
  }

  /** Resolves when the backend reports the next `/hold` request it holds. */
  nextHeld(): Promise<void> {
    return new Promise((r) => this.heldWaiters.push(r));
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
      const backends = ['a', 'b', 'c'].map((n) => new ChildBackend(n, h2, n === 'c'));
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
            if (r.statusCode === 200) answers.push({ name: String(r.headers['x-backend']), at: performance.now() });
            else failures.push(`${r.statusCode} ${r.headers['x-outrigger-local-reply'] ?? ''} ${body.trim()}`);
          } catch (err) {
            failures.push(`error ${(err as Error).message}`);
          }
        }
      };
      const workers = Array.from({ length: 6 }, () => worker());
      try {
        await waitFor(() => new Set(answers.map((a) => a.name)).size === 3 && answers.length >= 150, 'steady traffic on all three endpoints', 10_000);
        // Park a request on the victim, so that one attempt is surely in flight there when it dies (the steady
        // load alone may not put one there, nor reach it before the health checks do on a loaded machine):
        // `/hold` goes round the endpoints, answered at once by the others, until the victim holds one.
        const holdUrl = `http://127.0.0.1:${sc.port()}/hold`;
        const victimHolds = victim.nextHeld();
        let parked: Promise<string> | undefined;
        for (let i = 0; i < 30 && victim.held === 0; i++) {
          const p = request(holdUrl, { dispatcher: agent }).then(
            async (r) => {
              const body = await r.body.text();
              return `${r.statusCode} ${r.headers['x-backend'] ?? body.trim()}`;
            },
            (err: Error) => `error ${err.message}`,
          );
          parked = p;
          const answered = await Promise.race([p, victimHolds.then(() => undefined)]);
          if (answered !== undefined) expect(answered).to.be.oneOf(['200 a', '200 b']);
        }
        expect(victim.held, 'requests held by the victim').to.equal(1);
        const killAt = performance.now();
        await victim.kill();
        // The attempt in flight on the victim was reset by the crash, and retried on a survivor: the client sees an answer.
        expect(await parked!, 'the request parked on the victim').to.be.oneOf(['200 a', '200 b']);
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
      // The crash cost retries (the parked request's reset at least; connect failures too when the load reached the dead
      // port before the health checks took it out), none of them visible to a client.
      expect(metrics).to.match(/outrigger_upstream_retries_total\{cluster="c",kind="retry"\} [1-9]/);
    });
  }
});
