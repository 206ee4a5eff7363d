import type { Command } from 'commander';
import { out, printJson, requireRepo, table } from '../output.js';

export function register(program: Command): void {
  program
    .command('ls')
    .description('list a directory of a commit (like ls -l)')
    .argument('<rev>', 'ref or commit')
    .argument('[path]', 'path inside the tree', '/')
    .option('--repo <path>', 'repository path')
    .option('-R, --recursive', 'list the whole subtree')
    .option('-C, --checksum', 'show object checksums')
    .option('--json', 'print JSON')
    .action(async (rev: string, p: string, o: { repo?: string; recursive?: boolean; checksum?: boolean; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { resolveRev } = await import('../../repo/refs.js');
      const { listTree, formatMode } = await import('../../repo/walk.js');
      const repo = Repo.open(requireRepo(o.repo));
      const entries = listTree(repo, resolveRev(repo, rev), p, !!o.recursive);
      if (o.json) return printJson(entries.map((e) => ({ ...e, mode: e.mode.toString(8), xattrs: e.xattrs.map((x) => ({ name: x.name, value: x.value.toString('base64') })) })));
      out(table(entries.map((e) => [
        formatMode(e.mode), `${e.uid}`, `${e.gid}`, `${e.size}`, ...(o.checksum ? [e.checksum] : []),
        e.path + (e.target !== undefined ? ` -> ${e.target}` : ''),
      ])));
    });
}
