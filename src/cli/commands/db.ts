import type { Command } from 'commander';
import { out, printJson, requireRepo } from '../output.js';

export function register(program: Command): void {
  const db = program.command('db').description('query the package databases inside commits');
  db.command('diff')
    .description("show the Debian packages added, removed, upgraded and downgraded between two commits (from each tree's dpkg status)")
    .argument('<from>', 'old ref or commit')
    .argument('<to>', 'new ref or commit')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (from: string, to: string, o: { repo?: string; json?: boolean }) => {
      const { dbDiff } = await import('../../repo/db-diff.js');
      const r = dbDiff({ repo: requireRepo(o.repo), from, to });
      if (o.json) return printJson(r);
      out(`ostree diff commit from: ${r.from} (${r.fromDb})`);
      out(`ostree diff commit to:   ${r.to} (${r.toDb})`);
      if (r.upgraded.length) out('Upgraded:');
      for (const p of r.upgraded) out(`  ${p.name} ${p.from} -> ${p.to}`);
      if (r.downgraded.length) out('Downgraded:');
      for (const p of r.downgraded) out(`  ${p.name} ${p.from} -> ${p.to}`);
      if (r.removed.length) out('Removed:');
      for (const p of r.removed) out(`  ${p.name}-${p.version}`);
      if (r.added.length) out('Added:');
      for (const p of r.added) out(`  ${p.name}-${p.version}`);
      out(`${r.upgraded.length} upgraded, ${r.downgraded.length} downgraded, ${r.removed.length} removed, ${r.added.length} added, ${r.unchanged} unchanged`);
    });
}
