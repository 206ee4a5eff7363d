// `compose --dry-run`: the commit a staging tree would make, and its diff
// against a commit of the repository, computed without writing anything:
// file checksums are hashed in memory and trees are serialized, not stored.

import fs from 'node:fs';
import {
  type Checksum, type Commit, compareNames, fileChecksum, serializeCommit, serializeDirMeta, serializeDirTree, sha256, S_IFLNK, S_IFMT,
} from '../core/objects.js';
import { ioError } from '../errors.js';
import { type DiffEntry, type DiffResult, type EntryType, summarizeDiff } from '../repo/diff.js';
import { type MDir, type MNode, type StageFn, newStats } from '../repo/mtree.js';
import type { Repo } from '../repo/repo.js';
import { readSourceDir } from '../repo/source-dir.js';
import { type TreeNode, describeNode, joinTreePath, rootNode, treeChildren } from '../repo/walk.js';

/** Reads a directory as `commit` would, hashing content in memory. */
export async function hashDirectory(root: string): Promise<MDir> {
  const stage: StageFn = async (job) => {
    if (job.source === undefined) return fileChecksum(job.meta);
    let data: Buffer;
    try {
      data = fs.readFileSync(job.source);
    } catch (err) {
      throw ioError(err, 'read', job.source);
    }
    return fileChecksum(job.meta, data);
  };
  return readSourceDir(root, {}, stage, newStats());
}

/** dirtree and dirmeta checksums of an in-memory tree, bottom-up. */
export async function treeChecksums(dir: MDir): Promise<{ tree: Checksum; meta: Checksum }> {
  const files: { name: string; checksum: Checksum }[] = [];
  const dirs: { name: string; tree: Checksum; meta: Checksum }[] = [];
  for (const [name, node] of dir.entries) {
    if (node.kind === 'dir') dirs.push({ name, ...(await treeChecksums(node)) });
    else files.push({ name, checksum: await node.checksum });
  }
  return { tree: sha256(serializeDirTree({ files, dirs })), meta: sha256(serializeDirMeta(dir.meta)) };
}

export function commitChecksum(c: Commit): Checksum {
  return sha256(serializeCommit(c));
}

interface Info {
  type: EntryType;
  size: number;
  mode: number;
  owner: string;
  target?: string;
  checksum?: Checksum;
}

function infoOfM(node: MNode): Info {
  if (node.kind === 'dir') return { type: 'dir', size: 0, mode: node.meta.mode, owner: `${node.meta.uid}:${node.meta.gid}` };
  const link = (node.meta.mode & S_IFMT) === S_IFLNK;
  return { type: link ? 'symlink' : 'file', size: node.size, mode: node.meta.mode, owner: `${node.meta.uid}:${node.meta.gid}`, target: link ? node.meta.symlinkTarget : undefined };
}

/** The diff `strata diff` would print between a commit (or nothing) and the tree. */
export async function diffAgainst(repo: Repo, from: Checksum | null, to: MDir): Promise<Omit<DiffResult, 'from' | 'to'>> {
  const entries: DiffEntry[] = [];
  const infoOfT = (node: TreeNode): Info => {
    const d = describeNode(repo, node);
    return { type: d.type, size: d.size, mode: d.mode, owner: `${d.uid}:${d.gid}`, target: d.target, checksum: node.kind === 'file' ? node.checksum : undefined };
  };
  const addedAll = async (node: MNode, p: string): Promise<void> => {
    const i = infoOfM(node);
    entries.push({ path: p, change: 'added', type: i.type, newSize: i.size, newMode: i.mode, newOwner: i.owner, newTarget: i.target });
    if (node.kind === 'dir') for (const name of [...node.entries.keys()].sort(compareNames)) await addedAll(node.entries.get(name) as MNode, joinTreePath(p, name));
  };
  const removedAll = (node: TreeNode, p: string): void => {
    const i = infoOfT(node);
    entries.push({ path: p, change: 'removed', type: i.type, oldSize: i.size, oldMode: i.mode, oldOwner: i.owner, oldTarget: i.target });
    if (node.kind === 'dir') for (const [name, child] of treeChildren(repo, node.tree)) removedAll(child, joinTreePath(p, name));
  };
  const compare = async (a: TreeNode, b: MNode, p: string): Promise<void> => {
    const ia = infoOfT(a);
    const ib = infoOfM(b);
    if (a.kind === 'dir' && b.kind === 'dir') {
      if (ia.mode !== ib.mode || ia.owner !== ib.owner) entries.push({ path: p, change: 'metadata', type: 'dir', oldMode: ia.mode, newMode: ib.mode, oldOwner: ia.owner, newOwner: ib.owner });
      const ca = treeChildren(repo, a.tree);
      const cb = [...b.entries.keys()].sort(compareNames);
      let i = 0;
      let j = 0;
      while (i < ca.length || j < cb.length) {
        const c = i >= ca.length ? 1 : j >= cb.length ? -1 : compareNames(ca[i][0], cb[j]);
        if (c < 0) {
          removedAll(ca[i][1], joinTreePath(p, ca[i][0]));
          i++;
        } else if (c > 0) {
          await addedAll(b.entries.get(cb[j]) as MNode, joinTreePath(p, cb[j]));
          j++;
        } else {
          await compare(ca[i][1], b.entries.get(cb[j]) as MNode, joinTreePath(p, cb[j]));
          i++;
          j++;
        }
      }
      return;
    }
    if (a.kind === 'file' && b.kind === 'file') {
      const sum = await b.checksum;
      if (sum === a.checksum) return;
      const contentSame = ia.type === ib.type && ia.size === ib.size && ia.target === ib.target && (ia.mode !== ib.mode || ia.owner !== ib.owner);
      entries.push({
        path: p, change: contentSame ? 'metadata' : 'modified', type: ib.type, oldType: ia.type !== ib.type ? ia.type : undefined,
        oldSize: ia.size, newSize: ib.size, oldMode: ia.mode, newMode: ib.mode, oldOwner: ia.owner, newOwner: ib.owner, oldTarget: ia.target, newTarget: ib.target,
      });
      return;
    }
    removedAll(a, p);
    await addedAll(b, p);
  };
  if (from === null) await addedAll(to, '/');
  else await compare(rootNode(repo, from), to, '/');

  return { entries, summary: summarizeDiff(entries) };
}
