import { dirname, resolve } from 'node:path';
import type { RawDocument } from './documents.js';

/**
 * A config file's plugin modules (`plugin.module` of filters and overrides,
 * `healthCheck.custom.module`) given as `./` or `../` paths are relative to
 * that file (docs/plugins.md): made absolute here, where the file is known,
 * so the snapshot means the same whatever the sidecar's working directory.
 * Only the file source does this: documents an operator applies to the
 * control plane keep their relative paths, which each sidecar resolves
 * against its --plugin-dir.
 */
export function anchorPluginPaths(docs: readonly RawDocument[]): void {
  for (const d of docs) if (d.source.file !== undefined) walk(d.value, dirname(resolve(d.source.file)), undefined);
}

function walk(v: unknown, dir: string, key: string | undefined): void {
  if (v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (const x of v) walk(x, dir, undefined);
    return;
  }
  const o = v as Record<string, unknown>;
  const m = o['module'];
  if ((key === 'plugin' || key === 'custom') && typeof m === 'string' && (m.startsWith('./') || m.startsWith('../'))) o['module'] = resolve(dir, m);
  for (const [k, x] of Object.entries(o)) walk(x, dir, k);
}
