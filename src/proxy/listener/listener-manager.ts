import type { ConfigSnapshot } from '../../config/snapshot.js';
import type { ProxyContext } from '../context.js';
import { buildProxyState, endpointKeys, type ProxyState, type StateDeps } from '../state/proxy-state.js';
import { DescriptorSources } from '../transcode/descriptor-sources.js';
import { ProxyListener } from './proxy-listener.js';
import { HealthCheckers } from '../upstream/health/health-checkers.js';
import { OutlierDetectors } from '../upstream/outlier/outlier-detectors.js';
import { systemRandom } from '../../core/random.js';
import type { ModuleLoader } from '../../core/module-loader.js';
import { preparePlugins } from '../filters/plugin/prepare-plugins.js';

/**
 * Owns the listeners of the data path and applies config snapshots to them:
 * compile the new ProxyState, give unchanged listeners the new view (their
 * sockets stay open), open listeners that are new or moved, drain the ones
 * that went away, and close upstream pools no cluster refers to any more.
 */
export class ListenerManager {
  private readonly listeners = new Map<string, ProxyListener>();
  private state: ProxyState | undefined;
  private draining = false;
  /** Descriptor files and reflection answers that change without a config change (swap via `refresh`). */
  readonly descriptors: DescriptorSources;
  /** Active health checkers, one per cluster with a `healthCheck`, following config versions. */
  readonly health: HealthCheckers;
  /** Passive outlier detectors, one per cluster with an `outlierDetection`, following config versions. */
  readonly outliers: OutlierDetectors;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly drainTimeoutMs: number,
    /** Registries config versions are compiled with (filters); ORIGINAL_DST resolution comes from ctx. */
    private readonly deps: Omit<StateDeps, 'originalDst'> & {
      /** Where plugin modules (filters, custom health checks) are imported; without it a config naming one does not compile. */
      readonly modules?: ModuleLoader | undefined;
    } = {},
  ) {
    this.descriptors = new DescriptorSources(ctx, (key) => this.refresh(key));
    this.health = new HealthCheckers(
      ctx.clock,
      deps.random ?? systemRandom(),
      (cluster, _ep, passed) => ctx.metrics.healthChecks.inc({ cluster, result: passed ? 'pass' : 'fail' }),
      deps.modules,
    );
    this.outliers = new OutlierDetectors(ctx.clock, (cluster, endpoint, reason) => {
      ctx.metrics.ejections.inc({ cluster, reason });
      ctx.logger.warn({ cluster, endpoint, reason }, 'endpoint ejected');
    });
    // outrigger_upstream_circuit_breaker_open reads the clusters in force at scrape time: nothing per request.
    ctx.metrics.setBreakerSource(() => this.state?.clusters.values() ?? []);
  }

  /**
   * A descriptor source changed: recompile the current snapshot with the new
   * descriptors and point every listener at it in one step (the addresses are
   * the same, so no socket changes). A compile failure keeps the old state.
   */
  private refresh(key: string): void {
    const cur = this.state;
    if (!cur || this.draining) return;
    let next: ProxyState;
    try {
      next = buildProxyState(cur.snapshot, this.descriptors, this.stateDeps());
    } catch (err) {
      this.ctx.logger.error({ source: key, err: (err as Error).message }, 'descriptor change rejected; the last good descriptors keep serving');
      return;
    }
    for (const [name, l] of this.listeners) {
      const settings = next.listeners.get(name);
      if (settings) l.update({ settings, state: next });
    }
    this.state = next;
    this.health.sync(next.snapshot.clusters, next.clusters);
    this.outliers.sync(next.snapshot.clusters, next.clusters);
    this.ctx.logger.info({ version: next.version, source: key }, 'descriptors applied');
  }

  private stateDeps(): StateDeps {
    return { clock: this.ctx.clock, ...this.deps, originalDst: this.ctx.originalDst };
  }

  current(): ProxyState | undefined {
    return this.state;
  }

  /** Applies a snapshot. Rejects (leaving the old state serving) when a new port cannot be bound. */
  async apply(snapshot: ConfigSnapshot): Promise<void> {
    // Plugin modules are imported (changed files again) and their configs validated before anything compiles.
    if (this.deps.modules) await preparePlugins(snapshot, this.deps.modules);
    await this.descriptors.prepare(snapshot);
    const next = buildProxyState(snapshot, this.descriptors, this.stateDeps());
    const opened: ProxyListener[] = [];
    const replaced: ProxyListener[] = [];
    try {
      for (const [name, settings] of next.listeners) {
        const view = { settings, state: next };
        const existing = this.listeners.get(name);
        if (existing && sameAddress(existing, settings.config.address)) continue;
        const l = new ProxyListener(this.ctx, view);
        await l.listen();
        opened.push(l);
        if (existing) replaced.push(existing);
      }
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
    // Point of no return: swap every listener to the new state together.
    for (const l of opened) {
      const old = this.listeners.get(l.name);
      this.listeners.set(l.name, l);
      if (old) void this.retire(old);
    }
    for (const [name, l] of this.listeners) {
      const settings = next.listeners.get(name);
      if (!settings) {
        this.listeners.delete(name);
        void this.retire(l);
      } else if (!opened.includes(l)) l.update({ settings, state: next });
    }
    this.state = next;
    this.health.sync(next.snapshot.clusters, next.clusters);
    this.outliers.sync(next.snapshot.clusters, next.clusters);
    this.descriptors.commit();
    // Pools of original destinations (ORIGINAL_DST clusters) stay while such a cluster does.
    const keep = this.ctx.originalDst.retain(endpointKeys(next), next.hasOriginalDst);
    this.ctx.h2.retain(keep);
    this.ctx.h1.retain(keep);
    this.ctx.originalDst.setListeners([...this.addresses().values()]);
    this.ctx.logger.info(
      { version: next.version, listeners: [...this.listeners.values()].map((l) => ({ name: l.name, ...l.address() })) },
      'config applied',
    );
  }

  private async retire(l: ProxyListener): Promise<void> {
    l.drain();
    await Promise.race([l.waitIdle(), this.sleep(this.drainTimeoutMs)]);
    l.close();
  }

  addresses(): Map<string, { host: string; port: number }> {
    const m = new Map<string, { host: string; port: number }>();
    for (const [name, l] of this.listeners) m.set(name, l.address());
    return m;
  }

  /** Inner HTTP/1 servers alive per listener (see ProxyListener.http1Servers). */
  http1Servers(): Map<string, number> {
    return new Map([...this.listeners].map(([name, l]) => [name, l.http1Servers]));
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** SIGTERM path: stop accepting, let in-flight work finish up to the drain timeout, then close. */
  async drain(): Promise<void> {
    this.draining = true;
    this.ctx.lifecycle.draining = true;
    this.descriptors.close();
    this.health.close();
    this.outliers.close();
    const all = [...this.listeners.values()];
    for (const l of all) l.drain();
    await Promise.race([Promise.all(all.map((l) => l.waitIdle())), this.sleep(this.drainTimeoutMs)]);
    for (const l of all) l.close();
    this.ctx.originalDst.close();
    this.ctx.h2.closeAll();
    this.ctx.h1.closeAll();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.ctx.clock.setTimer(ms, r));
  }

  close(): void {
    this.descriptors.close();
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
    this.ctx.originalDst.close();
    this.ctx.h2.closeAll();
    this.ctx.h1.closeAll();
  }
}

function sameAddress(l: ProxyListener, a: { host: string; port: number } | undefined): boolean {
  const cur = l.ref.view.settings.config.address;
  if ((cur?.host ?? '') !== (a?.host ?? '')) return false;
  // Port 0 means "any free port": an unchanged 0, or naming the port that 0
  // got, keeps the socket already bound.
  return (cur?.port ?? 0) === (a?.port ?? 0) || (a?.port ?? 0) === l.address().port;
}

