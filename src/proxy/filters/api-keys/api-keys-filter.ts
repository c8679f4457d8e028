import type { ApiKeys } from '../../../gen/outrigger/filters/api_keys/v1/api_keys_pb.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { KeyFile, matchKey, parseDigest, type KeyDigest } from './key-set.js';

export interface ApiKeysDeps {
  readonly audit: AuditLog;
}

/** The apiKeys filter factory; key files are watched once per path, across config versions. */
export function apiKeysFactory(deps: ApiKeysDeps): FilterFactory<ApiKeys> & { close(): void } {
  const files = new Map<string, KeyFile>();
  return {
    name: 'apiKeys',
    compile(config, name) {
      const inline = config.keys.map((k, i) => parseDigest(k.name, k.sha256, `keys[${i}]`));
      let file: KeyFile | undefined;
      if (config.file !== '') {
        file = files.get(config.file);
        if (!file) {
          try {
            file = new KeyFile(config.file);
          } catch (err) {
            throw new Error(`file: ${(err as Error).message}`);
          }
          files.set(config.file, file);
        }
      }
      if (inline.length === 0 && !file) throw new Error('set keys or file');
      const keys = (): readonly KeyDigest[] => (file ? (inline.length ? [...inline, ...file.current()] : file.current()) : inline);
      return apiKeysFilter(name, config.header.toLowerCase() || 'x-api-key', config.queryParam, config.allowMissing, keys, deps.audit);
    },
    close() {
      for (const f of files.values()) f.close();
    },
  };
}

function apiKeysFilter(
  name: string,
  header: string,
  param: string,
  allowMissing: boolean,
  keys: () => readonly KeyDigest[],
  audit: AuditLog,
): HttpFilter {
  const challenge = { 'www-authenticate': `ApiKey header="${header}"` };
  return {
    name,
    onRequestHeaders(ds): FilterVerdict {
      const h = ds.headers[header];
      let presented = Array.isArray(h) ? h[0] : h;
      if (presented === undefined && param !== '') {
        const q = ds.target.indexOf('?');
        if (q >= 0) presented = new URLSearchParams(ds.target.slice(q + 1)).get(param) ?? undefined;
      }
      if (presented === undefined || presented === '') {
        if (allowMissing) return undefined;
        audit.record(ds, name, { outcome: 'unauthenticated', reason: 'missing' });
        return { code: 'unauthenticated', detail: 'API key is missing', extras: { headers: challenge } };
      }
      const who = matchKey(keys(), presented);
      if (who === undefined) {
        audit.record(ds, name, { outcome: 'unauthenticated', reason: 'unknown_key' });
        return { code: 'unauthenticated', detail: 'API key is not valid', extras: { headers: challenge } };
      }
      const auth = (ds.auth ??= { principal: undefined, claims: undefined, apiKey: undefined });
      auth.apiKey = who;
      auth.principal ??= who;
      // The key itself goes no further than the sidecar.
      delete (ds.headers as Record<string, unknown>)[header];
      return undefined;
    },
  };
}
