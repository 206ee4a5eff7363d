// Reading trees out of commits: resolving a path, walking a tree, listing entries.

import { StrataError } from '../errors.js';
import { type Checksum, type DirMeta, type FileMeta, S_IFLNK, S_IFMT, compareNames, validateEntryName } from '../core/objects.js';
import type { Repo } from './repo.js';

export type TreeNode =
  | { kind: 'dir'; tree: Checksum; meta: Checksum }
  | { kind: 'file'; checksum: Checksum };

/** Splits `/a/b/` into ['a', 'b'], refusing `..` and other unsafe parts. */
export function splitTreePath(p: string): string[] {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  for (const part of parts) validateEntryName(part);
  return parts;
}

export function rootNode(repo: Repo, commit: Checksum): TreeNode & { kind: 'dir' } {
  const c = repo.loadCommit(commit);
  return { kind: 'dir', tree: c.rootTree, meta: c.rootMeta };
}

/** Finds the entry at `p` ('/' for the root) in a commit. */
export function resolveTreePath(repo: Repo, commit: Checksum, p: string): TreeNode {
  let node: TreeNode = rootNode(repo, commit);
  const parts = splitTreePath(p);
  for (let i = 0; i < parts.length; i++) {
    if (node.kind !== 'dir') {
      throw new StrataError('NOT_A_DIRECTORY', `/${parts.slice(0, i).join('/')} is not a directory in commit ${commit}`, { path: p });
    }
    const t = repo.loadDirTree(node.tree);
    const name = parts[i];
    const d = t.dirs.find((x) => x.name === name);
    if (d) {
      node = { kind: 'dir', tree: d.tree, meta: d.meta };
      continue;
    }
    const f = t.files.find((x) => x.name === name);
    if (!f) throw new StrataError('PATH_NOT_FOUND', `no /${parts.slice(0, i + 1).join('/')} in commit ${commit}`, { path: p, commit });
    node = { kind: 'file', checksum: f.checksum };
  }
  return node;
}

export interface Entry {
  /** Absolute path inside the tree, e.g. `/usr/bin/ls`. */
  path: string;
  name: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  checksum: Checksum;
  target?: string;
  xattrs: FileMeta['xattrs'] | DirMeta['xattrs'];
}

/** What a tree node is, without where it is. */
export type NodeInfo = Omit<Entry, 'path' | 'name'>;

export function joinTreePath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function describeNode(repo: Repo, node: TreeNode): NodeInfo {
  if (node.kind === 'dir') {
    const m = repo.loadDirMeta(node.meta);
    return { type: 'dir', mode: m.mode, uid: m.uid, gid: m.gid, size: 0, checksum: node.tree, xattrs: m.xattrs };
  }
  const info = repo.loadFileInfo(node.checksum);
  const isLink = (info.meta.mode & S_IFMT) === S_IFLNK;
  return {
    type: isLink ? 'symlink' : 'file', mode: info.meta.mode, uid: info.meta.uid, gid: info.meta.gid,
    size: info.size, checksum: node.checksum, target: isLink ? info.meta.symlinkTarget : undefined, xattrs: info.meta.xattrs,
  };
}

export function describeEntry(repo: Repo, dirPath: string, name: string, node: TreeNode): Entry {
  return { path: joinTreePath(dirPath, name), name, ...describeNode(repo, node) };
}

/** A directory's entries as nodes, in tree (byte) order. */
export function treeChildren(repo: Repo, tree: Checksum): [string, TreeNode][] {
  const t = repo.loadDirTree(tree);
  return [
    ...t.dirs.map((d): [string, TreeNode] => [d.name, { kind: 'dir', tree: d.tree, meta: d.meta }]),
    ...t.files.map((f): [string, TreeNode] => [f.name, { kind: 'file', checksum: f.checksum }]),
  ].sort((a, b) => compareNames(a[0], b[0]));
}

/** Lists a directory's entries (or, recursively, its whole subtree), in tree order. */
export function listTree(repo: Repo, commit: Checksum, p: string, recursive: boolean): Entry[] {
  const node = resolveTreePath(repo, commit, p);
  const base = '/' + splitTreePath(p).join('/');
  if (node.kind === 'file') {
    const parts = splitTreePath(p);
    return [describeEntry(repo, '/' + parts.slice(0, -1).join('/'), parts[parts.length - 1], node)];
  }
  const out: Entry[] = [];
  const visit = (tree: Checksum, dirPath: string): void => {
    for (const [name, n] of treeChildren(repo, tree)) {
      out.push(describeEntry(repo, dirPath, name, n));
      if (recursive && n.kind === 'dir') visit(n.tree, joinTreePath(dirPath, name));
    }
  };
  visit(node.tree, base);
  return out;
}

/** Formats st_mode like `ls -l` (drwxr-xr-x, with s/S/t/T). */
export function formatMode(mode: number): string {
  const fmt = mode & S_IFMT;
  const type = fmt === 0o040000 ? 'd' : fmt === S_IFLNK ? 'l' : '-';
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (mode & (1 << (8 - i)) ? c : '-'));
  const special = (i: number, bit: number, set: string, unset: string) => {
    if (mode & bit) bits[i] = bits[i] === 'x' ? set : unset;
  };
  special(2, 0o4000, 's', 'S');
  special(5, 0o2000, 's', 'S');
  special(8, 0o1000, 't', 'T');
  return type + bits.join('');
}
