import type { Command } from 'commander';
import { out, printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('refs')
    .description('list refs and the commits they point at')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { listRefs } = await import('../../repo/refs.js');
      const refs = listRefs(Repo.open(requireRepo(o.repo)));
      if (o.json) return printJson(refs);
      for (const r of refs) out(`${r.name} ${r.checksum}`);
    });
}
