/**
 * One `outrigger` subcommand. Its own module so the subcommands, which
 * main.ts loads lazily, do not import main.ts back.
 */
export interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}
