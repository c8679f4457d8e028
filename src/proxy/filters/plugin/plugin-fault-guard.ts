import type { Counter, Registry } from 'prom-client';
import type { ModuleLoader } from '../../../core/module-loader.js';
import type { Logger } from '../../../observability/logger.js';

/**
 * Keeps a plugin's own stray error — a rejected promise nobody awaits, a
 * throw in a timer it set — from ending the sidecar. Hook failures on the
 * request path are already caught per exchange (plugin-filter.ts); these
 * are the ones that escape every caller, and Node's default for them is to
 * exit, taking every connection of the pod with it for a bug in one filter.
 *
 * Only an error whose top stack frame is in an imported plugin file is kept
 * (logged once each, counted as `outrigger_plugin_errors_total{phase="background"}`);
 * anything else ends the process exactly as Node would, since the sidecar's
 * own state can no longer be trusted. Installed by the CLI (a process of its
 * own), never by an embedding such as the tests' in-process harness.
 */
export function installPluginFaultGuard(modules: ModuleLoader, logger: Logger, registry: Registry): () => void {
  const kept = (err: unknown, kind: string): boolean => {
    const spec = modules.ownerOf(err);
    if (spec === undefined) return false;
    // The plugin filter type registers the counter (looked up now: filter types may be built lazily).
    (registry.getSingleMetric('outrigger_plugin_errors_total') as Counter<'plugin' | 'phase'> | undefined)?.inc({ plugin: spec, phase: 'background' });
    logger.error({ module: spec, kind, err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined }, 'plugin error outside any request; the sidecar keeps running');
    return true;
  };
  const onRejection = (reason: unknown): void => {
    if (kept(reason, 'unhandledRejection')) return;
    // Not a plugin's: Node's own behaviour (--unhandled-rejections=throw) is an uncaught exception.
    throw reason;
  };
  const onException = (err: Error, origin: string): void => {
    if (kept(err, origin)) return;
    // What Node does without a handler: the stack on stderr, exit code 1 (7 would say "handler failed").
    process.stderr.write(`${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
    process.exit(1);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
