import type { Command } from 'commander';
import { out, printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('rev-parse')
    .description('print the commit a ref, checksum prefix or REF^ names')
    .argument('<rev>', 'ref, checksum or prefix; a trailing ^ steps to the parent')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (rev: string, o: { repo?: string; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { resolveRev } = await import('../../repo/refs.js');
      const checksum = resolveRev(Repo.open(requireRepo(o.repo)), rev);
      if (o.json) printJson({ rev, checksum });
      else out(checksum);
    });
}
