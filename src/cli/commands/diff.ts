import type { Command } from 'commander';
import { formatBytes, out, printJson, requireRepo } from '../output.js';
import type { DiffEntry } from '../../repo/diff.js';

export const LETTER: Record<DiffEntry['change'], string> = { added: 'A', removed: 'D', modified: 'M', metadata: 'P' };

export function describe(e: DiffEntry): string {
  const mode = (m?: number) => (m === undefined ? '?' : (m & 0o7777).toString(8).padStart(4, '0'));
  switch (e.change) {
    case 'added':
      return e.type === 'dir' ? 'directory' : e.type === 'symlink' ? `-> ${e.newTarget}` : `+${formatBytes(e.newSize ?? 0)}`;
    case 'removed':
      return e.type === 'dir' ? 'directory' : e.type === 'symlink' ? `was -> ${e.oldTarget}` : `-${formatBytes(e.oldSize ?? 0)}`;
    case 'modified': {
      const parts = [e.type === 'symlink' ? `-> ${e.oldTarget} => ${e.newTarget}` : `${formatBytes(e.oldSize ?? 0)} -> ${formatBytes(e.newSize ?? 0)}`];
      if (e.oldMode !== e.newMode) parts.push(`mode ${mode(e.oldMode)} -> ${mode(e.newMode)}`);
      if (e.oldOwner !== e.newOwner) parts.push(`owner ${e.oldOwner} -> ${e.newOwner}`);
      return parts.join(', ');
    }
    case 'metadata': {
      const parts: string[] = [];
      if (e.oldMode !== e.newMode) parts.push(`mode ${mode(e.oldMode)} -> ${mode(e.newMode)}`);
      if (e.oldOwner !== e.newOwner) parts.push(`owner ${e.oldOwner} -> ${e.newOwner}`);
      return parts.join(', ') || 'xattrs changed';
    }
  }
}

export function register(program: Command): void {
  program
    .command('diff')
    .description('show what changed between two commits: A added, D removed, M modified, P permissions/owner/xattrs')
    .argument('<from>', 'old ref or commit')
    .argument('<to>', 'new ref or commit')
    .argument('[path]', 'compare only this subtree', '/')
    .option('--repo <path>', 'repository path')
    .option('--json', 'print JSON')
    .action(async (from: string, to: string, p: string, o: { repo?: string; json?: boolean }) => {
      const { diff } = await import('../../repo/diff.js');
      const r = diff({ repo: requireRepo(o.repo), from, to, path: p });
      if (o.json) return printJson(r);
      for (const e of r.entries) out(`${LETTER[e.change]}  ${e.path}  (${describe(e)})`);
      const s = r.summary;
      out(`${s.added} added, ${s.removed} removed, ${s.modified} modified, ${s.metadata} metadata-only; +${formatBytes(s.bytesAdded)} -${formatBytes(s.bytesRemoved)}`);
    });
}
