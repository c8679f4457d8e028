import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { isKind } from '../../config/kinds.js';
import type { ConfigError, JsonObject, ResourceDocument } from '../../config/snapshot.js';
import { BadRequestSchema } from '../../gen/google/rpc/error_details_pb.js';
import {
  OperatorService,
  StoredResourceSchema,
  WatchResponse_EventType,
  type StoredResource,
} from '../../gen/outrigger/control/v1/operator_pb.js';
import { AsyncQueue } from '../async-queue.js';
import { authenticate, type AuthOptions } from './auth.js';
import { errorsText, type ControlPlane, type Outcome } from './control-plane.js';
import { redact } from '../../config/redact.js';
import type { StatusBoard } from './status-board.js';
import type { StoredEntry } from '../store/store-state.js';
import { findEntry, keyOf } from './resource-state.js';

function stored(e: StoredEntry): StoredResource {
  return create(StoredResourceSchema, { document: redact(e.doc as unknown as JsonObject), version: e.version });
}

/** A generated resource as `get` shows it: its document (labelled outrigger.io/generated), version "generated". */
function generatedEntry(d: ResourceDocument): StoredResource {
  const { selector: _s, ...metadata } = d.metadata as ResourceDocument['metadata'] & { selector?: unknown };
  return create(StoredResourceSchema, { document: redact({ ...d, metadata } as unknown as JsonObject), version: 'generated' });
}

function fail(out: Exclude<Outcome, { ok: true }>): never {
  const code = out.code === 'conflict' ? Code.FailedPrecondition : out.code === 'not_found' ? Code.NotFound : Code.InvalidArgument;
  throw new ConnectError(errorsText(out.errors), code, undefined, [
    {
      desc: BadRequestSchema,
      value: { fieldViolations: out.errors.map((e: ConfigError) => ({ field: `${e.document}: ${e.path}`, description: e.message })) },
    },
  ]);
}

function checkKind(kind: string): void {
  if (!isKind(kind)) throw new ConnectError(`unknown kind "${kind}"`, Code.InvalidArgument);
}

/** The operator API; every call authenticates first (see auth.ts), so an unauthenticated call changes nothing. */
/** A discovery provider's state as `outrigger status` shows it (src/discovery/provider.ts ProviderStatus). */
export interface ProviderStatusView {
  readonly kind: string;
  readonly connected: boolean;
  readonly lastEventMs: number | undefined;
  readonly services: number;
  readonly errors: number;
  readonly lastError?: string;
}

export function operatorService(
  cp: ControlPlane,
  auth: AuthOptions,
  board: StatusBoard,
  discoveryStatus?: () => readonly ProviderStatusView[],
): ServiceImpl<typeof OperatorService> {
  const who = (ctx: HandlerContext): string => authenticate(ctx, auth);
  return {
    async apply(req, ctx) {
      const caller = who(ctx);
      const out = req.dryRun ? cp.dryRun(req.documents) : await cp.apply(req.documents, req.expectedVersions, caller);
      if (!out.ok) fail(out);
      return { revision: BigInt(out.state.revision), resources: out.changed.map(stored), unchanged: out.unchanged, warnings: documentErrors(out.warnings) };
    },
    async delete(req, ctx) {
      const caller = who(ctx);
      checkKind(req.kind);
      const out = await cp.delete(req.kind, req.name, req.expectedVersion, caller);
      if (!out.ok) fail(out);
      return { revision: BigInt(out.state.revision) };
    },
    async get(req, ctx) {
      who(ctx);
      checkKind(req.kind);
      const e = findEntry(cp.current, req.kind, req.name);
      if (e) return { resource: stored(e) };
      // Generated resources are shown (read-only, version "generated"; docs/discovery.md).
      const g = cp.generatedResources.find((d) => d.kind === req.kind && d.metadata.name === req.name);
      if (!g) throw new ConnectError(`${req.kind}/${req.name} not found`, Code.NotFound);
      return { resource: generatedEntry(g) };
    },
    async list(req, ctx) {
      who(ctx);
      if (req.kind !== '') checkKind(req.kind);
      const s = cp.current;
      const stored_ = s.resources.filter((e) => req.kind === '' || e.doc.kind === req.kind).map(stored);
      const shadowed = new Set(s.resources.map((e) => keyOf(e.doc.kind, e.doc.metadata.name)));
      const generated = cp.generatedResources.filter((d) => (req.kind === '' || d.kind === req.kind) && !shadowed.has(keyOf(d.kind, d.metadata.name))).map(generatedEntry);
      return { revision: BigInt(s.revision), resources: [...stored_, ...generated] };
    },
    async *watch(req, ctx) {
      who(ctx);
      if (req.kind !== '') checkKind(req.kind);
      const q = new AsyncQueue<{ type: WatchResponse_EventType; resource: StoredResource; revision: bigint }>();
      const stop = cp.watch((next, prev) => {
        const before = new Map(prev.resources.map((e) => [keyOf(e.doc.kind, e.doc.metadata.name), e]));
        for (const e of next.resources) {
          const key = keyOf(e.doc.kind, e.doc.metadata.name);
          if (req.kind !== '' && e.doc.kind !== req.kind) continue;
          if (before.get(key)?.version !== e.version) q.push({ type: WatchResponse_EventType.PUT, resource: stored(e), revision: BigInt(next.revision) });
          before.delete(key);
        }
        for (const e of before.values()) {
          if (req.kind !== '' && e.doc.kind !== req.kind) continue;
          q.push({ type: WatchResponse_EventType.DELETE, resource: stored(e), revision: BigInt(next.revision) });
        }
      });
      ctx.signal.addEventListener('abort', () => q.close());
      try {
        yield* q;
      } finally {
        stop();
      }
    },
    async validate(req, ctx) {
      who(ctx);
      const out = cp.dryRun(req.documents);
      if (out.ok) return { valid: true, errors: [], version: String(out.state.revision), warnings: documentErrors(out.warnings) };
      return { valid: false, errors: out.errors.map((e) => ({ document: e.document, path: e.path, message: e.message })) };
    },
    async history(req, ctx) {
      who(ctx);
      checkKind(req.kind);
      const revisions = cp.current.history
        .filter((h) => h.kind === req.kind && h.name === req.name)
        .map((h) => ({
          revision: BigInt(h.revision),
          action: h.action,
          who: h.who,
          time: timestampFromMs(h.atMs),
          document: h.doc ? redact(h.doc as unknown as JsonObject) : undefined,
        }));
      if (revisions.length === 0) throw new ConnectError(`no history for ${req.kind}/${req.name}`, Code.NotFound);
      return { revisions };
    },
    async rollback(req, ctx) {
      const caller = who(ctx);
      checkKind(req.kind);
      const out = await cp.rollback(req.kind, req.name, Number(req.toRevision), caller);
      if (!out.ok) fail(out);
      const e = findEntry(out.state, req.kind, req.name);
      return { revision: BigInt(out.state.revision), resource: e ? stored(e) : undefined };
    },
    async status(_req, ctx) {
      who(ctx);
      // Every live replica's sidecars (redis); this replica's alone with a file store.
      const out = await board.status();
      if (!discoveryStatus) return out;
      return {
        ...out,
        providers: discoveryStatus().map((p) => ({
          $typeName: 'outrigger.control.v1.DiscoveryProviderStatus' as const,
          provider: p.kind,
          connected: p.connected,
          lastEvent: p.lastEventMs === undefined ? undefined : timestampFromMs(p.lastEventMs),
          services: p.services,
          errors: BigInt(p.errors),
          lastError: p.lastError ?? '',
        })),
      };
    },
  };
}

/** Validation warnings as the operator API reports them. */
function documentErrors(list: readonly { document: string; path: string; message: string }[] | undefined): { document: string; path: string; message: string }[] {
  return (list ?? []).map((e) => ({ document: e.document, path: e.path, message: e.message }));
}
