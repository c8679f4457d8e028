import { stringify } from 'yaml';
import { redact } from './redact.js';
import type { ConfigSnapshot, JsonValue } from './snapshot.js';

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

/**
 * The same with secret-bearing values replaced by `[redacted]` (redact.ts):
 * what `/config_dump` serves. The version stays the snapshot's own, so it
 * still identifies the config; such a dump loads back only where no secret
 * was redacted (the last-good file, which must load back, is not redacted).
 */
export function dumpRedacted(snapshot: ConfigSnapshot, format: DumpFormat = 'json'): string {
  const documents = snapshot.documents.map((d) => redact(d as unknown as JsonValue) as unknown as (typeof snapshot.documents)[number]);
  return dumpSnapshot({ ...snapshot, documents }, format);
}

export function dumpJson(snapshot: ConfigSnapshot): string {
  return JSON.stringify({ version: snapshot.version, documents: snapshot.documents }, null, 2) + '\n';
}

export function dumpYaml(snapshot: ConfigSnapshot): string {
  const parts = snapshot.documents.map((d) => `---\n${stringify(d, { lineWidth: 0 })}`);
  return `# version: ${snapshot.version}\n${parts.join('')}`;
}
