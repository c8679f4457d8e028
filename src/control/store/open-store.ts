import type { StateStore } from './state-store.js';

/**
 * Opens the store a `--store` spec names. Kept apart from state-store.ts
 * (the interface the stores implement) so that the stores, which import
 * the interface, are not imported back by it; each store is loaded only
 * when named, so a file store does not load ioredis.
 */
export async function openStore(spec: string): Promise<StateStore> {
  if (spec.startsWith('file:')) {
    const { FileStateStore } = await import('./file-store.js');
    return FileStateStore.open(spec.slice('file:'.length));
  }
  if (spec.startsWith('redis://') || spec.startsWith('rediss://')) {
    const { RedisStateStore } = await import('./redis-store.js');
    return RedisStateStore.open(spec);
  }
  throw new Error(`unknown store "${spec}": use file:DIR or redis://HOST:PORT`);
}
