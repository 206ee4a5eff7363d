import type { Command } from 'commander';
import { formatBytes, out, parseIntFlag, printJson, progress, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('prune')
    .description('delete objects no ref or commit needs, and report the space freed')
    .option('--repo <path>', 'repository path')
    .option('--refs-only', 'only refs keep commits alive: unreferenced commits are deleted too')
    .option('--depth <n>', 'keep only N ancestors of each ref (-1: all); implies --refs-only')
    .option('--keep-younger-than <duration>', 'delete ancestors older than this (e.g. 30d); implies --refs-only')
    .option('--dry-run', 'say what would be deleted, delete nothing')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; refsOnly?: boolean; depth?: string; keepYoungerThan?: string; dryRun?: boolean; json?: boolean }) => {
      const { prune, parseDuration } = await import('../../repo/prune.js');
      const bar = await progress('prune', o);
      let r;
      try {
        r = prune({
          repo: requireRepo(o.repo),
          refsOnly: o.refsOnly,
          depth: o.depth !== undefined ? parseIntFlag('--depth', o.depth, -1) : undefined,
          keepYoungerThan: o.keepYoungerThan !== undefined ? parseDuration(o.keepYoungerThan) : undefined,
          dryRun: o.dryRun,
          onProgress: (d, t) => bar.update(d, t),
        });
      } finally {
        bar.stop();
      }
      if (o.json) return printJson(r);
      if (r.dryRun) out(`Would delete ${r.total} objects (${r.deletedCommits} commits), freeing ${formatBytes(r.freedBytes)}`);
      else out(`Deleted ${r.deleted} objects (${r.deletedCommits} commits), freed ${formatBytes(r.freedBytes)}`);
    });
}
