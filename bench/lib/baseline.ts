import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/**
 * The last accepted benchmark figures (bench/baseline.json) and the
 * comparison a later run prints against them (`npm run bench -- --compare`).
 * Absolute µs per request drift by a third between runs on shared machines,
 * so the comparison leads with the ratio to nginx measured in the same run
 * (CPU per request and req/s), then the absolute figures.
 */

export interface BaselineRow {
  readonly target: string;
  readonly available: boolean;
  readonly rps: number | null;
  readonly proxyCpuUsPerReq: number | null;
}

export interface BaselineEntry {
  readonly cpuUsPerReq: number;
  readonly rps: number;
  /** Same-run nginx figures (absent for the transcoded protocols, which nginx does not serve). */
  readonly nginxCpuUsPerReq: number | null;
  readonly nginxRps: number | null;
}

export interface Baseline {
  readonly acceptedAt: string;
  readonly gitCommit: string;
  readonly accessLog: boolean;
  readonly protocols: Readonly<Record<string, BaselineEntry>>;
}

export function entriesOf(summary: Readonly<Record<string, readonly BaselineRow[]>>): Record<string, BaselineEntry> {
  const out: Record<string, BaselineEntry> = {};
  for (const [proto, rows] of Object.entries(summary)) {
    const ours = rows.find((r) => r.target === 'outrigger' && r.available);
    if (!ours || ours.proxyCpuUsPerReq === null || !ours.rps) continue;
    const nginx = rows.find((r) => r.target === 'nginx' && r.available);
    out[proto] = {
      cpuUsPerReq: ours.proxyCpuUsPerReq,
      rps: ours.rps,
      nginxCpuUsPerReq: nginx?.proxyCpuUsPerReq ?? null,
      nginxRps: nginx?.rps ?? null,
    };
  }
  return out;
}

export function readBaseline(file: string): Baseline | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as Baseline;
}

export function writeBaseline(file: string, b: Baseline): void {
  writeFileSync(file, JSON.stringify(b, null, 2) + '\n');
}

const x = (n: number): string => `${n.toFixed(2)}×`;

/** Report lines: per protocol, CPU/req and req/s relative to nginx then and now, and the absolute change. */
export function compareLines(base: Baseline, now: Readonly<Record<string, BaselineEntry>>): string[] {
  const lines: string[] = [];
  for (const [proto, n] of Object.entries(now)) {
    const b = base.protocols[proto];
    if (!b) {
      lines.push(`- ${proto}: not in the baseline`);
      continue;
    }
    const parts: string[] = [];
    if (b.nginxCpuUsPerReq && n.nginxCpuUsPerReq) {
      const then = b.cpuUsPerReq / b.nginxCpuUsPerReq;
      const cur = n.cpuUsPerReq / n.nginxCpuUsPerReq;
      parts.push(`CPU/req ${x(then)} → ${x(cur)} nginx's (${x(cur / then)} the baseline's ratio)`);
    }
    if (b.nginxRps && n.nginxRps) parts.push(`req/s ${x(b.rps / b.nginxRps)} → ${x(n.rps / n.nginxRps)} nginx's`);
    parts.push(`absolute ${Math.round(b.cpuUsPerReq)} → ${Math.round(n.cpuUsPerReq)} µs/req (${x(n.cpuUsPerReq / b.cpuUsPerReq)}), ${Math.round(b.rps)} → ${Math.round(n.rps)} req/s`);
    lines.push(`- ${proto}: ${parts.join('; ')}`);
  }
  return lines;
}
