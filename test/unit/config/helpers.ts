import { toRawDocuments } from '../../../src/config/documents.js';
import { buildSnapshot } from '../../../src/config/loader.js';
import { formatConfigError, type ConfigSnapshot } from '../../../src/config/snapshot.js';
import type { ValidateOptions } from '../../../src/config/validate.js';

export type Obj = Record<string, unknown>;

export function doc(kind: string, name: string, spec: Obj, metadata: Obj = {}): Obj {
  return { apiVersion: 'outrigger.io/v1', kind, metadata: { name, ...metadata }, spec };
}

/** A small valid config: listener → routes → a static cluster, plus an EDS cluster with its endpoints. */
export function baseDocs(): Obj[] {
  return [
    doc('Listener', 'main', { address: { host: '127.0.0.1', port: 8080 }, routeConfig: 'main' }),
    doc('RouteConfiguration', 'main', {
      virtualHosts: [
        {
          name: 'default',
          domains: ['*'],
          routes: [
            { match: { template: '/v1/books/{book}' }, route: { cluster: 'books' } },
            { match: { grpc: { service: 'outrigger.examples.bookstore.v1.BookstoreService' } }, route: { cluster: 'books' } },
            { match: { prefix: '/' }, route: { cluster: 'web' } },
          ],
        },
      ],
    }),
    doc('Cluster', 'books', { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: 9090 } }] }),
    doc('Cluster', 'web', { type: 'DISCOVERY_TYPE_EDS' }),
    doc('ClusterLoadAssignment', 'web', { endpoints: [{ address: { host: '10.0.0.1', port: 80 } }] }),
  ];
}

/** Formatted errors of building a snapshot from plain documents ([] when valid). */
export function errorsOf(docs: unknown[], opts: ValidateOptions = {}): string[] {
  const r = buildSnapshot(toRawDocuments(docs, 'test.yaml'), opts);
  return r.ok ? [] : r.errors.map(formatConfigError);
}

export function snapshotOf(docs: unknown[], opts: ValidateOptions = {}): ConfigSnapshot {
  const r = buildSnapshot(toRawDocuments(docs, 'test.yaml'), opts);
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.value;
}

/** Applies `edit` to a deep copy of the base documents; `find(kind, name)` returns a document's spec. */
export function editBase(edit: (find: (kind: string, name: string) => Obj, docs: Obj[]) => void): Obj[] {
  const docs = structuredClone(baseDocs());
  const find = (kind: string, name: string): Obj => {
    const d = docs.find((x) => x.kind === kind && (x.metadata as Obj).name === name);
    if (!d) throw new Error(`no ${kind}/${name}`);
    return d.spec as Obj;
  };
  edit(find, docs);
  return docs;
}
