import type * as Jose from 'jose';
import { lazyLibrary } from '../../../core/lazy-library.js';

/** jose, loaded by the first config with a jwtAuthn filter (core/lazy-library.ts: idle RSS). */
export const jose = lazyLibrary<typeof Jose>('jose');
