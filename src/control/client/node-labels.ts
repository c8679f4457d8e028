import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';

/**
 * Reads node labels from a file: the Kubernetes downward API format
 * (`key="value"` per line), or a YAML/JSON map of strings.
 */
export async function readNodeLabels(path: string): Promise<Record<string, string>> {
  const text = await readFile(path, 'utf8');
  const out: Record<string, string> = {};
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (lines.length > 0 && lines.every((l) => /^[^:=\s]+="(?:[^"\\]|\\.)*"$/.test(l.trim()))) {
    for (const l of lines) {
      const i = l.indexOf('=');
      out[l.slice(0, i).trim()] = JSON.parse(l.slice(i + 1).trim()) as string;
    }
    return out;
  }
  const v: unknown = parse(text);
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
    return out;
  }
  throw new Error(`${path}: expected key="value" lines or a map of strings`);
}
