/**
 * Child-process management and /proc accounting for the benchmark.
 *
 * Every process is spawned directly (no shell), so the PID we hold is the
 * server's own (taskset execs its command). All of them are registered and
 * stopped on exit, on SIGINT/SIGTERM and on an uncaught error.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import * as net from 'node:net';

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout+stderr are written here (for servers), or collected in memory (for tools). */
  readonly logFile?: string;
  readonly exited: Promise<number | null>;
  exitCode(): number | null | undefined;
}

const live = new Set<Managed>();

export const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export interface SpawnOptions {
  /** CPU list for taskset, e.g. "0"; undefined = no pinning. */
  cpus?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Send stdout+stderr to this file instead of pipes. */
  logFile?: string;
}

export function spawnManaged(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Managed {
  const [file, argv] = opts.cpus !== undefined ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  let fd: number | undefined;
  if (opts.logFile) fd = openSync(opts.logFile, 'a');
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: fd !== undefined ? ['ignore', fd, fd] : ['ignore', 'pipe', 'pipe'],
  });
  if (fd !== undefined) closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${file})`);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? 128 : null);
      live.delete(m);
      resolve(code);
    });
    child.once('error', () => {
      code = 127;
      live.delete(m);
      resolve(code);
    });
  });
  const m: Managed = { name, child, pid: child.pid, logFile: opts.logFile, exited, exitCode: () => code };
  live.add(m);
  return m;
}

/** SIGTERM, then SIGKILL after graceMs. */
export async function stop(m: Managed, graceMs = 2000): Promise<void> {
  if (m.exitCode() !== undefined) return;
  try {
    process.kill(m.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await m.exited;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((m) => stop(m)));
}

/** Last resort from a synchronous 'exit' handler. */
export function killAllSync(): void {
  for (const m of live) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

let handlersInstalled = false;
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping everything\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

/** Run a tool to completion with a hard time limit; output collected. */
export async function runTool(
  name: string,
  cmd: string,
  args: string[],
  opts: { cpus?: string | undefined; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean; cpuS: number }> {
  const m = spawnManaged(name, cmd, args, { cpus: opts.cpus, env: opts.env });
  // The tool's own CPU time: its /proc entry is gone once it is reaped, so
  // sample it while it runs (the last reading misses at most ~100 ms of exit).
  let lastTicks = 0;
  const poll = setInterval(() => {
    const t = ticksOf(m.pid);
    if (t > 0) lastTicks = t;
  }, 100);
  let stdout = '';
  let stderr = '';
  m.child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  m.child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const t = setTimeout(() => {
    timedOut = true;
    void stop(m, 1000);
  }, opts.timeoutMs);
  const code = await m.exited;
  clearTimeout(t);
  clearInterval(poll);
  // Let the pipes drain.
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr, timedOut, cpuS: lastTicks / CLK_TCK };
}

/** Wait for a line matching re on the child's stdout. */
export function waitForLine(m: Managed, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const t = setTimeout(() => done(new Error(`${m.name}: no "${re.source}" within ${timeoutMs} ms\n${err}`)), timeoutMs);
    const onData = (d: string): void => {
      buf += d;
      const match = buf.match(re);
      if (match) done(undefined, match);
    };
    const onErr = (d: string): void => {
      err += d;
    };
    const onExit = (): void => done(new Error(`${m.name} exited (${m.exitCode()}) before it was ready\n${buf}${err}`));
    function done(e?: Error, match?: RegExpMatchArray): void {
      clearTimeout(t);
      m.child.stdout?.off('data', onData);
      m.child.off('exit', onExit);
      if (e) reject(e);
      else resolve(match!);
    }
    m.child.stdout?.setEncoding('utf8').on('data', onData);
    m.child.stderr?.setEncoding('utf8').on('data', onErr);
    m.child.once('exit', onExit);
  });
}

/** Keep reading a child's pipes so it never blocks on a full pipe. */
export function drainOutput(m: Managed, keep = 8192): () => string {
  let tail = '';
  const add = (d: string): void => {
    tail = (tail + d).slice(-keep);
  };
  m.child.stdout?.setEncoding('utf8').on('data', add);
  m.child.stderr?.setEncoding('utf8').on('data', add);
  return () => tail;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean, host = '127.0.0.1'): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && alive()) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

// ---- /proc accounting -------------------------------------------------------

/** utime+stime in clock ticks of one process (all its threads), or 0 if gone. */
function ticksOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state); utime is field 14, stime field 15.
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function ppidOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/** The PID and all its descendants (nginx master + workers, a node process). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const pp = ppidOf(pid);
    if (pp <= 0) continue;
    let l = children.get(pp);
    if (!l) children.set(pp, (l = []));
    l.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** CPU seconds (utime+stime) of a process tree, keyed by PID so exits do not skew deltas. */
export function treeCpu(root: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of processTree(root)) m.set(p, ticksOf(p) / CLK_TCK);
  return m;
}

/** CPU seconds used between two treeCpu readings (PIDs seen in `after`). */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let d = 0;
  for (const [pid, v] of after) d += v - (before.get(pid) ?? 0);
  return Math.max(0, d);
}

export interface CpuTimes {
  busy: number;
  total: number;
}

/** Per-CPU busy/total seconds from /proc/stat. */
export function cpuStat(): Map<number, CpuTimes> {
  const out = new Map<number, CpuTimes>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out.set(Number(m[1]), { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK });
  }
  return out;
}

/**
 * Starts a benchmark backend (`bench/backends/NAME.ts`, run through tsx, on a
 * free port) pinned to `cpus`, waits for its `LISTENING <port>` line and keeps
 * draining its output; resolves with the process and its port.
 */
export async function startBackend(name: string, cpus: string | undefined, extraArgs: readonly string[] = []): Promise<{ proc: Managed; port: number }> {
  const root = new URL('../..', import.meta.url).pathname;
  const proc = spawnManaged(`backend-${name}`, process.execPath, ['--import', 'tsx', `${root}bench/backends/${name}.ts`, '--port', '0', ...extraArgs], { cpus, cwd: root });
  const port = Number((await waitForLine(proc, /LISTENING (\d+)/, 30_000))[1]);
  drainOutput(proc);
  return { proc, port };
}
