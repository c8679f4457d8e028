import { formatConfigError } from '../config/snapshot.js';
import type { ParseArgsConfig } from 'node:util';
import { stringify } from 'yaml';
import { readDocuments } from '../config/loader.js';
import type { JsonObject } from '../config/snapshot.js';
import { operatorClient, resolveTarget, type TargetFlags } from '../control/client/operator-client.js';
import { TypeStatus_State } from '../gen/outrigger/control/v1/operator_pb.js';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { TARGET_OPTIONS, TARGET_USAGE, reportError } from './control-flags.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

type Opts = NonNullable<ParseArgsConfig['options']>;

/** Shared shape of the operator commands: parse flags, resolve the target, run, map errors. */
function operatorCommand(
  name: string,
  summary: string,
  usage: string,
  options: Opts,
  body: (values: Record<string, string | boolean | undefined>, positionals: string[], client: ReturnType<typeof operatorClient>) => Promise<number>,
): Command {
  const fullUsage = `${usage}\n${TARGET_USAGE}`;
  return {
    summary,
    async run(args) {
      const parsed = parseFlags(args, { ...TARGET_OPTIONS, ...options }, fullUsage, true);
      if (!parsed) return 0;
      const values = parsed.values as Record<string, string | boolean | undefined>;
      let tls: boolean | undefined;
      try {
        const target = resolveTarget(values as TargetFlags);
        tls = target.tls !== undefined || target.address.startsWith('https://');
        return await body(values, parsed.positionals, operatorClient(target));
      } catch (err) {
        if (err instanceof UsageError) throw new UsageError(err.message, fullUsage);
        return reportError(name, err, tls);
      }
    },
  };
}

function kindArg(positionals: string[], needName: boolean): { kind: string; name: string } {
  const [rawKind, name] = positionals;
  if (!rawKind || (needName && !name)) throw new UsageError(needName ? 'KIND and NAME are required' : 'KIND is required');
  return { kind: canonicalKind(rawKind), name: name ?? '' };
}

/** Accepts `cluster`, `clusters`, `Cluster`, and the short names `cla`, `routes`. */
function canonicalKind(s: string): string {
  const k = s.toLowerCase().replace(/s$/, '');
  const map: Record<string, string> = {
    cluster: 'Cluster',
    listener: 'Listener',
    route: 'RouteConfiguration',
    routeconfiguration: 'RouteConfiguration',
    cla: 'ClusterLoadAssignment',
    endpoint: 'ClusterLoadAssignment',
    clusterloadassignment: 'ClusterLoadAssignment',
  };
  return map[k] ?? s;
}

export async function readDocumentValues(path: string): Promise<JsonObject[]> {
  const read = await readDocuments(path);
  if (!read.ok) throw new Error(read.errors.map((e) => `${e.document}: ${e.message}`).join('\n'));
  return read.value.map((d) => d.value as JsonObject);
}

export const applyCommand = operatorCommand(
  'apply',
  'create or update resource documents on the control plane',
  'usage: outrigger apply -f FILE|DIR [--dry-run]',
  { file: { type: 'string', short: 'f' }, 'dry-run': { type: 'boolean', default: false } },
  async (v, _p, client) => {
    if (typeof v.file !== 'string') throw new UsageError('-f FILE|DIR is required');
    const documents = await readDocumentValues(v.file);
    const res = await client.apply({ documents, dryRun: v['dry-run'] === true });
    for (const r of res.resources) {
      const d = r.document as { kind?: string; metadata?: { name?: string } };
      process.stdout.write(`${d.kind}/${d.metadata?.name} ${v['dry-run'] ? 'valid' : 'applied'} (version ${r.version})\n`);
    }
    for (const u of res.unchanged) process.stdout.write(`${u} unchanged\n`);
    process.stderr.write(res.warnings.map((w) => `warning: ${formatConfigError(w)}\n`).join(''));
    return 0;
  },
);

export const getCommand = operatorCommand(
  'get',
  'show resources stored on the control plane',
  'usage: outrigger get KIND [NAME] [-o yaml|json|table]',
  { output: { type: 'string', short: 'o', default: 'table' } },
  async (v, p, client) => {
    const { kind, name } = kindArg(p, false);
    const resources = name ? [(await client.get({ kind, name })).resource!] : (await client.list({ kind })).resources;
    const docs = resources.map((r) => r.document as JsonObject);
    if (v.output === 'yaml') process.stdout.write(docs.map((d) => `---\n${stringify(d, { lineWidth: 0 })}`).join(''));
    else if (v.output === 'json') process.stdout.write(JSON.stringify(docs.length === 1 && name ? docs[0] : { items: docs }, null, 2) + '\n');
    else {
      const rows = [['KIND', 'NAME', 'VERSION']];
      for (const r of resources) {
        const d = r.document as { kind: string; metadata: { name: string } };
        rows.push([d.kind, d.metadata.name, r.version]);
      }
      process.stdout.write(table(rows));
    }
    return 0;
  },
);

export const deleteCommand = operatorCommand(
  'delete',
  'delete a resource on the control plane',
  'usage: outrigger delete KIND NAME [--expected-version V]',
  { 'expected-version': { type: 'string', default: '' } },
  async (v, p, client) => {
    const { kind, name } = kindArg(p, true);
    const res = await client.delete({ kind, name, expectedVersion: String(v['expected-version'] ?? '') });
    process.stdout.write(`${kind}/${name} deleted (revision ${res.revision})\n`);
    return 0;
  },
);

export const historyCommand = operatorCommand(
  'history',
  'list the revisions of a resource',
  'usage: outrigger history KIND NAME',
  {},
  async (_v, p, client) => {
    const { kind, name } = kindArg(p, true);
    const res = await client.history({ kind, name });
    const rows = [['REVISION', 'ACTION', 'WHO', 'TIME']];
    for (const r of res.revisions) rows.push([String(r.revision), r.action, r.who, r.time ? new Date(timestampMs(r.time)).toISOString() : '']);
    process.stdout.write(table(rows));
    return 0;
  },
);

export const rollbackCommand = operatorCommand(
  'rollback',
  'restore a resource as it was at a revision',
  'usage: outrigger rollback KIND NAME --to REVISION',
  { to: { type: 'string' } },
  async (v, p, client) => {
    const { kind, name } = kindArg(p, true);
    if (typeof v.to !== 'string' || !/^\d+$/.test(v.to)) throw new UsageError('--to REVISION is required');
    const res = await client.rollback({ kind, name, toRevision: BigInt(v.to) });
    process.stdout.write(`${kind}/${name} rolled back to revision ${v.to} (now revision ${res.revision})\n`);
    return 0;
  },
);

const SHORT: Record<string, string> = {
  'type.googleapis.com/outrigger.config.v1.Cluster': 'CDS',
  'type.googleapis.com/outrigger.config.v1.ClusterLoadAssignment': 'EDS',
  'type.googleapis.com/outrigger.config.v1.Listener': 'LDS',
  'type.googleapis.com/outrigger.config.v1.RouteConfiguration': 'RDS',
};

export const statusCommand = operatorCommand(
  'status',
  'show every connected sidecar (of every live control-plane replica) and its sync state per kind',
  'usage: outrigger status [-o table|json]',
  { output: { type: 'string', short: 'o', default: 'table' } },
  async (v, _p, client) => {
    const res = await client.status({});
    // Only the asked replica's sidecars when the shared store could not be read: say so, but still show them.
    if (res.error) process.stderr.write(`outrigger status: warning: ${res.error}\n`);
    if (v.output === 'json') {
      const out = res.sidecars.map((s) => ({
        nodeId: s.nodeId,
        cluster: s.nodeCluster,
        version: s.sidecarVersion,
        stream: s.stream,
        controlPlane: s.controlPlane,
        admin: s.adminAddress || undefined,
        spiffeId: s.spiffeId || undefined,
        certificateExpiry: s.certificateExpiry ? new Date(timestampMs(s.certificateExpiry)).toISOString() : undefined,
        ...(s.locality ? { locality: s.locality } : {}),
        connectedSince: s.connectedSince ? new Date(timestampMs(s.connectedSince)).toISOString() : undefined,
        types: s.types.map((t) => ({
          type: SHORT[t.typeUrl] ?? t.typeUrl,
          sent: t.versionSent,
          acked: t.versionAcked,
          state: TypeStatus_State[t.state],
          error: t.error || undefined,
          lastAck: t.lastAck ? new Date(timestampMs(t.lastAck)).toISOString() : undefined,
          pushLatencyMs: t.pushLatencyMs,
        })),
      }));
      // The asked replica's discovery providers (`outrigger control --discover`); empty without.
      const providers = res.providers.map((p) => ({
        provider: p.provider,
        connected: p.connected,
        lastEvent: p.lastEvent ? new Date(timestampMs(p.lastEvent)).toISOString() : undefined,
        services: p.services,
        errors: Number(p.errors),
        lastError: p.lastError || undefined,
      }));
      process.stdout.write(JSON.stringify({ sidecars: out, providers }, null, 2) + '\n');
      return 0;
    }
    // Which replica holds each stream matters only when there are several.
    const replicas = res.controlPlanes.length > 1;
    // Certificate expiry once the control plane issued any (docs/security.md).
    const certs = res.sidecars.some((s) => s.certificateExpiry);
    const rows = [['NODE', ...(replicas ? ['CONTROL PLANE'] : []), ...(certs ? ['CERT EXPIRY'] : []), 'TYPE', 'SENT', 'ACKED', 'STATE', 'LAST ACK', 'PUSH LATENCY', 'ERROR']];
    for (const s of res.sidecars) {
      for (const t of s.types) {
        rows.push([
          s.nodeId,
          ...(replicas ? [s.controlPlane] : []),
          ...(certs ? [s.certificateExpiry ? new Date(timestampMs(s.certificateExpiry)).toISOString() : '-'] : []),
          SHORT[t.typeUrl] ?? t.typeUrl,
          t.versionSent || '-',
          t.versionAcked || '-',
          TypeStatus_State[t.state],
          t.lastAck ? new Date(timestampMs(t.lastAck)).toISOString() : '-',
          t.pushLatencyMs ? `${t.pushLatencyMs.toFixed(0)}ms` : '-',
          t.error,
        ]);
      }
    }
    process.stdout.write(table(rows));
    if (res.providers.length > 0) {
      // The asked replica's discovery providers (`outrigger control --discover`).
      const prov = [['PROVIDER', 'CONNECTED', 'LAST EVENT', 'SERVICES', 'ERRORS', 'LAST ERROR']];
      for (const p of res.providers) {
        prov.push([p.provider, String(p.connected), p.lastEvent ? new Date(timestampMs(p.lastEvent)).toISOString() : '-', String(p.services), String(p.errors), p.lastError]);
      }
      process.stdout.write('\n' + table(prov));
    }
    return 0;
  },
);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n').join('');
}
