import type { Command } from 'commander';
import { out, printJson, requireRepo } from '../output.js';
import { printCommit } from './log.js';

export function register(program: Command): void {
  program
    .command('show')
    .description('show one commit: subject, version, date, parent, metadata and signatures')
    .argument('<rev>', 'ref or commit')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (rev: string, o: { repo?: string; json?: boolean }) => {
      const { show } = await import('../../repo/history.js');
      const c = show({ repo: requireRepo(o.repo), rev });
      if (o.json) return printJson(c);
      printCommit(c);
      out(`Root:    tree ${c.rootTree}`);
      out(`         meta ${c.rootMeta}`);
      const keys = Object.keys(c.metadata);
      if (keys.length) {
        out('Metadata:');
        for (const k of keys) out(`  ${k}: ${JSON.stringify(c.metadata[k])}`);
      }
      const signatures = Object.keys(c.detachedMetadata);
      if (signatures.length) {
        out('Detached metadata:');
        for (const k of signatures) out(`  ${k}`);
      }
    });
}
