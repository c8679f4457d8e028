import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Named SHA-256 digests of API keys. */
export interface KeyDigest {
  readonly name: string;
  readonly digest: Buffer;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** `at`: the field path for errors. */
export function parseDigest(name: string, hex: string, at: string): KeyDigest {
  if (name === '') throw new Error(`${at}.name: required`);
  if (!HEX64.test(hex)) throw new Error(`${at}.sha256: must be 64 hex digits (the SHA-256 of the key)`);
  return { name, digest: Buffer.from(hex, 'hex') };
}

/** `NAME:SHA256HEX` lines; blank lines and `#` comments are skipped. */
export function parseKeyFile(text: string, file: string): KeyDigest[] {
  const out: KeyDigest[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const c = line.lastIndexOf(':');
    if (c < 0) throw new Error(`${file}:${i + 1}: expected NAME:SHA256HEX`);
    out.push(parseDigest(line.slice(0, c).trim(), line.slice(c + 1).trim(), `${file}:${i + 1}`));
  });
  return out;
}

/**
 * The name of the key whose digest matches, comparing against every digest
 * in constant time (no early exit), so response timing says nothing about
 * how close a guess came or where in the list a key sits.
 */
export function matchKey(keys: readonly KeyDigest[], presented: string): string | undefined {
  const d = createHash('sha256').update(presented).digest();
  let found: string | undefined;
  for (const k of keys) if (timingSafeEqual(k.digest, d) && found === undefined) found = k.name;
  return found;
}

/**
 * A key file kept current: read when first used, then re-read whenever it
 * changes (the directory is watched, so atomic replace-by-rename is seen).
 * A file that stops parsing keeps the last good keys. One per path, shared
 * across config versions by the factory.
 */
export class KeyFile {
  private keys: readonly KeyDigest[];
  private watcher: FSWatcher | undefined;
  /** The last re-read error, if the current file does not parse. */
  lastError: string | undefined;

  constructor(readonly path: string) {
    this.keys = parseKeyFile(readFileSync(path, 'utf8'), path);
    try {
      const name = basename(path);
      this.watcher = watch(dirname(path), { persistent: false }, (_ev, f) => {
        if (f === null || f === name) this.reload();
      });
      this.watcher.on('error', () => undefined);
    } catch {
      this.watcher = undefined;
    }
  }

  current(): readonly KeyDigest[] {
    return this.keys;
  }

  reload(): void {
    try {
      this.keys = parseKeyFile(readFileSync(this.path, 'utf8'), this.path);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }

  close(): void {
    this.watcher?.close();
  }
}
