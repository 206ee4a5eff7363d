import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatBytes, out, parseIntFlag, printJson, progress, requireRepo } from '../output.js';

interface Flags {
  repo?: string;
  branch: string;
  subject?: string;
  body?: string;
  timestamp?: string;
  addMetadataString: string[];
  parent?: string;
  ownerUid?: string;
  ownerGid?: string;
  bindings: boolean;
  skipSpecial?: boolean;
  xattrs: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('commit')
    .description('commit a directory or tarball (tar, .gz, .xz, .zst) to a branch')
    .argument('<source>', 'directory or tarball')
    .option('--repo <path>', 'repository path')
    .requiredOption('-b, --branch <ref>', 'branch to move to the new commit')
    .option('-s, --subject <text>', 'one-line subject')
    .option('--body <text>', 'longer description')
    .option('--timestamp <when>', 'commit time: ISO 8601 or seconds since the epoch (default: SOURCE_DATE_EPOCH or now)')
    .option('--add-metadata-string <key=value>', 'add string metadata (repeatable)', (v: string, acc: string[]) => [...acc, v], [])
    .option('--parent <commit>', "parent commit, or 'none' (default: the branch's current commit)")
    .option('--owner-uid <n>', 'record this uid for every entry')
    .option('--owner-gid <n>', 'record this gid for every entry')
    .option('--no-bindings', 'do not record ostree.ref-binding')
    .option('--skip-special', 'leave out sockets, fifos and device nodes instead of failing')
    .option('--no-xattrs', 'do not record extended attributes')
    .option('--json', 'print JSON')
    .action(async (source: string, o: Flags) => {
      const { commit, parseTimestamp } = await import('../../repo/commit.js');
      const metadata = o.addMetadataString.map((kv): [string, string] => {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new StrataError('USAGE', `--add-metadata-string needs KEY=VALUE, got '${kv}'`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      });
      const bar = await progress('commit', o);
      try {
        const r = await commit({
          repo: requireRepo(o.repo),
          branch: o.branch,
          source,
          subject: o.subject,
          body: o.body,
          timestamp: o.timestamp !== undefined ? parseTimestamp(o.timestamp) : undefined,
          metadata,
          parent: o.parent === 'none' ? null : o.parent,
          ownerUid: o.ownerUid !== undefined ? parseIntFlag('--owner-uid', o.ownerUid) : undefined,
          ownerGid: o.ownerGid !== undefined ? parseIntFlag('--owner-gid', o.ownerGid) : undefined,
          bindings: o.bindings,
          skipSpecial: o.skipSpecial,
          noXattrs: !o.xattrs,
          onProgress: (done, total) => bar.update(done, total),
        });
        bar.stop();
        if (o.json) return printJson(r);
        out(r.commit);
        const s = r.stats;
        process.stderr.write(
          `${o.branch} -> ${r.commit.slice(0, 12)}: ${s.files} files, ${s.symlinks} symlinks, ${s.dirs} directories (${formatBytes(s.contentBytes)}); ` +
            `${s.objectsWritten} new objects, ${formatBytes(s.storedBytes)} stored` +
            (s.skipped.length ? `; skipped ${s.skipped.length} special files` : '') + '\n',
        );
      } finally {
        bar.stop();
      }
    });
}
