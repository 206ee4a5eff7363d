import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('cat')
    .description("write a file's content from a commit to stdout")
    .argument('<rev>', 'ref or commit')
    .argument('<path>', 'path of a regular file inside the tree')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON: path, size and the content in base64')
    .action(async (rev: string, p: string, o: { repo?: string; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { resolveRev } = await import('../../repo/refs.js');
      const { resolveTreePath } = await import('../../repo/walk.js');
      const repo = Repo.open(requireRepo(o.repo));
      const node = resolveTreePath(repo, resolveRev(repo, rev), p);
      if (node.kind !== 'file') throw new StrataError('NOT_A_FILE', `${p} is a directory; use 'strata ls'`, { path: p });
      const { meta, content } = repo.loadFile(node.checksum);
      if (!content) throw new StrataError('NOT_A_FILE', `${p} is a symlink to ${meta.symlinkTarget}`, { path: p });
      if (o.json) return printJson({ path: p, checksum: node.checksum, size: content.length, base64: content.toString('base64') });
      await new Promise<void>((resolve, reject) => process.stdout.write(content, (e) => (e ? reject(e) : resolve())));
    });
}
