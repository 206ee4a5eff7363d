import type { Command } from 'commander';
import { out, parseIntFlag, printJson, requireRepo } from '../output.js';
import type { CommitInfo } from '../../repo/history.js';

export function printCommit(c: CommitInfo): void {
  out(`commit ${c.checksum}`);
  if (c.parent) out(`Parent:  ${c.parent}${c.parentPresent ? '' : ' (not in this repository)'}`);
  out(`Date:    ${c.date}`);
  if (c.version) out(`Version: ${c.version}`);
  out('');
  out(`    ${c.subject || '(no subject)'}`);
  if (c.body) for (const line of c.body.split('\n')) out(`    ${line}`);
  out('');
}

export function register(program: Command): void {
  program
    .command('log')
    .description('show the history of a ref or commit, newest first')
    .argument('<rev>', 'ref or commit')
    .option('--repo <path>', 'repository path')
    .option('-n, --max <count>', 'show at most this many commits')
    .option('--json', 'print JSON')
    .action(async (rev: string, o: { repo?: string; max?: string; json?: boolean }) => {
      const { log } = await import('../../repo/history.js');
      const commits = log({ repo: requireRepo(o.repo), rev, max: o.max !== undefined ? parseIntFlag('--max', o.max, 1) : undefined });
      if (o.json) return printJson(commits);
      for (const c of commits) printCommit(c);
      const last = commits[commits.length - 1];
      if (last?.parent && !last.parentPresent) out(`(history ends here: parent ${last.parent.slice(0, 12)} is not in this repository)`);
    });
}
