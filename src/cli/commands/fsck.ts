import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatBytes, out, printJson, progress, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('fsck')
    .description('re-hash every object reachable from refs and commits; report missing and corrupt ones')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; json?: boolean }) => {
      const { fsck } = await import('../../repo/fsck.js');
      const bar = await progress('fsck', o);
      let r;
      try {
        r = await fsck({ repo: requireRepo(o.repo), onProgress: (d, t) => bar.update(d, t) });
      } finally {
        bar.stop();
      }
      if (o.json) printJson(r);
      else {
        for (const p of r.problems) {
          out(`${p.status.toUpperCase()}: ${p.message}`);
          out(`  object: ${p.object}`);
          for (const u of p.usedAt) out(`  used at: ${u}`);
        }
        out(`Checked ${r.commits} commits, ${r.objects} objects (${formatBytes(r.contentBytes)} of content): ${r.problems.length ? `${r.problems.length} problems` : 'no problems'}`);
      }
      if (r.problems.length) {
        if (o.json) process.exitCode = 1;
        else throw new StrataError('FSCK_FAILED', `fsck found ${r.problems.length} missing or corrupt objects`, { problems: r.problems.length });
      }
    });
}
