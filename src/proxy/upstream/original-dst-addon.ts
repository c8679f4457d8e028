import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { findUp } from '../../core/find-up.js';

/** Where a redirected connection was going, as the kernel's conntrack remembers it. */
export interface Destination {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** The native addon's functions (native/original-dst/original_dst.c). */
export interface OriginalDstAddon {
  /** getsockopt SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on `fd`; null when it has none or on any error. */
  originalDst(fd: number): { address: string; port: number; family: 4 | 6 } | null;
  /** glibc's malloc_trim(0) (an addon built before it had none): used after flood collections (flood-gc.ts). */
  mallocTrim?(): boolean;
}

export interface AddonStatus {
  readonly addon: OriginalDstAddon | undefined;
  /** The file loaded, or looked for. */
  readonly path: string | undefined;
  /** Why it is not available. */
  readonly reason: string | undefined;
}

/** The addon as node-gyp builds it, relative to the package root. */
export const ADDON_RELATIVE_PATH = 'native/original-dst/build/Release/original_dst.node';

/**
 * Loads the SO_ORIGINAL_DST addon (the composition root does it once; Node
 * caches the module anyway). `OUTRIGGER_ORIGINAL_DST_ADDON` names
 * the file (tests point it at a missing one); otherwise it is looked for
 * under the package root, found by walking up from this module (it is
 * src/proxy/upstream/ in a checkout and dist/src/proxy/upstream/ in a build).
 *
 * Never throws: a missing or unloadable addon gives `addon: undefined` and
 * the reason, and the proxy degrades (docs/injector.md): ORIGINAL_DST
 * clusters route HTTP by Host / :authority and refuse opaque TCP.
 */
export function originalDstAddon(env: NodeJS.ProcessEnv = process.env): AddonStatus {
  if (process.platform !== 'linux') return { addon: undefined, path: undefined, reason: `not available on ${process.platform}` };
  const path = env.OUTRIGGER_ORIGINAL_DST_ADDON || findUp(import.meta.url, ADDON_RELATIVE_PATH);
  if (!path) return { addon: undefined, path: undefined, reason: `${ADDON_RELATIVE_PATH} not built (npm run build:native)` };
  if (!existsSync(path)) return { addon: undefined, path, reason: `${path} not found (npm run build:native)` };
  try {
    const addon = createRequire(import.meta.url)(path) as OriginalDstAddon;
    if (typeof addon.originalDst !== 'function') return { addon: undefined, path, reason: `${path} has no originalDst()` };
    return { addon, path, reason: undefined };
  } catch (err) {
    return { addon: undefined, path, reason: `${path} did not load: ${(err as Error).message}` };
  }
}

/**
 * The original destination of an accepted socket when iptables redirected it:
 * conntrack's original destination differs from the socket's local address.
 * Undefined when it was not redirected (a direct connection, which conntrack
 * reports as its own local address or not at all), when the socket has no fd
 * (not a TCP socket, already closed) or when the addon is missing.
 */
export function originalDestinationOf(socket: Socket, addon: OriginalDstAddon | undefined): Destination | undefined {
  if (!addon) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  const d = addon.originalDst(fd);
  if (!d) return undefined;
  const local = unmapV4(socket.localAddress ?? '');
  if (d.address === local && d.port === socket.localPort) return undefined;
  return { host: d.address, port: d.port, family: d.family };
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
export function unmapV4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
