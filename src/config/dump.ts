import { stringify } from 'yaml';
import type { ConfigSnapshot } from './snapshot.js';

export type DumpFormat = 'json' | 'yaml';

/**
 * Writes a snapshot in the document format it was loaded from, so a dump
 * (`/config_dump`, the sidecar's last-good file, `outrigger get`) loads back
 * into a snapshot with the same version.
 *
 * JSON: `{"version": ..., "documents": [...]}`. YAML: a `# version: X`
 * comment, then the documents separated by `---`.
 */
export function dumpSnapshot(snapshot: ConfigSnapshot, format: DumpFormat = 'json'): string {
  return format === 'yaml' ? dumpYaml(snapshot) : dumpJson(snapshot);
}

export function dumpJson(snapshot: ConfigSnapshot): string {
  return JSON.stringify({ version: snapshot.version, documents: snapshot.documents }, null, 2) + '\n';
}

export function dumpYaml(snapshot: ConfigSnapshot): string {
  const parts = snapshot.documents.map((d) => `---\n${stringify(d, { lineWidth: 0 })}`);
  return `# version: ${snapshot.version}\n${parts.join('')}`;
}
