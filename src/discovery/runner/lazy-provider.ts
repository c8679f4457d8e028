import type { DiscoveryProvider, ProviderKind, ProviderStatus, ServiceWatch } from '../provider.js';
import type { EndpointSet } from '../endpoint-set.js';

/**
 * A provider whose module (and the client library behind it) is imported on
 * its first watch: @kubernetes/client-node alone is ~70 MiB of a sidecar's
 * RSS, and most sidecars never watch Kubernetes or NATS. Watches made while
 * it loads are started when it is ready; a load that fails is reported
 * through `onFail` and tried again by the next watch.
 */
export class LazyProvider<Target> implements DiscoveryProvider<Target> {
  private provider: DiscoveryProvider<Target> | undefined;
  private loading: Promise<DiscoveryProvider<Target> | undefined> | undefined;
  private closed = false;

  constructor(
    readonly kind: ProviderKind,
    private readonly load: () => Promise<DiscoveryProvider<Target>>,
    private readonly onLoaded: () => void,
    private readonly onFail: (err: unknown) => void,
  ) {}

  watch(target: Target, emit: (set: EndpointSet) => void): ServiceWatch {
    if (this.provider) return this.provider.watch(target, emit);
    let inner: ServiceWatch | undefined;
    let cancelled = false;
    void this.ready().then((p) => {
      if (p && !cancelled) inner = p.watch(target, emit);
    });
    return {
      close: () => {
        cancelled = true;
        inner?.close();
      },
    };
  }

  private ready(): Promise<DiscoveryProvider<Target> | undefined> {
    return (this.loading ??= this.load().then(
      (p) => {
        if (this.closed) {
          void p.close();
          return undefined;
        }
        this.provider = p;
        this.onLoaded();
        return p;
      },
      (err: unknown) => {
        this.loading = undefined;
        this.onFail(err);
        return undefined;
      },
    ));
  }

  /** Not connected until loaded (Providers reports a failed load itself). */
  status(): ProviderStatus {
    return this.provider?.status() ?? { kind: this.kind, connected: false, lastEventMs: undefined, services: 0, errors: 0 };
  }

  get loaded(): boolean {
    return this.provider !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.provider?.close();
  }
}
