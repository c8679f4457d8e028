import { LineCounter, parseAllDocuments } from 'yaml';
import type { ConfigError, DocumentSource, Result } from './snapshot.js';

/**
 * One resource document as parsed from text, not yet checked: `value` is
 * whatever the YAML or JSON held. Decoding (decode.ts) turns it into a typed
 * message or field-path errors.
 */
export interface RawDocument {
  readonly value: unknown;
  readonly source: DocumentSource;
}

export type TextFormat = 'yaml' | 'json';

export interface ParseOptions {
  /** Used in error messages and document sources. */
  readonly file?: string;
  /** Default: `json` for a `.json` file, `yaml` otherwise. */
  readonly format?: TextFormat;
}

/** `file#index`, the label of a document that has no usable kind and name. */
export function sourceLabel(source: DocumentSource): string {
  const file = source.file ?? '<input>';
  return source.index === undefined ? file : `${file}#${source.index}`;
}

/**
 * Parses a config text into raw documents. YAML may hold several documents
 * separated by `---` (empty ones are skipped); JSON one document, an array of
 * documents or a `{"items": [...]}` list. The same list shapes are accepted
 * inside a YAML document, and so is the `{version, documents}` shape that
 * dump.ts writes, so a dump loads back unchanged.
 *
 * Syntax errors are reported for every broken YAML document (with line and
 * column), and any of them fails the whole text: a file that is only half
 * understood must never be applied.
 */
export function parseDocuments(text: string, opts: ParseOptions = {}): Result<RawDocument[]> {
  // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const format = opts.format ?? (opts.file?.toLowerCase().endsWith('.json') ? 'json' : 'yaml');
  return format === 'json' ? parseJson(text, opts.file) : parseYaml(text, opts.file);
}

/** Wraps plain objects (e.g. from the operator API) as raw documents. */
export function toRawDocuments(values: readonly unknown[], file?: string): RawDocument[] {
  const out: RawDocument[] = [];
  for (const v of values) expand(v, file, out);
  return out;
}

function parseJson(text: string, file: string | undefined): Result<RawDocument[]> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const pos = /at position (\d+)/.exec(message);
    const where = pos ? `${lineCol(text, Number(pos[1]))}: ` : '';
    return fail(file, `invalid JSON: ${where}${message.replace(/\s*\(line \d+ column \d+\)/, '')}`);
  }
  const out: RawDocument[] = [];
  expand(value, file, out);
  return { ok: true, value: out };
}

function parseYaml(text: string, file: string | undefined): Result<RawDocument[]> {
  const lineCounter = new LineCounter();
  // YAML 1.2 core schema: `yes`/`no`/`on` stay strings and dates stay strings,
  // so what the file says is what the proto JSON decoder sees.
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, schema: 'core', uniqueKeys: true });
  const errors: ConfigError[] = [];
  const out: RawDocument[] = [];
  const list = Array.isArray(docs) ? docs : [];
  for (const [i, doc] of list.entries()) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        errors.push({
          document: file ?? '<input>',
          path: '',
          message: `YAML syntax error in document ${i} at line ${line}, column ${col}: ${e.message}`,
        });
      }
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    // `---` alone (or a document holding only comments or `~`) is skipped,
    // like kubectl does, so trailing separators are harmless.
    if (value === null || value === undefined) continue;
    expand(value, file, out);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out };
}

/** Flattens list shapes into single documents; indexes count the resulting documents. */
function expand(value: unknown, file: string | undefined, out: RawDocument[]): void {
  const items = listItems(value);
  if (items) {
    for (const item of items) expand(item, file, out);
    return;
  }
  out.push({ value, source: file === undefined ? { index: out.length } : { file, index: out.length } });
}

function listItems(value: unknown): unknown[] | undefined {
  if (Array.isArray(value)) return value;
  if (typeof value !== 'object' || value === null) return undefined;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  // `{kind: List, items: [...]}` (kubectl's shape) or a bare `{items: [...]}`.
  if (Array.isArray(obj.items) && keys.every((k) => k === 'items' || k === 'apiVersion' || k === 'kind' || k === 'metadata')) {
    if (obj.kind === undefined || (typeof obj.kind === 'string' && obj.kind.endsWith('List'))) return obj.items;
  }
  // The JSON dump: `{version, documents: [...]}`.
  if (Array.isArray(obj.documents) && keys.every((k) => k === 'documents' || k === 'version')) return obj.documents;
  return undefined;
}

function lineCol(text: string, pos: number): string {
  let line = 1;
  let start = 0;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return `line ${line}, column ${pos - start + 1}`;
}

function fail(file: string | undefined, message: string): Result<RawDocument[]> {
  return { ok: false, errors: [{ document: file ?? '<input>', path: '', message }] };
}
