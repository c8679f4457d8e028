import { parseArgs } from 'node:util';
import { loadConfig } from '../config/loader.js';
import { formatConfigError, type ConfigSnapshot } from '../config/snapshot.js';
import type { Command } from './main.js';

const USAGE = `usage: outrigger validate -f FILE|DIR [--allow-ephemeral-ports]

Checks resource documents (YAML or JSON; a directory means every *.yaml,
*.yml and *.json file in it) exactly as the sidecar would before applying
them: syntax, field names and types, references between resources and value
ranges. Prints every error, one per line, and exits 1; prints a summary and
exits 0 when the config is valid. See docs/config.md.

flags:
  -f, --file FILE|DIR        the config to check
  --allow-ephemeral-ports    accept listener port 0 (test configs)
  -h, --help                 show this help`;

/** Summary order follows the request path: listener → routes → clusters → endpoints. */
const SUMMARY_ORDER = ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'] as const;

export const validateCommand: Command = {
  summary: 'check config documents without running anything',
  async run(args) {
    let values;
    try {
      ({ values } = parseArgs({
        args,
        options: {
          file: { type: 'string', short: 'f' },
          'allow-ephemeral-ports': { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      }));
    } catch (err) {
      process.stderr.write(`outrigger validate: ${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (!values.file) {
      process.stderr.write(`outrigger validate: -f FILE|DIR is required\n\n${USAGE}\n`);
      return 2;
    }
    const result = await loadConfig(values.file, { allowEphemeralPorts: values['allow-ephemeral-ports'] });
    if (!result.ok) {
      process.stderr.write(result.errors.map((e) => formatConfigError(e) + '\n').join(''));
      return 1;
    }
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
  return `valid: ${n} document${n === 1 ? '' : 's'} (${parts.join(', ')}), version ${snap.version}`;
}
