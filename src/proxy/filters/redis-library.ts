import type * as IoRedis from 'ioredis';
import { lazyLibrary } from '../../core/lazy-library.js';

/** ioredis, loaded by the first config with a Redis-backed filter (globalRateLimit, cache): core/lazy-library.ts. */
export const ioredis = lazyLibrary<typeof IoRedis>('ioredis');
