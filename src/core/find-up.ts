import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The first `<dir>/<relative>` that exists, from the directory of `moduleUrl`
 * up to the filesystem root. Files shipped beside the code (the demo config,
 * the native addon) sit at the package root, which is a different number of
 * levels up from src/ (tsx), dist/src/ (npm ci builds it) and the image's /app.
 */
export function findUp(moduleUrl: string, relative: string): string | undefined {
  for (let dir = dirname(fileURLToPath(moduleUrl)); ; ) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const up = resolve(dir, '..');
    if (up === dir) return undefined;
    dir = up;
  }
}
