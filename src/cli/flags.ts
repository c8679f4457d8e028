import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * A bad or missing flag or argument: main() prints `outrigger CMD: message`,
 * then the usage (or a pointer to --help without one), and exits 2.
 */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = '',
  ) {
    super(message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;
type WithHelp<O extends Options> = O & { help: { type: 'boolean'; short: 'h' } };
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: WithHelp<O>; allowPositionals: true }>>;

/**
 * Every command's flag handling in one place: its options plus -h/--help,
 * positionals allowed only where `positionals` says. Returns undefined after
 * printing the usage for --help (the command exits 0); a flag parseArgs
 * refuses, or a positional where none is taken, throws UsageError.
 */
export function parseFlags<O extends Options>(args: string[], options: O, usage: string, positionals = false): Parsed<O> | undefined {
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } } as WithHelp<O>, allowPositionals: true });
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage + '\n');
    return undefined;
  }
  if (!positionals && parsed.positionals.length > 0) throw new UsageError(`Unexpected argument '${parsed.positionals[0]}'. This command does not take positional arguments`, usage);
  return parsed;
}
