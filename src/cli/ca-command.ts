import { durationMs } from '../core/duration.js';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { controlClient, resolveTarget, type TargetFlags } from '../control/client/operator-client.js';
import { CaService, RotationStep, type CaState } from '../gen/outrigger/control/v1/ca_pb.js';
import { TARGET_OPTIONS, TARGET_USAGE, reportError } from './control-flags.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';

const USAGE = `usage: outrigger ca [show] [-o table|json]
       outrigger ca rotate [--commit | --drop]

The mesh CA's roots and root rotation (docs/security.md#root-rotation):
  rotate           stage a new root: the trust bundle carries old + new; the old root still signs
  rotate --commit  the new root signs (both still trusted)
  rotate --drop    the old root is removed: certificates from it are refused
Wait one certificate lifetime (--cert-ttl) between steps, so every sidecar has renewed.
${TARGET_USAGE}`;

const NEXT: Record<string, string> = {
  stable: 'none (one root); `outrigger ca rotate` starts a rotation',
  staged: '`outrigger ca rotate --commit` once every sidecar renewed',
  committed: '`outrigger ca rotate --drop` once every sidecar renewed',
};

function print(s: CaState, json: boolean): void {
  const wait = s.certTtl ? durationMs(s.certTtl, 0) : 0;
  if (json) {
    const roots = s.roots.map((r) => ({ fingerprint: r.fingerprint, subject: r.subject, notAfter: r.notAfter ? new Date(timestampMs(r.notAfter)).toISOString() : undefined, signing: r.signing }));
    process.stdout.write(JSON.stringify({ phase: s.phase, rotatable: s.rotatable, certTtlSeconds: wait / 1000, roots }, null, 2) + '\n');
    return;
  }
  const lines = [`phase: ${s.phase}${s.rotatable ? '' : ' (CA from --ca-cert: rotate by replacing the files)'}`, 'roots:'];
  for (const r of s.roots) {
    const until = r.notAfter ? new Date(timestampMs(r.notAfter)).toISOString() : '?';
    lines.push(`  ${r.signing ? '* ' : '  '}${r.fingerprint}  ${r.subject}  until ${until}`);
  }
  lines.push(`next step: ${NEXT[s.phase] ?? '?'}`);
  if (s.phase !== 'stable') lines.push(`wait at least ${Math.ceil(wait / 1000)}s (one certificate lifetime) before it`);
  process.stdout.write(lines.join('\n') + '\n');
}

export const caCommand: Command = {
  summary: "show the mesh CA's roots; rotate its root in three steps",
  async run(args) {
    const parsed = parseFlags(
      args,
      { ...TARGET_OPTIONS, commit: { type: 'boolean', default: false }, drop: { type: 'boolean', default: false }, output: { type: 'string', short: 'o', default: 'table' } },
      USAGE,
      true,
    );
    if (!parsed) return 0;
    const v = parsed.values as Record<string, string | boolean | undefined>;
    const [sub = 'show', ...extra] = parsed.positionals;
    if (extra.length > 0 || (sub !== 'show' && sub !== 'rotate')) throw new UsageError(`unknown arguments: ${parsed.positionals.join(' ')}`, USAGE);
    if (v.commit && v.drop) throw new UsageError('give --commit or --drop, not both', USAGE);
    if (sub === 'show' && (v.commit || v.drop)) throw new UsageError('--commit and --drop go with `rotate`', USAGE);
    if (v.output !== 'table' && v.output !== 'json') throw new UsageError('-o: table or json', USAGE);
    let tls: boolean | undefined;
    try {
      const target = resolveTarget(v as TargetFlags);
      tls = target.tls !== undefined || target.address.startsWith('https://');
      const client = controlClient(CaService, target);
      const step = v.commit ? RotationStep.COMMIT : v.drop ? RotationStep.DROP : RotationStep.STAGE;
      const { state } = sub === 'rotate' ? await client.rotateRoot({ step }) : await client.getCa({});
      print(state!, v.output === 'json');
      return 0;
    } catch (err) {
      return reportError(sub === 'rotate' ? 'ca rotate' : 'ca', err, tls);
    }
  },
};
