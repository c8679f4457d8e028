/**
 * Virtual host selection: exact "host:port" domain > exact domain > longest
 * "*.suffix" wildcard > "*". A domain with a port matches only requests whose
 * Host / :authority carries that port; one without matches any port.
 * Built once per config version; `select` runs per request and allocates only
 * when the host needs lower-casing or port stripping.
 */

export class HostMatcher<T> {
  private constructor(
    /** "host:port" (lower case, IPv6 bracketed) → value; empty unless some domain names a port. */
    private readonly withPort: ReadonlyMap<string, T>,
    private readonly exact: ReadonlyMap<string, T>,
    /** ".suffix" (with the dot) → value, longest suffix first so the first hit wins. */
    private readonly wildcards: ReadonlyArray<readonly [string, T]>,
    private readonly fallback: T | undefined,
  ) {}

  /**
   * `domains[i]` lists the domains of `values[i]`. Problems go to `onError`
   * (which throws) so the caller can build the config path.
   */
  static build<T>(
    values: readonly T[],
    domains: readonly (readonly string[])[],
    onError: (vhostIndex: number, domainIndex: number, message: string) => never,
  ): HostMatcher<T> {
    const exact = new Map<string, T>();
    const withPort = new Map<string, T>();
    const wild = new Map<string, T>();
    let fallback: T | undefined;
    const owner = new Map<string, number>();
    domains.forEach((list, vi) => {
      list.forEach((raw, di) => {
        const trimmed = raw.trim();
        const port = portOf(trimmed);
        const d = port ? trimmed.toLowerCase() : normalizeHost(trimmed);
        if (d === '') onError(vi, di, 'empty domain');
        const prev = owner.get(d);
        if (prev !== undefined && prev !== vi) onError(vi, di, `domain "${d}" is already used by virtualHosts[${prev}]`);
        owner.set(d, vi);
        const v = values[vi]!;
        if (port) withPort.set(d, v);
        else if (d === '*') fallback = v;
        else if (d.startsWith('*.') && d.length > 2 && !d.includes('*', 1)) wild.set(d.slice(1), v);
        else if (d.includes('*')) onError(vi, di, `unsupported wildcard "${d}" (use "*.suffix" or "*")`);
        else exact.set(d, v);
      });
    });
    const wildcards = [...wild].sort((a, b) => b[0].length - a[0].length);
    return new HostMatcher(withPort, exact, wildcards, fallback);
  }

  select(host: string): T | undefined {
    // The common sidecar table has only "*": skip normalising the host.
    if (this.exact.size === 0 && this.wildcards.length === 0 && this.withPort.size === 0) return this.fallback;
    if (this.withPort.size > 0) {
      const p = this.withPort.get(lowerCase(host));
      if (p !== undefined) return p;
    }
    const h = normalizeHost(host);
    const e = this.exact.get(h);
    if (e !== undefined) return e;
    const w = this.wildcards;
    for (let i = 0; i < w.length; i++) {
      const suffix = w[i]![0];
      // The wildcard must cover at least one character: "*.a.com" does not match "a.com".
      if (h.length > suffix.length && h.endsWith(suffix)) return w[i]![1];
    }
    return this.fallback;
  }
}

/** Whether a domain ends in ":port" after a host name, IPv4 or bracketed IPv6 literal. */
function portOf(domain: string): boolean {
  return /^(\[[^\]]+\]|[^:\[\]]+):\d+$/.test(domain);
}

function lowerCase(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
}

/**
 * Lower-cases and strips a trailing ":port". Bracketed IPv6 literals keep
 * their brackets; a bare IPv6 address (several colons, invalid in Host) is
 * left alone rather than cut at a random colon. Returns the input itself when
 * nothing changes, so the common case allocates nothing.
 */
export function normalizeHost(host: string): string {
  let upper = false;
  let colon = -1;
  let colons = 0;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 65 && c <= 90) upper = true;
    else if (c === 58) {
      colon = i;
      colons++;
    }
  }
  let h = host;
  if (colons > 0) {
    if (host.charCodeAt(0) === 91 /* [ */) {
      const close = host.indexOf(']');
      if (close > 0 && close < host.length - 1) h = host.slice(0, close + 1);
    } else if (colons === 1) {
      h = host.slice(0, colon);
    }
  }
  return upper ? h.toLowerCase() : h;
}
