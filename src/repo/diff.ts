// `strata diff A B [PATH]`: what changed between two trees. Identical
// subtrees are skipped by checksum, so the cost follows the size of the change.

import { type Checksum, type FileMeta, compareNames } from '../core/objects.js';
import { Repo } from './repo.js';
import { resolveRev } from './refs.js';
import { type NodeInfo, type TreeNode, describeNode, joinTreePath, resolveTreePath, splitTreePath, treeChildren } from './walk.js';

export type ChangeKind = 'added' | 'removed' | 'modified' | 'metadata';
export type EntryType = 'file' | 'dir' | 'symlink';

export interface DiffEntry {
  path: string;
  change: ChangeKind;
  type: EntryType;
  /** For a modified entry whose type changed, the old type. */
  oldType?: EntryType;
  oldSize?: number;
  newSize?: number;
  oldMode?: number;
  newMode?: number;
  oldOwner?: string;
  newOwner?: string;
  oldTarget?: string;
  newTarget?: string;
}

export interface DiffResult {
  from: Checksum;
  to: Checksum;
  entries: DiffEntry[];
  summary: { added: number; removed: number; modified: number; metadata: number; bytesAdded: number; bytesRemoved: number };
}

export interface DiffOptions {
  repo: string;
  from: string;
  to: string;
  path?: string;
}

export function diff(opts: DiffOptions): DiffResult {
  const repo = Repo.open(opts.repo);
  return diffCommits(repo, resolveRev(repo, opts.from), resolveRev(repo, opts.to), opts.path ?? '/');
}

export function diffCommits(repo: Repo, from: Checksum, to: Checksum, subpath = '/'): DiffResult {
  const entries: DiffEntry[] = [];
  const base = '/' + splitTreePath(subpath).join('/');

  const wholeSubtree = (node: TreeNode, p: string, change: 'added' | 'removed'): void => {
    const d = describeNode(repo, node);
    const e: DiffEntry = { path: p, change, type: d.type };
    if (change === 'added') Object.assign(e, { newSize: d.size, newMode: d.mode, newOwner: `${d.uid}:${d.gid}`, newTarget: d.target });
    else Object.assign(e, { oldSize: d.size, oldMode: d.mode, oldOwner: `${d.uid}:${d.gid}`, oldTarget: d.target });
    entries.push(e);
    if (node.kind === 'dir') for (const [name, child] of treeChildren(repo, node.tree)) wholeSubtree(child, joinTreePath(p, name), change);
  };

  const metaDiffers = (a: NodeInfo, b: NodeInfo): boolean =>
    a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || !sameXattrs(a.xattrs, b.xattrs);

  const compare = (a: TreeNode, b: TreeNode, p: string): void => {
    if (a.kind === 'dir' && b.kind === 'dir') {
      if (a.tree === b.tree && a.meta === b.meta) return;
      if (a.meta !== b.meta) {
        const da = describeNode(repo, a);
        const db = describeNode(repo, b);
        if (metaDiffers(da, db)) entries.push(metaEntry(p, 'dir', da, db));
      }
      if (a.tree === b.tree) return;
      const ca = treeChildren(repo, a.tree);
      const cb = treeChildren(repo, b.tree);
      let i = 0;
      let j = 0;
      while (i < ca.length || j < cb.length) {
        const c = i >= ca.length ? 1 : j >= cb.length ? -1 : compareNames(ca[i][0], cb[j][0]);
        if (c < 0) wholeSubtree(ca[i][1], joinTreePath(p, ca[i++][0]), 'removed');
        else if (c > 0) wholeSubtree(cb[j][1], joinTreePath(p, cb[j++][0]), 'added');
        else compare(ca[i++][1], cb[j++][1], joinTreePath(p, ca[i - 1][0]));
      }
      return;
    }
    if (a.kind === 'file' && b.kind === 'file') {
      if (a.checksum === b.checksum) return;
      const da = describeNode(repo, a);
      const db = describeNode(repo, b);
      const contentSame = da.type === db.type && da.size === db.size && da.target === db.target && metaDiffers(da, db) && sameContent(repo, a.checksum, b.checksum);
      if (contentSame) {
        entries.push(metaEntry(p, db.type, da, db));
        return;
      }
      entries.push({
        path: p, change: 'modified', type: db.type, oldType: da.type !== db.type ? da.type : undefined,
        oldSize: da.size, newSize: db.size, oldMode: da.mode, newMode: db.mode,
        oldOwner: `${da.uid}:${da.gid}`, newOwner: `${db.uid}:${db.gid}`, oldTarget: da.target, newTarget: db.target,
      });
      return;
    }
    wholeSubtree(a, p, 'removed');
    wholeSubtree(b, p, 'added');
  };

  compare(resolveTreePath(repo, from, base), resolveTreePath(repo, to, base), base);

  return { from, to, entries, summary: summarizeDiff(entries) };
}

function metaEntry(p: string, type: EntryType, a: NodeInfo, b: NodeInfo): DiffEntry {
  return { path: p, change: 'metadata', type, oldMode: a.mode, newMode: b.mode, oldOwner: `${a.uid}:${a.gid}`, newOwner: `${b.uid}:${b.gid}`, oldSize: a.size, newSize: b.size };
}

function sameXattrs(a: FileMeta['xattrs'], b: FileMeta['xattrs']): boolean {
  return a.length === b.length && a.every((x, i) => x.name === b[i].name && x.value.equals(b[i].value));
}

function sameContent(repo: Repo, a: Checksum, b: Checksum): boolean {
  const ca = repo.loadFile(a).content;
  const cb = repo.loadFile(b).content;
  return !!ca && !!cb && ca.equals(cb);
}

/** Counts of each kind of change, and the bytes added and removed. */
export function summarizeDiff(entries: DiffEntry[]): DiffResult['summary'] {
  const summary = { added: 0, removed: 0, modified: 0, metadata: 0, bytesAdded: 0, bytesRemoved: 0 };
  for (const e of entries) {
    summary[e.change]++;
    const delta = (e.newSize ?? 0) - (e.oldSize ?? 0);
    if (delta > 0) summary.bytesAdded += delta;
    else summary.bytesRemoved -= delta;
  }
  return summary;
}
