import { loadConfig } from '../config/loader.js';
import { formatConfigError, type ConfigSnapshot } from '../config/snapshot.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';
import { operatorClient, resolveTarget, type TargetFlags } from '../control/client/operator-client.js';
import { readDocumentValues } from './operator-commands.js';
import { reportError } from './control-flags.js';
import { ModuleLoader } from '../core/module-loader.js';
import { PluginConfigError, preparePlugins } from '../proxy/filters/plugin/prepare-plugins.js';

const USAGE = `usage: outrigger validate -f FILE|DIR [--allow-ephemeral-ports] [--server [--control-plane H:P] [--token-file F]
       [--tls-ca F] [--tls-cert F --tls-key F]]

Checks resource documents (YAML or JSON; a directory means every *.yaml,
*.yml and *.json file in it) exactly as the sidecar would before applying
them: syntax, field names and types, references between resources and value
ranges. Prints every error, one per line, and exits 1; prints a summary and
exits 0 when the config is valid, with any warnings (problems that do not
stop the config, e.g. a ring-hash cluster reached by a route without a
hashPolicy) on stderr. Plugin modules the config names are imported and
their configs checked by the modules' validate (docs/plugins.md). See
docs/config.md.

flags:
  -f, --file FILE|DIR        the config to check
  --allow-ephemeral-ports    accept listener port 0 (test configs)
  --server                   dry run on the control plane: checked together with what it stores
  --control-plane HOST:PORT  (with --server) default $OUTRIGGER_CONTROL_PLANE
  --token-file FILE          (with --server) default the value of $OUTRIGGER_TOKEN
  --tls-ca FILE              (with --server) TLS with this CA; default $OUTRIGGER_TLS_CA
  --tls-cert F, --tls-key F  (with --server) client certificate (mTLS); default $OUTRIGGER_TLS_CERT/_KEY
  -h, --help                 show this help`;

/** Summary order follows the request path: listener → routes → clusters → endpoints. */
const SUMMARY_ORDER = ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'] as const;

export const validateCommand: Command = {
  summary: 'check config documents without running anything',
  async run(args) {
    const values = parseFlags(
      args,
      {
        file: { type: 'string', short: 'f' },
        'allow-ephemeral-ports': { type: 'boolean', default: false },
        server: { type: 'boolean', default: false },
        'control-plane': { type: 'string' },
        'token-file': { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
      },
      USAGE,
    )?.values;
    if (!values) return 0;
    if (!values.file) {
      throw new UsageError(`-f FILE|DIR is required`, USAGE);
    }
    if (values.server) return validateOnServer(values.file, values);
    const result = await loadConfig(values.file, { allowEphemeralPorts: values['allow-ephemeral-ports'], anchorPluginPaths: true });
    if (!result.ok) {
      process.stderr.write(result.errors.map((e) => formatConfigError(e) + '\n').join(''));
      return 1;
    }
    // Plugins: imported (running their top-level code, as the sidecar would) and their configs validated.
    try {
      await preparePlugins(result.value, new ModuleLoader(process.cwd()));
    } catch (err) {
      if (!(err instanceof PluginConfigError)) throw err;
      process.stderr.write(err.problems.map((p) => p + '\n').join(''));
      return 1;
    }
    // Warnings do not make the config invalid (exit 0), but each is shown with its field path.
    process.stderr.write((result.value.warnings ?? []).map((w) => `warning: ${formatConfigError(w)}\n`).join(''));
    process.stdout.write(summary(result.value) + '\n');
    return 0;
  },
};

/** `valid: 3 documents (1 Listener, 1 RouteConfiguration, 1 Cluster), version 1a2b…` */
export function summary(snap: ConfigSnapshot): string {
  const counts = new Map<string, number>();
  for (const d of snap.documents) counts.set(d.kind, (counts.get(d.kind) ?? 0) + 1);
  const parts = SUMMARY_ORDER.filter((k) => counts.has(k)).map((k) => `${counts.get(k)} ${k}`);
  const n = snap.documents.length;
  const w = snap.warnings?.length ?? 0;
  return `valid: ${n} document${n === 1 ? '' : 's'} (${parts.join(', ')}), version ${snap.version}${w > 0 ? `, ${w} warning${w === 1 ? '' : 's'}` : ''}`;
}

async function validateOnServer(file: string, flags: TargetFlags): Promise<number> {
  let tls: boolean | undefined;
  try {
    const documents = await readDocumentValues(file);
    const target = resolveTarget(flags);
    tls = target.tls !== undefined || target.address.startsWith('https://');
    const res = await operatorClient(target).validate({ documents });
    if (!res.valid) {
      process.stderr.write(res.errors.map((e) => formatConfigError(e) + '\n').join(''));
      return 1;
    }
    process.stderr.write(res.warnings.map((w) => `warning: ${formatConfigError(w)}\n`).join(''));
    process.stdout.write(`valid on the server: ${documents.length} document${documents.length === 1 ? '' : 's'}\n`);
    return 0;
  } catch (err) {
    return reportError('validate', err, tls);
  }
}
