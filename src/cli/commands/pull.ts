import type { Command } from 'commander';
import { formatBytes, out, parseIntFlag, printJson, progress, requireRepo } from '../output.js';

export function register(program: Command): void {
  program
    .command('pull')
    .description("fetch a remote's ref (or a commit) and only the objects the repository lacks; verified, parallel, resumable")
    .argument('<remote>', 'remote name')
    .argument('<ref>', 'ref the remote offers, or a commit checksum')
    .option('--repo <path>', 'repository path')
    .option('--depth <n>', 'also fetch N parent commits (-1: all)', '0')
    .option('--mirror', 'write refs/heads/REF instead of refs/remotes/REMOTE/REF')
    .option('--jobs <n>', 'requests in flight at most', '8')
    .option('--allow-downgrade', 'move the ref even to an older commit')
    .option('--disable-static-deltas', 'fetch objects even when the remote offers a static delta')
    .option('--json', 'print a JSON summary')
    .action(async (remote: string, ref: string, o: { repo?: string; depth: string; mirror?: boolean; jobs: string; allowDowngrade?: boolean; disableStaticDeltas?: boolean; json?: boolean }) => {
      const { pull } = await import('../../remote/pull.js');
      const depth = parseIntFlag('--depth', o.depth, -1);
      const jobs = parseIntFlag('--jobs', o.jobs, 1);
      const bar = await progress('pull', o, '{value}/{total} {unit} | {bytes} | {rate}/s');
      const start = Date.now();
      let r;
      try {
        r = await pull({
          repo: requireRepo(o.repo),
          remote,
          rev: ref,
          depth,
          jobs,
          mirror: o.mirror,
          allowDowngrade: o.allowDowngrade,
          disableStaticDeltas: o.disableStaticDeltas,
          onProgress: (p) => bar.update(p.done, p.total, { unit: p.delta ? 'delta parts' : 'objects', bytes: formatBytes(p.bytes), rate: formatBytes(Math.round(p.bytes / Math.max(0.001, (Date.now() - start) / 1000))) }),
        });
      } finally {
        bar.stop();
      }
      if (o.json) return printJson(r);
      const name = r.localRef ?? r.commit;
      const resumed = r.objects.resumed > 0 || r.bytes.resumedPartial > 0 ? `, resumed ${r.objects.resumed} objects and ${formatBytes(r.bytes.resumedPartial)} of partial downloads` : '';
      out(`${r.changed ? `${name} -> ${r.commit}` : `${name} is ${r.commit}`}${r.version ? ` (version ${r.version})` : ''}${r.verifiedBy ? ', signature verified' : ''}`);
      if (r.delta) out(`Applied static delta ${r.delta.name}: ${r.delta.parts} part${r.delta.parts === 1 ? '' : 's'}, ${formatBytes(r.delta.bytes)}; stored ${r.objects.stored} objects`);
      if (!r.delta || r.objects.fetched > 0) out(`Fetched ${r.objects.fetched} objects (${r.objects.metadata} metadata, ${r.objects.content} content), ${formatBytes(r.bytes.fetched)} in ${(r.elapsedMs / 1000).toFixed(1)} s${resumed}`);
    });
}
