import type { CompiledRoute } from './types.js';
import type { RouteConfiguration } from '../../gen/outrigger/config/v1/route_pb.js';
import { HostMatcher } from './host-matcher.js';
import { PathScan } from './segment-trie.js';
import { RouteCompileError, type RouteMatchResult, type RouteRequest } from './types.js';
import { VirtualHostRoutes } from './vhost-routes.js';

/**
 * One RouteConfiguration compiled for the data path: built once per config
 * version (all parsing, regex compiling and sorting happen here), then shared
 * read-only by every request of that version. See docs/routing.md for the
 * matching rules.
 */
export class RouteTable {
  private constructor(
    readonly name: string,
    private readonly hosts: HostMatcher<VirtualHostRoutes>,
    private readonly vhosts: readonly VirtualHostRoutes[],
    /** Scratch for segment boundaries; safe to share because match() never yields. */
    private readonly scan: PathScan,
  ) {}

  /** Throws RouteCompileError with the config path of the first problem. */
  static compile(rc: RouteConfiguration): RouteTable {
    const vhosts = rc.virtualHosts.map((vh, i) => {
      const at = `virtualHosts[${i}]`;
      if (vh.domains.length === 0) throw new RouteCompileError(`${at}.domains`, 'a virtual host needs at least one domain');
      return VirtualHostRoutes.compile(vh, vh.name !== '' ? vh.name : `vhost-${i}`, at);
    });
    const hosts = HostMatcher.build(
      vhosts,
      vhosts.map((v) => v.domains),
      (vi, di, message) => {
        throw new RouteCompileError(`virtualHosts[${vi}].domains[${di}]`, message);
      },
    );
    const maxDepth = vhosts.reduce((m, v) => Math.max(m, v.maxDepth), 0);
    return new RouteTable(rc.name, hosts, vhosts, new PathScan(maxDepth));
  }

  /** The winning route, or undefined (no virtual host for the host, or no route). Never throws. */
  match(req: RouteRequest): RouteMatchResult | undefined {
    const vh = this.hosts.select(req.host);
    return vh === undefined ? undefined : vh.match(req, this.scan);
  }

  /** JSON for the admin /routes endpoint: virtual hosts in config order, routes in precedence order. */
  /** Every compiled route (per-route state such as filter chains is built from these once per version). */
  routes(): CompiledRoute[] {
    return this.vhosts.flatMap((v) => v.ordered.map((e) => e.route));
  }

  describe(): object {
    return { name: this.name, virtualHosts: this.vhosts.map((v) => v.describe()) };
  }
}
