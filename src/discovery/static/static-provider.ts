import type { DiscoveredEndpoint } from '../endpoint-set.js';
import { EndpointSetTracker } from '../endpoint-set.js';
import type { DiscoveryProvider, ProviderStatus, ServiceWatch } from '../provider.js';

export interface StaticTarget {
  /** Names the set in its source ("static:NAME"). */
  readonly name: string;
  readonly endpoints: readonly DiscoveredEndpoint[];
}

/**
 * Endpoints written in config, in the provider shape: one set, emitted at
 * once, never changing (a config change is a new watch). Lets code that
 * consumes providers (the control plane's generated assignments) treat
 * hand-written endpoints like discovered ones.
 */
export class StaticProvider implements DiscoveryProvider<StaticTarget> {
  readonly kind = 'static' as const;
  private watches = 0;
  private lastEventMs: number | undefined;

  constructor(private readonly nowMs: () => number = Date.now) {}

  watch(target: StaticTarget, emit: Parameters<DiscoveryProvider<StaticTarget>['watch']>[1]): ServiceWatch {
    this.watches++;
    this.lastEventMs = this.nowMs();
    new EndpointSetTracker(`static:${target.name}`, emit, this.nowMs).offer(target.endpoints);
    let open = true;
    return {
      close: () => {
        if (open) this.watches--;
        open = false;
      },
    };
  }

  status(): ProviderStatus {
    return { kind: 'static', connected: true, lastEventMs: this.lastEventMs, services: this.watches, errors: 0 };
  }

  async close(): Promise<void> {}
}
