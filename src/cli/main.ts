import type { Command } from './command.js';
import { UsageError } from './flags.js';

/**
 * The `outrigger` command line: one binary, one subcommand per component.
 * Each subcommand lives in its own module and is loaded only when used, so
 * `outrigger validate` does not pay for the proxy's imports.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  sidecar: async () => (await import('./sidecar-command.js')).sidecarCommand,
  validate: async () => (await import('./validate-command.js')).validateCommand,
  demo: async () => (await import('./demo-command.js')).demoCommand,
  control: async () => (await import('./control-command.js')).controlCommand,
  apply: async () => (await import('./apply-command.js')).applyCommand,
  get: async () => (await import('./get-command.js')).getCommand,
  delete: async () => (await import('./delete-command.js')).deleteCommand,
  history: async () => (await import('./history-command.js')).historyCommand,
  rollback: async () => (await import('./rollback-command.js')).rollbackCommand,
  status: async () => (await import('./status-command.js')).statusCommand,
  injector: async () => (await import('./injector-command.js')).injectorCommand,
  inject: async () => (await import('./inject-command.js')).injectCommand,
  redirect: async () => (await import('./redirect-command.js')).redirectCommand,
  stat: async () => (await import('./stat-command.js')).statCommand,
  tap: async () => (await import('./tap-command.js')).tapCommand,
  top: async () => (await import('./top-command.js')).topCommand,
  identity: async () => (await import('./identity-command.js')).identityCommand,
  ca: async () => (await import('./ca-command.js')).caCommand,
  'wait-ready': async () => (await import('./wait-ready-command.js')).waitReadyCommand,
  announce: async () => (await import('./announce-command.js')).announceCommand,
};

function usage(): string {
  const lines = ['usage: outrigger <command> [flags]', '', 'commands:'];
  for (const name of Object.keys(COMMANDS)) lines.push(`  ${name}`);
  lines.push('', 'Run `outrigger <command> --help` for its flags.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`outrigger: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const cmd = await load();
  try {
    return await cmd.run(rest);
  } catch (err) {
    // Usage errors from any command (flags.ts): one line, the usage, exit 2.
    if (err instanceof UsageError) {
      const more = err.usage || `Run \`outrigger ${name} --help\` for its flags.`;
      process.stderr.write(`outrigger ${name}: ${err.message}\n\n${more}\n`);
      return 2;
    }
    throw err;
  }
}
