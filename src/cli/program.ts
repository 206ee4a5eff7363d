// The `strata` program: declares the commands and hands each to its module.

import { Command, CommanderError } from 'commander';
import { handleError } from './output.js';
import { COMMANDS } from './commands/index.js';

/** The program with the command `argv` names, or with all of them (help, --version, an unknown name). */
export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('strata')
    .description('Image-based, immutable OS updates: an OSTree-compatible repository, deployments and fleet rollouts')
    .version('0.1.0')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const named = COMMANDS.find(([name]) => name === argv[0]);
  for (const [, load] of named ? [named] : COMMANDS) (await load()).register(program);
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  program.commands.forEach(override);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2; // commander already printed the one-line reason
    }
    return handleError(err);
  }
}
