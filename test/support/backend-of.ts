import { request } from 'undici';

/**
 * Which echo backend (test/support/backends.ts) answers GET `path` on a
 * sidecar port: its name, `status N` for another status, or `error …` when
 * the request fails — a value to poll with waitFor while config moves.
 */
export async function backendOf(port: number, path = '/x'): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${port}${path}`);
    const text = await res.body.text();
    return res.statusCode === 200 ? (JSON.parse(text) as { backend: string }).backend : `status ${res.statusCode}`;
  } catch (err) {
    return `error ${(err as Error).message}`;
  }
}
