import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { out, printJson, requireRepo } from '../output.js';
import type { SummaryView } from '../../remote/summary.js';

const when = (t: number | null): string => (t === null ? '-' : new Date(t * 1000).toISOString().replace('.000Z', 'Z'));

export function printSummaryView(v: SummaryView): void {
  for (const r of v.refs) {
    out(`* ${r.name}`);
    out(`    Latest Commit (${r.size} bytes): ${r.checksum}`);
    if (r.version !== null) out(`    Version: ${r.version}`);
    out(`    Timestamp: ${when(r.timestamp)}`);
  }
  if (v.refs.length === 0) out('(no refs)');
  const deltas = Object.keys(v.staticDeltas);
  if (deltas.length) {
    out('Static deltas:');
    for (const d of deltas) out(`  ${d}`);
  }
  out(`Repository mode: ${v.mode ?? '-'}`);
  out(`Last modified: ${when(v.lastModified)}`);
  out(`Tombstone commits: ${v.tombstoneCommits === null ? '-' : v.tombstoneCommits ? 'yes' : 'no'}`);
  out(`Indexed deltas: ${v.indexedDeltas === null ? '-' : v.indexedDeltas ? 'yes' : 'no'}`);
  for (const [k, t] of Object.entries(v.other)) out(`${k}: (${t})`);
}

export function register(program: Command): void {
  program
    .command('summary')
    .description("write (-u) or show (--view) the repository's summary file: refs, commits, static deltas, as ostree does")
    .option('--repo <path>', 'repository path')
    .option('-u, --update', 'regenerate the summary (and delta indexes); removes an old summary.sig')
    .option('--sign-key <file>', 'with -u: sign the summary into summary.sig with this secret key file')
    .option('--view', 'show the summary file')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; update?: boolean; signKey?: string; view?: boolean; json?: boolean }) => {
      const summary = await import('../../remote/summary.js');
      const repo = requireRepo(o.repo);
      if (o.update === o.view) throw new StrataError('USAGE', 'summary needs exactly one of -u (update) and --view');
      if (o.signKey !== undefined && !o.update) throw new StrataError('USAGE', '--sign-key goes with -u');
      if (o.update) {
        const r = summary.updateSummary({ repo, signKeyFile: o.signKey });
        if (o.json) return printJson(r);
        out(`Updated ${r.path}: ${r.refs} ref${r.refs === 1 ? '' : 's'}, ${r.deltas} static delta${r.deltas === 1 ? '' : 's'}${r.signed ? ', signed (summary.sig)' : ''}`);
        return;
      }
      const { view, signed } = summary.readSummary({ repo });
      if (o.json) return printJson({ ...view, signed });
      printSummaryView(view);
      out(`Signed: ${signed ? 'yes (summary.sig)' : 'no'}`);
    });
}
