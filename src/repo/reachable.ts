// Reachability: which objects a set of commits needs. Shared by fsck and prune.

import fs from 'node:fs';
import path from 'node:path';
import { type Checksum, type ObjectType, isChecksum } from '../core/objects.js';
import type { Repo } from './repo.js';

/** `${checksum}.${type}` names one object. */
export type ObjectKey = string;

export function objectKey(checksum: Checksum, type: ObjectType): ObjectKey {
  return `${checksum}.${type}`;
}

export interface LooseObject {
  checksum: Checksum;
  type: ObjectType;
  file: string;
}

/** Every loose object in the repository. */
export function listObjects(repo: Repo): LooseObject[] {
  const out: LooseObject[] = [];
  const objects = path.join(repo.path, 'objects');
  let prefixes: string[] = [];
  try {
    prefixes = fs.readdirSync(objects);
  } catch {
    return out;
  }
  for (const prefix of prefixes) {
    if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
    for (const name of fs.readdirSync(path.join(objects, prefix))) {
      const dot = name.indexOf('.');
      if (dot < 0) continue;
      const sum = prefix + name.slice(0, dot);
      const ext = name.slice(dot + 1);
      const type: ObjectType | undefined =
        ext === 'file' || ext === 'filez' ? 'file' : ext === 'dirtree' || ext === 'dirmeta' || ext === 'commit' || ext === 'commitmeta' ? ext : undefined;
      if (type && isChecksum(sum)) out.push({ checksum: sum, type, file: path.join(objects, prefix, name) });
    }
  }
  return out;
}

export function listCommits(repo: Repo): Checksum[] {
  return listObjects(repo).filter((o) => o.type === 'commit').map((o) => o.checksum);
}

/**
 * Marks the objects reachable from `commits`: each commit, its detached
 * metadata, and its whole tree. Trees already seen are not walked again.
 * Missing objects are recorded, not fatal (fsck reports them; prune keeps going).
 */
export function markTrees(repo: Repo, commits: Iterable<Checksum>, reachable: Set<ObjectKey>, onMissing?: (key: ObjectKey) => void): void {
  const walk = (tree: Checksum, meta: Checksum): void => {
    reachable.add(objectKey(meta, 'dirmeta'));
    const key = objectKey(tree, 'dirtree');
    if (reachable.has(key)) return;
    reachable.add(key);
    let t;
    try {
      t = repo.loadDirTree(tree);
    } catch {
      onMissing?.(key);
      return;
    }
    for (const f of t.files) reachable.add(objectKey(f.checksum, 'file'));
    for (const d of t.dirs) walk(d.tree, d.meta);
  };
  for (const c of commits) {
    const key = objectKey(c, 'commit');
    if (reachable.has(key)) continue;
    reachable.add(key);
    reachable.add(objectKey(c, 'commitmeta'));
    let commit;
    try {
      commit = repo.loadCommit(c);
    } catch {
      onMissing?.(key);
      continue;
    }
    walk(commit.rootTree, commit.rootMeta);
  }
}

/** A commit and up to `depth` ancestors (-1: all); stops quietly at a missing parent. */
export function history(repo: Repo, head: Checksum, depth = -1): Checksum[] {
  const out: Checksum[] = [head];
  let cur = head;
  for (let i = 0; depth < 0 || i < depth; i++) {
    let parent: Checksum | null;
    try {
      parent = repo.loadCommit(cur).parent;
    } catch {
      break;
    }
    if (!parent || !repo.hasObject(parent, 'commit')) break;
    out.push(parent);
    cur = parent;
  }
  return out;
}
