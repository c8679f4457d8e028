import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseAllDocuments, stringify } from 'yaml';
import { defaultMeshConfig, parseMeshConfig, type MeshConfig } from '../../injector/mesh-config.js';
import { injectManifest, type ManifestObject, type ManifestResult } from '../../injector/workloads.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger inject -f FILE|- [--diff] [-o FILE] [--mesh-config FILE] [--kubernetes-version V]

Rewrites Kubernetes manifests offline the way the injector webhook would
(like istioctl kube-inject): Pods, Deployments, StatefulSets, DaemonSets,
ReplicaSets, Jobs and CronJobs get the sidecar in their pod template; other
objects pass through unchanged. Multi-document YAML, JSON and kind: List work.

flags:
  -f, --filename FILE      manifest to read (- for stdin)
  --diff                   print each object's JSONPatch instead of the manifest
  -o, --output FILE        write there instead of stdout
  --mesh-config FILE       mesh config (docs/injector.md); defaults otherwise
  --kubernetes-version V   decides native sidecars in auto mode (default: the
                           mesh config's; unknown means classic sidecars)`;

export const injectCommand: Command = {
  summary: 'inject the sidecar into manifests offline',
  async run(args) {
    const values = parseFlags(
      args,
      {
        filename: { type: 'string', short: 'f' },
        diff: { type: 'boolean', default: false },
        output: { type: 'string', short: 'o' },
        'mesh-config': { type: 'string' },
        'kubernetes-version': { type: 'string' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values.filename) {
      throw new UsageError('-f is required', USAGE);
    }
    let mesh: MeshConfig;
    let docs: unknown[];
    try {
      mesh = values['mesh-config'] ? parseMeshConfig(readFileSync(values['mesh-config'], 'utf8')) : defaultMeshConfig();
      const text = readFileSync(values.filename === '-' ? 0 : values.filename, 'utf8');
      docs = parseAllDocuments(text).map((d) => {
        if (d.errors.length) throw new Error(d.errors[0]!.message);
        return d.toJSON() as unknown;
      });
    } catch (err) {
      process.stderr.write(`outrigger inject: ${(err as Error).message}\n`);
      return 1;
    }
    const version = values['kubernetes-version'] || mesh.kubernetesVersion || undefined;
    const out: string[] = [];
    try {
      for (const doc of docs) {
        if (doc === null || typeof doc !== 'object') continue;
        const o = doc as ManifestObject;
        if (o.kind === 'List' && Array.isArray(o.items)) {
          const results = (o.items as ManifestObject[]).map((item) => injectManifest(item, mesh, version));
          results.forEach(report);
          if (values.diff) results.forEach((r) => out.push(diffText(r)));
          else out.push(stringify({ ...o, items: results.map((r) => r.object) }, { lineWidth: 0 }));
          continue;
        }
        const r = injectManifest(o, mesh, version);
        report(r);
        out.push(values.diff ? diffText(r) : stringify(r.object, { lineWidth: 0 }));
      }
    } catch (err) {
      process.stderr.write(`outrigger inject: ${(err as Error).message}\n`);
      return 1;
    }
    const text = values.diff ? out.join('') : out.join('---\n');
    if (values.output) await writeFile(values.output, text);
    else process.stdout.write(text);
    return 0;
  },
};

function report(r: ManifestResult): void {
  for (const w of r.warnings) process.stderr.write(`warning: ${r.ref}: ${w}\n`);
  if (r.skipReason && r.skipReason !== 'not_a_workload') process.stderr.write(`${r.ref}: not injected (${r.skipReason})\n`);
}

function diffText(r: ManifestResult): string {
  const head = `# ${r.ref}${r.skipReason ? ` (${r.skipReason}: no change)` : ''}\n`;
  return head + JSON.stringify(r.patch, null, 2) + '\n';
}
