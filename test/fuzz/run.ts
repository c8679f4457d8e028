/**
 * `npm run fuzz`: the fuzz targets of test/fuzz/targets.ts on a million inputs
 * or more each, bounded in time. Each target runs in its own child process
 * in batches of seeded fast-check runs; the parent reports, per target, the
 * inputs checked and any crash or difference from the reference (with the
 * seed and path that reproduce it, shrunk), and treats a child that makes no
 * progress for --hang-seconds as a hang (killed; the batch's seed is printed).
 * Exits 1 when any target failed or hung.
 *
 *   npm run fuzz -- [--inputs 1000000] [--seconds 1500] [--hang-seconds 60] [--seed 1] [--target router]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { TARGETS } from './targets.js';

const RUNS_PER_BATCH = 2000;

type Report =
  | { kind: 'progress'; inputs: number; batchSeed: number }
  | { kind: 'done'; inputs: number; ms: number }
  | { kind: 'failed'; inputs: number; seed: number; path: string; counterexample: string; error: string };

/** Child: one target, batch after batch, until `inputs` or `deadline`. */
function runTarget(name: string, inputs: number, deadline: number, seed: number): void {
  const t = TARGETS.find((x) => x.name === name)!;
  const t0 = Date.now();
  let done = 0;
  for (let batch = 0; done < inputs && Date.now() < deadline; batch++) {
    const batchSeed = seed * 1_000_003 + batch;
    process.send!({ kind: 'progress', inputs: done, batchSeed } satisfies Report);
    const r = fc.check(t.property(), { seed: batchSeed, numRuns: RUNS_PER_BATCH });
    if (r.failed) {
      process.send!({
        kind: 'failed',
        inputs: done + r.numRuns * t.inputsPerRun,
        seed: r.seed,
        path: r.counterexamplePath ?? '',
        counterexample: fc.stringify(r.counterexample).slice(0, 2000),
        error: String((r.errorInstance as Error | undefined)?.message ?? r.errorInstance).slice(0, 1000),
      } satisfies Report);
      return;
    }
    done += RUNS_PER_BATCH * t.inputsPerRun;
  }
  process.send!({ kind: 'done', inputs: done, ms: Date.now() - t0 } satisfies Report);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      inputs: { type: 'string', default: '1000000' },
      seconds: { type: 'string', default: '1500' },
      'hang-seconds': { type: 'string', default: '60' },
      seed: { type: 'string', default: '1' },
      target: { type: 'string' },
    },
  });
  const inputs = Number(values.inputs);
  const perTargetMs = (Number(values.seconds) * 1000) / TARGETS.length;
  const hangMs = Number(values['hang-seconds']) * 1000;
  const targets = TARGETS.filter((t) => !values.target || t.name.includes(values.target));
  let bad = 0;
  for (const t of targets) {
    const deadline = Date.now() + perTargetMs;
    const child = fork(fileURLToPath(import.meta.url), ['--child', t.name, String(inputs), String(deadline), values.seed!], {
      execArgv: ['--import', 'tsx'],
    });
    const outcome = await new Promise<string>((resolve) => {
      let last: Report | undefined;
      let watchdog = setTimeout(hang, hangMs);
      function hang(): void {
        child.kill('SIGKILL');
        const seed = last?.kind === 'progress' ? last.batchSeed : '?';
        resolve(`HANG: no progress for ${hangMs / 1000} s after ${last?.inputs ?? 0} inputs (batch seed ${seed}, ${RUNS_PER_BATCH} runs)`);
      }
      child.on('message', (m: Report) => {
        last = m;
        clearTimeout(watchdog);
        watchdog = setTimeout(hang, hangMs);
        if (m.kind === 'done') {
          clearTimeout(watchdog);
          const rate = Math.round(m.inputs / (m.ms / 1000));
          resolve(`${m.inputs >= inputs ? 'ok' : 'SHORT (time bound)'}: ${m.inputs} inputs in ${(m.ms / 1000).toFixed(1)} s (${rate}/s), no crash or difference`);
        } else if (m.kind === 'failed') {
          clearTimeout(watchdog);
          resolve(`FAILED after ~${m.inputs} inputs: ${m.error}\n    counterexample: ${m.counterexample}\n    reproduce: fc.assert(property, { seed: ${m.seed}, path: "${m.path}" })`);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(watchdog);
        resolve(`CRASH: the child exited with ${code} after ${last?.inputs ?? 0} inputs`);
      });
    });
    if (!outcome.startsWith('ok')) bad++;
    console.log(`${t.name}: ${outcome}`);
  }
  return bad ? 1 : 0;
}

const i = process.argv.indexOf('--child');
if (i >= 0) {
  const [name, inputs, deadline, seed] = process.argv.slice(i + 1);
  runTarget(name!, Number(inputs), Number(deadline), Number(seed));
  process.exit(0);
} else {
  void main().then((code) => process.exit(code));
}
