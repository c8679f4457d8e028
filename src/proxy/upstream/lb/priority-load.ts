/**
 * Envoy's priority-load computation (source/common/upstream/load_balancer_impl.cc:
 * recalculatePerPriorityState, recalculatePerPriorityPanic,
 * recalculateLoadInTotalPanic, choosePriority), in the same integer
 * arithmetic so the same endpoint states give the same percentages. Pure:
 * the locality picker calls it once per picker build.
 *
 * Documented by Envoy in "Priority levels" and "Degraded endpoints"
 * (intro/arch_overview/upstream/load_balancing/priority and .../degraded);
 * the unit tests replay those pages' tables.
 */

/** Endpoint counts of one priority level (draining endpoints left out). */
export interface LevelCounts {
  readonly total: number;
  readonly healthy: number;
  readonly degraded: number;
}

/** Percent of requests per priority (healthy and degraded each; together they add up to 100), and which levels are in panic. */
export interface PriorityLoad {
  readonly healthy: readonly number[];
  readonly degraded: readonly number[];
  /** A level in panic balances over all of its endpoints, whatever their health. */
  readonly panic: readonly boolean[];
  /** Health scores: min(100, overprovisioning × healthy / total), per level. */
  readonly health: readonly number[];
  readonly degradedHealth: readonly number[];
}

/**
 * `overprovisioningFactor` in percent (140 = Envoy's 1.4); `panicThreshold`
 * in percent (0 disables panic).
 */
export function priorityLoad(levels: readonly LevelCounts[], overprovisioningFactor: number, panicThreshold: number): PriorityLoad {
  const n = levels.length;
  const health = levels.map((l) => (l.total > 0 ? Math.min(100, Math.floor((overprovisioningFactor * l.healthy) / l.total)) : 0));
  const degradedHealth = levels.map((l) => (l.total > 0 ? Math.min(100, Math.floor((overprovisioningFactor * l.degraded) / l.total)) : 0));
  const healthy = new Array<number>(n).fill(0);
  const degraded = new Array<number>(n).fill(0);
  const panic = new Array<boolean>(n).fill(false);
  const normalized = Math.min(100, sum(health) + sum(degradedHealth));
  const threshold = Math.min(100, panicThreshold);

  if (normalized > 0) {
    // Healthy availability first, then what is left by degraded availability.
    const first = distribute(healthy, health, 100, normalized);
    const second = distribute(degraded, degradedHealth, first.remaining, normalized);
    // Rounding leftovers go to the first level with healthy (else degraded) availability.
    if (second.remaining > 0) {
      if (first.firstAvailable >= 0) healthy[first.firstAvailable]! += second.remaining;
      else degraded[second.firstAvailable]! += second.remaining;
    }
  }

  if (threshold === 0 && normalized === 0) {
    // Panic disabled and nothing available: all to P=0, whose healthy set is empty (no_healthy_upstream).
    healthy[0] = 100;
    return { healthy, degraded, panic, health, degradedHealth };
  }
  let totalPanic = n > 0;
  for (let i = 0; i < n; i++) {
    // A fully available system never panics, however unhealthy one level is.
    panic[i] = normalized === 100 ? false : inPanic(levels[i]!, threshold);
    totalPanic &&= panic[i]!;
  }
  if (totalPanic) loadInTotalPanic(levels, healthy, degraded);
  return { healthy, degraded, panic, health, degradedHealth };
}

/** Envoy's isHostSetInPanic: healthy + degraded share below the threshold. */
export function inPanic(l: LevelCounts, threshold: number): boolean {
  const healthyPct = l.total === 0 ? 0 : (100 * l.healthy) / l.total;
  const degradedPct = l.total === 0 ? 0 : (100 * l.degraded) / l.total;
  return healthyPct + degradedPct < Math.min(100, threshold);
}

/** Every level in panic: load by endpoint count, whatever the health. */
function loadInTotalPanic(levels: readonly LevelCounts[], healthy: number[], degraded: number[]): void {
  const total = levels.reduce((a, l) => a + l.total, 0);
  degraded.fill(0);
  if (total === 0) {
    healthy.fill(0);
    healthy[0] = 100;
    return;
  }
  let left = 100;
  let firstNonEmpty = -1;
  levels.forEach((l, i) => {
    if (firstNonEmpty < 0 && l.total > 0) firstNonEmpty = i;
    healthy[i] = Math.floor((100 * l.total) / total);
    left -= healthy[i]!;
  });
  healthy[firstNonEmpty]! += left;
}

function distribute(load: number[], availability: readonly number[], total: number, normalized: number): { firstAvailable: number; remaining: number } {
  let firstAvailable = -1;
  for (let i = 0; i < availability.length; i++) {
    if (firstAvailable < 0 && availability[i]! > 0) firstAvailable = i;
    load[i] = Math.min(total, Math.floor((availability[i]! * 100) / normalized));
    total -= load[i]!;
  }
  return { firstAvailable, remaining: total };
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/**
 * Envoy's choosePriority: `draw` in [0, 100) picks the level whose
 * cumulative healthy load passes it, then (when the healthy loads do not add
 * up to it) by degraded load. Returns the level, negative (−1 − level) for
 * its degraded endpoints.
 */
export function choosePriority(load: PriorityLoad, draw: number): number {
  const x = draw + 1; // 1..100, as Envoy's hash % 100 + 1
  let acc = 0;
  const h = load.healthy;
  for (let p = 0; p < h.length; p++) {
    acc += h[p]!;
    if (x <= acc) return p;
  }
  const d = load.degraded;
  for (let p = 0; p < d.length; p++) {
    acc += d[p]!;
    if (x <= acc) return -1 - p;
  }
  return 0; // unreachable: the loads add up to 100
}
