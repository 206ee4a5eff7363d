import type { Command } from 'commander';
import { formatBytes, out, printJson, progress, requireRepo } from '../output.js';
import { LETTER, describe } from './diff.js';

interface Flags {
  repo?: string;
  dryRun?: boolean;
  cache?: boolean;
  workdir?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('compose')
    .description("build the OS tree a manifest describes and commit it to the manifest's ref (see docs/manifest.md)")
    .argument('<manifest>', 'manifest file (YAML)')
    .option('--repo <path>', 'repository path')
    .option('--dry-run', 'build the tree and show its diff against the ref, writing nothing to the repository')
    .option('--no-cache', "build the tree even when the inputs equal those of the compose that made the ref's commit")
    .option('--workdir <dir>', 'where to build the staging tree (default: /dev/shm with 4 GiB free, else the system temp directory)')
    .option('--json', 'print JSON')
    .action(async (manifest: string, o: Flags) => {
      const { compose } = await import('../../compose/compose.js');
      const quiet = o.json || !process.stderr.isTTY;
      const bar = await progress('commit', o);
      try {
        const r = await compose({
          manifest,
          repo: requireRepo(o.repo),
          dryRun: o.dryRun,
          noCache: o.cache === false,
          workdir: o.workdir,
          onStep: (text) => {
            if (!quiet) process.stderr.write(`compose: ${text}\n`);
          },
          onProgress: (done, total) => bar.update(done, total),
        });
        bar.stop();
        if (o.json) return printJson(r);
        if (r.dryRun && r.diff) {
          for (const e of r.diff.entries) out(`${LETTER[e.change]}  ${e.path}  (${describe(e)})`);
          const s = r.diff.summary;
          out(`${s.added} added, ${s.removed} removed, ${s.modified} modified, ${s.metadata} metadata-only; +${formatBytes(s.bytesAdded)} -${formatBytes(s.bytesRemoved)}`);
          out(r.unchanged ? `${r.ref} is unchanged at ${r.commit} (dry run: nothing written)` : `${r.ref} would move to ${r.commit} (dry run: nothing written)`);
          return;
        }
        out(r.commit);
        if (r.unchanged) {
          process.stderr.write(
            r.cache.state === 'hit'
              ? `${r.ref} is unchanged: the inputs equal those of the compose that made ${r.commit.slice(0, 12)} (--no-cache builds anyway)\n`
              : `${r.ref} is unchanged: the tree and metadata equal ${r.commit.slice(0, 12)}\n`,
          );
          return;
        }
        const s = r.stats;
        process.stderr.write(
          `${r.ref} -> ${r.commit.slice(0, 12)}${r.version ? ` (version ${r.version})` : ''}` +
            (s ? `: ${s.files} files, ${s.symlinks} symlinks, ${s.dirs} directories (${formatBytes(s.contentBytes)}); ${s.objectsWritten} new objects, ${formatBytes(s.storedBytes)} stored` : '') + '\n',
        );
      } finally {
        bar.stop();
      }
    });
}
