import { readFile } from 'node:fs/promises';

/** The p-th percentile (nearest rank) of an ascending list; NaN when empty. */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A process's resident memory and CPU time so far (utime + stime, fields 14 and 15 of /proc/PID/stat). */
export async function procStats(pid: number): Promise<{ rssMiB: number; cpuSec: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return { rssMiB: rssKb / 1024, cpuSec: (Number(stat[11]) + Number(stat[12])) / 100 };
}
