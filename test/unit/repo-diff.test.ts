// diff: added, removed, modified and metadata-only entries between two
// commits, with sizes, modes, owners and symlink targets, and the summary.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { commit } from '../../src/repo/commit.js';
import { type DiffEntry, type DiffResult, diff } from '../../src/repo/diff.js';
import { Repo } from '../../src/repo/repo.js';
import { isRoot, sh, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

function write(root: string, p: string, content: string, mode = 0o644): void {
  const f = path.join(root, p);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
}

function treeA(root: string): void {
  write(root, 'etc/hostname', 'same\n');
  write(root, 'etc/modified', 'x'.repeat(10));
  write(root, 'etc/removed', 'r'.repeat(100));
  write(root, 'etc/chmod', 'mode only\n', 0o644);
  write(root, 'etc/chmod-and-edit', 'before\n', 0o644);
  write(root, 'etc/xattr', 'xattr only\n');
  if (isRoot) write(root, 'etc/owned', 'owner only\n');
  fs.mkdirSync(path.join(root, 'usr'), { recursive: true });
  fs.symlinkSync('target-one', path.join(root, 'usr/link'));
  write(root, 'usr/typechange', 'was a file\n');
  write(root, 'usr/dir-to-file/child', 'c\n');
  write(root, 'olddir/a', 'a'.repeat(7));
  write(root, 'olddir/b', 'b'.repeat(9));
  fs.mkdirSync(path.join(root, 'var'), { mode: 0o755 });
  fs.chmodSync(path.join(root, 'var'), 0o755);
}

function treeB(root: string): void {
  write(root, 'etc/hostname', 'same\n');
  write(root, 'etc/modified', 'y'.repeat(25));
  write(root, 'etc/chmod', 'mode only\n', 0o600);
  write(root, 'etc/chmod-and-edit', 'after!!\n', 0o600);
  write(root, 'etc/xattr', 'xattr only\n');
  sh('setfattr', ['-n', 'user.added', '-v', 'yes', path.join(root, 'etc/xattr')]);
  if (isRoot) {
    write(root, 'etc/owned', 'owner only\n');
    fs.chownSync(path.join(root, 'etc/owned'), 1000, 1000);
  }
  fs.mkdirSync(path.join(root, 'usr'), { recursive: true });
  fs.symlinkSync('target-two', path.join(root, 'usr/link'));
  fs.symlinkSync('somewhere', path.join(root, 'usr/typechange'));
  write(root, 'usr/dir-to-file', 'now a file\n');
  write(root, 'newdir/sub/c', 'c'.repeat(11));
  fs.mkdirSync(path.join(root, 'var'));
  fs.chmodSync(path.join(root, 'var'), 0o700);
}

describe('diff', () => {
  let repo: string;
  let a: Checksum;
  let b: Checksum;
  let r: DiffResult;
  const at = (p: string): DiffEntry[] => r.entries.filter((e) => e.path === p);
  const one = (p: string): DiffEntry => {
    const found = at(p);
    expect(found, p).toHaveLength(1);
    return found[0];
  };

  beforeAll(async () => {
    const dir = tmpDir('strata-diff-');
    repo = path.join(dir, 'repo');
    Repo.init(repo, 'archive');
    const srcA = path.join(dir, 'a');
    const srcB = path.join(dir, 'b');
    treeA(srcA);
    treeB(srcB);
    a = (await commit({ repo, branch: 'main', source: srcA, timestamp: 1_700_000_000 })).commit;
    b = (await commit({ repo, branch: 'main', source: srcB, timestamp: 1_700_000_100 })).commit;
    r = diff({ repo, from: 'main^', to: 'main' });
  });

  it('resolves both revisions', () => {
    expect(r.from).toBe(a);
    expect(r.to).toBe(b);
  });

  it('an unchanged file is not listed', () => {
    expect(at('/etc/hostname')).toEqual([]);
    expect(at('/etc')).toEqual([]);
  });

  it('a modified file carries both sizes', () => {
    expect(one('/etc/modified')).toMatchObject({ change: 'modified', type: 'file', oldSize: 10, newSize: 25, oldMode: 0o100644, newMode: 0o100644 });
  });

  it('an added file carries its new size, a removed one its old size', () => {
    expect(one('/newdir/sub/c')).toMatchObject({ change: 'added', type: 'file', newSize: 11 });
    expect(one('/etc/removed')).toMatchObject({ change: 'removed', type: 'file', oldSize: 100 });
  });

  it('a mode change with the same content is metadata-only', () => {
    expect(one('/etc/chmod')).toMatchObject({ change: 'metadata', type: 'file', oldMode: 0o100644, newMode: 0o100600, oldSize: 10, newSize: 10 });
  });

  it('a mode change with new content is a modification that also reports the modes', () => {
    expect(one('/etc/chmod-and-edit')).toMatchObject({ change: 'modified', oldMode: 0o100644, newMode: 0o100600, oldSize: 7, newSize: 8 });
  });

  it('an xattr change is metadata-only', () => {
    expect(one('/etc/xattr')).toMatchObject({ change: 'metadata', type: 'file', oldMode: 0o100644, newMode: 0o100644 });
  });

  it.skipIf(!isRoot)('an owner change is metadata-only and names both owners', () => {
    expect(one('/etc/owned')).toMatchObject({ change: 'metadata', oldOwner: '0:0', newOwner: '1000:1000' });
  });

  it('a directory mode change is a metadata entry for the directory', () => {
    expect(one('/var')).toMatchObject({ change: 'metadata', type: 'dir', oldMode: 0o40755, newMode: 0o40700 });
  });

  it('a retargeted symlink is modified, with both targets', () => {
    expect(one('/usr/link')).toMatchObject({ change: 'modified', type: 'symlink', oldTarget: 'target-one', newTarget: 'target-two', oldSize: 0, newSize: 0 });
  });

  it('a file that became a symlink is modified, with its old type', () => {
    expect(one('/usr/typechange')).toMatchObject({ change: 'modified', type: 'symlink', oldType: 'file', newTarget: 'somewhere', oldSize: 11 });
  });

  it('a directory that became a file: the directory and its children removed, the file added', () => {
    const entries = at('/usr/dir-to-file');
    expect(entries.map((e) => `${e.change} ${e.type}`).sort()).toEqual(['added file', 'removed dir']);
    expect(one('/usr/dir-to-file/child')).toMatchObject({ change: 'removed', type: 'file', oldSize: 2 });
  });

  it('a whole removed or added directory lists the directory and everything under it', () => {
    expect(r.entries.filter((e) => e.path.startsWith('/olddir')).map((e) => `${e.change} ${e.path} ${e.oldSize}`)).toEqual([
      'removed /olddir 0', 'removed /olddir/a 7', 'removed /olddir/b 9',
    ]);
    expect(r.entries.filter((e) => e.path.startsWith('/newdir')).map((e) => `${e.change} ${e.type} ${e.path}`)).toEqual([
      'added dir /newdir', 'added dir /newdir/sub', 'added file /newdir/sub/c',
    ]);
  });

  it('the summary counts each kind and the bytes gained and lost', () => {
    const count = (c: string) => r.entries.filter((e) => e.change === c).length;
    expect(r.summary).toMatchObject({ added: count('added'), removed: count('removed'), modified: count('modified'), metadata: count('metadata') });
    expect(r.summary.metadata).toBe(isRoot ? 4 : 3);
    expect(r.summary.modified).toBe(4);
    let plus = 0;
    let minus = 0;
    for (const e of r.entries) {
      const d = (e.newSize ?? 0) - (e.oldSize ?? 0);
      if (d > 0) plus += d;
      else minus -= d;
    }
    expect(r.summary.bytesAdded).toBe(plus);
    expect(r.summary.bytesRemoved).toBe(minus);
    // modified +15, chmod-and-edit +1, c +11, dir-to-file file +11; removed 100, a 7, b 9, child 2, typechange 11.
    expect(r.summary.bytesAdded).toBe(15 + 1 + 11 + 11);
    expect(r.summary.bytesRemoved).toBe(100 + 7 + 9 + 2 + 11);
  });

  it('entries come in tree order (byte order of paths, parents first)', () => {
    const paths = r.entries.map((e) => e.path);
    const sorted = [...paths].sort((x, y) => {
      const px = x.split('/');
      const py = y.split('/');
      for (let i = 0; i < Math.min(px.length, py.length); i++) if (px[i] !== py[i]) return px[i] < py[i] ? -1 : 1;
      return px.length - py.length;
    });
    // dir-to-file lists its removal then its addition: compare without that pair's order.
    expect(paths.filter((p) => p !== '/usr/dir-to-file')).toEqual(sorted.filter((p) => p !== '/usr/dir-to-file'));
  });

  it('a subpath limits the diff to that subtree', () => {
    const sub = diff({ repo, from: a, to: b, path: '/etc' });
    expect(sub.entries.length).toBeGreaterThan(0);
    expect(sub.entries.every((e) => e.path.startsWith('/etc/'))).toBe(true);
    expect(sub.entries.map((e) => e.path)).toEqual(r.entries.filter((e) => e.path.startsWith('/etc/')).map((e) => e.path));
  });

  it('the same commit on both sides, and a reversed diff', () => {
    expect(diff({ repo, from: b, to: b }).entries).toEqual([]);
    const back = diff({ repo, from: b, to: a });
    expect(back.summary.added).toBe(r.summary.removed);
    expect(back.summary.removed).toBe(r.summary.added);
    expect(back.summary.bytesAdded).toBe(r.summary.bytesRemoved);
    expect(back.entries.find((e) => e.path === '/etc/modified')).toMatchObject({ oldSize: 25, newSize: 10 });
  });
});
