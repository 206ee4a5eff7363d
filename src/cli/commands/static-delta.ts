import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatBytes, out, printJson, requireRepo, table } from '../output.js';

export function register(program: Command): void {
  const sd = program.command('static-delta').description("make and list static deltas (OSTree's format: used by strata pull and ostree pull)");
  sd.command('generate')
    .description('write the delta FROM→TO (or from nothing, --empty) into deltas/; then run `summary -u` to offer it')
    .option('--repo <path>', 'repository path')
    .option('--from <rev>', 'the commit devices have (ref, checksum or prefix)')
    .option('--empty', 'a delta from nothing: the whole commit')
    .requiredOption('--to <rev>', 'the commit to deliver')
    .option('--xz-preset <n>', 'xz preset for the parts, 0-9 (default 6; 3 is about twice as fast, ~9% larger)')
    .option('--compressor <tool>', "what writes the parts' .xz streams: auto (7zz when installed, else xz), xz or 7zz", 'auto')
    .option('--no-bsdiff', 'send changed files whole instead of as binary patches')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; from?: string; empty?: boolean; to: string; xzPreset?: string; compressor: string; bsdiff: boolean; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { resolveRev } = await import('../../repo/refs.js');
      const { generateDelta } = await import('../../remote/delta-generate.js');
      if ((o.from === undefined) === !o.empty) throw new StrataError('USAGE', 'static-delta generate needs exactly one of --from REV and --empty');
      const preset = o.xzPreset === undefined ? undefined : Number(o.xzPreset);
      if (preset !== undefined && !(Number.isInteger(preset) && preset >= 0 && preset <= 9)) throw new StrataError('USAGE', `--xz-preset ${o.xzPreset} is not a number from 0 to 9`);
      if (!['auto', 'xz', '7zz'].includes(o.compressor)) throw new StrataError('USAGE', `--compressor ${o.compressor} is not one of auto, xz, 7zz`);
      const repo = Repo.open(requireRepo(o.repo));
      const from = o.from === undefined ? null : resolveRev(repo, o.from);
      const to = resolveRev(repo, o.to);
      const r = await generateDelta({ repo, from, to, xzPreset: preset, bsdiff: o.bsdiff, compressor: o.compressor as 'auto' | 'xz' | '7zz' });
      if (o.json) return printJson(r);
      out(`Generated static delta ${r.name}`);
      out(`  ${r.objects} objects (${r.patched} as binary patches) in ${r.parts} part${r.parts === 1 ? '' : 's'} (${r.compressor}): ${formatBytes(r.size)} for ${formatBytes(r.usize)}, ${r.seconds.toFixed(1)} s`);
    });
  sd.command('list')
    .description('list the static deltas in deltas/')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (o: { repo?: string; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { listStaticDeltas } = await import('../../remote/summary.js');
      const deltas = listStaticDeltas(Repo.open(requireRepo(o.repo)))
        .map((d) => ({ name: d.name, from: d.from, to: d.to, digest: d.digest.toString('hex') }))
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      if (o.json) return printJson(deltas);
      if (deltas.length === 0) return out('(no static deltas)');
      for (const d of deltas) out(d.name);
    });
  sd.command('show')
    .description("show a delta's superblock: parts, sizes, objects")
    .option('--repo <path>', 'repository path')
    .argument('<name>', 'TO or FROM-TO (full checksums, as `list` prints)')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { repo?: string; json?: boolean }) => {
      const { Repo } = await import('../../repo/repo.js');
      const { parseDeltaName } = await import('../../core/deltas.js');
      const { readSuperblock } = await import('../../remote/delta-apply.js');
      const d = parseDeltaName(name);
      if (!d) throw new StrataError('USAGE', `${name} is not a delta name (TO or FROM-TO, 64-character checksums)`);
      const sb = readSuperblock(Repo.open(requireRepo(o.repo)), d.from, d.to);
      const parts = sb.parts.map((p, i) => ({ part: i, objects: p.objects.length, size: p.size, usize: p.usize, checksum: p.checksum }));
      const view = { name, from: sb.from, to: sb.to, timestamp: sb.timestamp, parts, fallbacks: sb.fallbacks.length, size: parts.reduce((n, p) => n + p.size, 0), usize: parts.reduce((n, p) => n + p.usize, 0) };
      if (o.json) return printJson(view);
      out(`Delta: ${name}`);
      out(`From: ${sb.from ?? '(nothing)'}`);
      out(`To: ${sb.to}`);
      out(`Timestamp: ${new Date(sb.timestamp * 1000).toISOString()}`);
      out(table([['PART', 'OBJECTS', 'SIZE', 'UNCOMPRESSED'], ...parts.map((p) => [String(p.part), String(p.objects), formatBytes(p.size), formatBytes(p.usize)])]));
      out(`Fallback objects: ${view.fallbacks}`);
      out(`Total: ${formatBytes(view.size)} for ${formatBytes(view.usize)}`);
    });
}
