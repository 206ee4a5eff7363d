import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { out, printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a repository (archive: compressed, for serving; bare-user: for hardlink checkouts)')
    .option('--repo <path>', 'repository path')
    .option('--mode <mode>', 'archive or bare-user', 'archive')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; mode: string; json?: boolean }) => {
      const { Repo, REPO_MODES } = await import('../../repo/repo.js');
      if (!(REPO_MODES as readonly string[]).includes(o.mode)) throw new StrataError('USAGE', `--mode must be archive or bare-user, not '${o.mode}'`);
      const { repo, created } = Repo.init(requireRepo(o.repo), o.mode as 'archive' | 'bare-user');
      if (o.json) printJson({ path: repo.path, mode: repo.mode, created });
      else out(`${created ? 'Created' : 'Already have'} ${repo.mode} repository at ${repo.path}`);
    });
}
