import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { CaStore, StateStore } from './state-store.js';
import { EMPTY_STATE, type StoreState } from './store-state.js';

const FILE = 'state.json';
/** The self-generated CA (key included: mode 0600), beside the state. */
const CA_FILE = 'ca.json';

/**
 * Writes `data` to `dir/name` so that a crash at any moment leaves either the
 * old or the new content, never a torn file: write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory (so
 * the rename itself is durable).
 */
export async function writeFileAtomic(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, join(dir, name));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** `file:DIR`: the whole state in DIR/state.json, replaced atomically on every commit. One writer per directory. */
export class FileStateStore implements StateStore, CaStore {
  private revision = -1;

  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<FileStateStore> {
    await mkdir(dir, { recursive: true });
    // Temp files of writes a crash (kill -9) interrupted: never renamed, so
    // never part of the state. One writer per directory, so none is live.
    for (const f of await readdir(dir)) {
      if ((f.startsWith(`.${FILE}.`) || f.startsWith(`.${CA_FILE}.`)) && f.endsWith('.tmp')) await unlink(join(dir, f)).catch(() => {});
    }
    return new FileStateStore(dir);
  }

  get description(): string {
    return `file:${this.dir}`;
  }

  async load(): Promise<StoreState> {
    let text: string;
    try {
      text = await readFile(join(this.dir, FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.revision = 0;
        return EMPTY_STATE;
      }
      throw err;
    }
    const state = JSON.parse(text) as StoreState;
    this.revision = state.revision;
    return state;
  }

  async commit(next: StoreState, expectedRevision: number): Promise<boolean> {
    if (this.revision < 0) await this.load();
    if (this.revision !== expectedRevision) return false;
    await writeFileAtomic(this.dir, FILE, JSON.stringify(next));
    this.revision = next.revision;
    return true;
  }

  get ca(): CaStore {
    return this;
  }

  async loadCa(): Promise<string | undefined> {
    try {
      return await readFile(join(this.dir, CA_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Temp file (fsynced) hard-linked to ca.json: link() fails if it exists, so the first writer wins atomically. */
  async initCa(candidate: string): Promise<string> {
    const tmp = join(this.dir, `.${CA_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(candidate);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, join(this.dir, CA_FILE));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp).catch(() => {});
    }
    return (await this.loadCa())!;
  }

  /** One writer per directory: compare, then the same atomic replace as state.json (mode 0600). */
  async replaceCa(expected: string, next: string): Promise<boolean> {
    if ((await this.loadCa()) !== expected) return false;
    await writeFileAtomic(this.dir, CA_FILE, next);
    return true;
  }

  onExternalChange(): void {
    // One writer per directory: nobody else changes it.
  }

  async close(): Promise<void> {}
}
