import type { Command } from 'commander';
import { out, printJson, progress, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('checkout')
    .description('check a commit out into a directory (hardlinks from bare-user repos)')
    .argument('<rev>', 'ref or commit')
    .argument('<dest>', 'destination directory (must not exist or be empty, unless --union)')
    .option('--repo <path>', 'repository path')
    .option('--subpath <path>', 'check out only this path of the tree')
    .option('--union', 'write into an existing directory, replacing what the tree also has')
    .option('--copy', 'always copy files, never hardlink')
    .option('--json', 'print JSON')
    .action(async (rev: string, dest: string, o: { repo?: string; subpath?: string; union?: boolean; copy?: boolean; json?: boolean }) => {
      const { checkout } = await import('../../repo/checkout.js');
      const bar = await progress('checkout', o);
      try {
        const r = await checkout({ repo: requireRepo(o.repo), rev, dest, subpath: o.subpath, union: o.union, copy: o.copy, onProgress: (d) => bar.update(d, d) });
        bar.stop();
        if (o.json) return printJson(r);
        out(`Checked out ${r.commit.slice(0, 12)} into ${r.dest}: ${r.files} files (${r.hardlinked} hardlinked, ${r.copied} copied), ${r.symlinks} symlinks, ${r.dirs} directories`);
        for (const w of r.warnings.slice(0, 5)) process.stderr.write(`warning: ${w}\n`);
        if (r.warnings.length > 5) process.stderr.write(`warning: ${r.warnings.length - 5} more\n`);
      } finally {
        bar.stop();
      }
    });
}
