// The /etc three-way merge of a new deployment. OLD is the old commit's
// default config (`usr/etc`), CUR the running /etc (the old deployment's
// `etc`, as the admin left it), NEW the new commit's `usr/etc`. Per path:
// what the admin never touched (CUR == OLD) follows NEW; what the admin
// changed, added or deleted stays as the admin has it, and is reported as a
// conflict when NEW changed it too (in another way). Planning is pure; the
// apply step edits the new deployment's `etc`, already a copy of NEW.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { removeAttributeSync, setAttributeSync } from '../repo/xattr.js';
import { StrataError, ioError } from '../errors.js';
import {
  type Checksum, type DirMeta, type FileMeta, type Xattr,
  S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, canonicalXattrs, compareNames, fileHeader, validateEntryName,
} from '../core/objects.js';
import { BAREUSER_XATTR, Repo } from '../repo/repo.js';
import { readXattrs } from '../repo/source-dir.js';
import { rootNode, splitTreePath } from '../repo/walk.js';

const isRoot = process.getuid?.() === 0;

export type EtcEntryType = 'file' | 'symlink' | 'dir';

/** One entry of a config tree: what "equal" compares. */
export interface EtcEntry {
  type: EtcEntryType;
  /** Full st_mode: type bits and permissions, including setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** In canonical (byte) order, never `user.ostreemeta`. */
  xattrs: Xattr[];
  /** Symlinks: the target. */
  target?: string;
  /**
   * Files and symlinks: the OSTree content checksum, which covers content,
   * mode, owner, xattrs and symlink target. Commit and disk trees compute it
   * the same way, so one comparison tells whether two files are equal.
   */
  checksum?: Checksum;
}

/** A config tree by relative path: `''` is /etc itself, `ssh/sshd_config` a file in it. */
export type EtcTree = ReadonlyMap<string, EtcEntry>;

/** What one side did to a path, relative to OLD. */
export type EtcChange = 'unchanged' | 'added' | 'deleted' | 'modified' | 'metadata' | 'type';

export interface EtcConflict {
  /** e.g. `/etc/ssh/sshd_config`. */
  path: string;
  /** What the admin did (OLD → CUR). */
  local: EtcChange;
  /** What the new default did (OLD → NEW). */
  upstream: EtcChange;
  /** One line, e.g. `modified locally, changed in new default`. */
  reason: string;
}

export type EtcAction =
  /**
   * Put CUR's entry at `rel` in the result: a file or symlink replaces
   * whatever NEW has there; a directory is created if needed and gets CUR's
   * metadata. `local` is false for a directory kept only because admin
   * changes below it are kept.
   */
  | { op: 'keep'; rel: string; type: EtcEntryType; local: boolean }
  /** Remove `rel` (and everything below it): the admin deleted it. */
  | { op: 'remove'; rel: string };

export interface EtcMergePlan {
  /** In tree order, parents before children. Empty when there is no running /etc. */
  actions: EtcAction[];
  conflicts: EtcConflict[];
  /** Paths (`/etc/…`) whose admin version is carried over. */
  kept: string[];
  /** Paths (`/etc/…`) the admin deleted that the new default still has. */
  removed: string[];
  /** How many paths take a changed new default (added, changed or removed upstream). */
  updated: number;
}

export interface EtcMergeResult {
  conflicts: EtcConflict[];
  kept: string[];
  removed: string[];
  updated: number;
  /** Xattrs that could not be set (for example on a filesystem without them). */
  warnings: string[];
}

/** `/etc/…` for reports. */
export function etcPath(rel: string): string {
  return rel === '' ? '/etc' : `/etc/${rel}`;
}

const joinRel = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);

// ------------------------------------------------------------------ compare

function sameXattrs(a: readonly Xattr[], b: readonly Xattr[]): boolean {
  return a.length === b.length && a.every((x, i) => x.name === b[i].name && x.value.equals(b[i].value));
}

function sameMeta(a: EtcEntry, b: EtcEntry): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && sameXattrs(a.xattrs, b.xattrs);
}

/** Equal entries (both absent counts as equal). Directories compare by their own metadata only. */
export function sameEtcEntry(a: EtcEntry | undefined, b: EtcEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.type === b.type && sameMeta(a, b) && a.target === b.target && a.checksum === b.checksum;
}

/** Names of each directory's entries, in tree order. */
function childIndex(tree: EtcTree): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const rel of tree.keys()) {
    if (rel === '') continue;
    const i = rel.lastIndexOf('/');
    const parent = i < 0 ? '' : rel.slice(0, i);
    const list = out.get(parent);
    if (list) list.push(rel.slice(i + 1));
    else out.set(parent, [rel.slice(i + 1)]);
  }
  for (const list of out.values()) list.sort(compareNames);
  return out;
}

interface Indexed {
  tree: EtcTree;
  children: Map<string, string[]>;
}

const indexed = (tree: EtcTree): Indexed => ({ tree, children: childIndex(tree) });

function childrenOf(rel: string, ...sides: Indexed[]): string[] {
  const names = new Set<string>();
  for (const s of sides) if (s.tree.get(rel)?.type === 'dir') for (const n of s.children.get(rel) ?? []) names.add(n);
  return [...names].sort(compareNames);
}

function subtreeEqual(a: Indexed, b: Indexed, rel: string): boolean {
  if (!sameEtcEntry(a.tree.get(rel), b.tree.get(rel))) return false;
  return childrenOf(rel, a, b).every((name) => subtreeEqual(a, b, joinRel(rel, name)));
}

function countBelow(s: Indexed, rel: string): number {
  let n = 0;
  for (const name of s.tree.get(rel)?.type === 'dir' ? s.children.get(rel) ?? [] : []) n += 1 + countBelow(s, joinRel(rel, name));
  return n;
}

// ------------------------------------------------------------------ describe

function changeOf(before: EtcEntry | undefined, after: EtcEntry | undefined): EtcChange {
  if (sameEtcEntry(before, after)) return 'unchanged';
  if (!before) return 'added';
  if (!after) return 'deleted';
  if (before.type !== after.type) return 'type';
  // A file's checksum mixes content and metadata: only a directory or a
  // symlink with the same target is known to differ in metadata alone.
  if (before.type === 'dir' || (before.type === 'symlink' && before.target === after.target)) return 'metadata';
  return 'modified';
}

const article = (t: EtcEntryType): string => (t === 'dir' ? 'a directory' : t === 'file' ? 'a file' : 'a symlink');

function localPhrase(change: EtcChange, cur: EtcEntry | undefined): string {
  switch (change) {
    case 'added': return 'added locally';
    case 'deleted': return 'deleted locally';
    case 'type': return `replaced locally by ${article((cur as EtcEntry).type)}`;
    case 'metadata': return 'mode, owner or xattrs changed locally';
    case 'modified': return 'modified locally';
    case 'unchanged': return 'unchanged locally';
  }
}

function upstreamPhrase(change: EtcChange, next: EtcEntry | undefined): string {
  switch (change) {
    case 'added': return 'added in new default';
    case 'deleted': return 'removed in new default';
    case 'type': return `replaced by ${article((next as EtcEntry).type)} in new default`;
    case 'metadata':
    case 'modified': return 'changed in new default';
    case 'unchanged': return 'unchanged in new default';
  }
}

function conflictOf(rel: string, o: EtcEntry | undefined, c: EtcEntry | undefined, n: EtcEntry | undefined, upstream = changeOf(o, n)): EtcConflict {
  const local = changeOf(o, c);
  let reason: string;
  if (local === 'added' && upstream === 'added') {
    const cc = c as EtcEntry;
    const nn = n as EtcEntry;
    const what = cc.type !== nn.type ? 'types' : cc.type === 'dir' || (cc.type === 'symlink' && cc.target === nn.target) ? 'metadata' : 'content';
    reason = `added locally and in new default with different ${what}`;
  } else {
    reason = `${localPhrase(local, c)}, ${upstreamPhrase(upstream, n)}`;
  }
  return { path: etcPath(rel), local, upstream, reason };
}

// ---------------------------------------------------------------------- plan

/**
 * Decides the merge; reads nothing. Rules, per path (OLD, CUR, NEW):
 * - CUR == OLD (including both absent): the result is NEW.
 * - CUR != OLD: the result is CUR (the admin's entry, or its absence). When
 *   NEW == CUR there is nothing to do; when NEW == OLD the admin's change is
 *   carried over; otherwise it is carried over and reported as a conflict.
 * - A directory the admin deleted or replaced by a file or symlink is one
 *   decision for its whole subtree: it conflicts when NEW changed anything in
 *   it (one report for the directory).
 * - A directory needed to hold kept admin entries stays a directory (with
 *   CUR's metadata) even when NEW removed it or made it something else; that
 *   is reported as a conflict on the directory.
 * Without a running /etc (no root entry in `cur`) there is nothing to merge.
 */
export function planEtcMerge(old: EtcTree, cur: EtcTree, next: EtcTree): EtcMergePlan {
  const plan: EtcMergePlan = { actions: [], conflicts: [], kept: [], removed: [], updated: 0 };
  if (cur.get('')?.type !== 'dir') return plan;
  const O = indexed(old);
  const C = indexed(cur);
  const N = indexed(next);

  const keep = (rel: string, c: EtcEntry | undefined): void => {
    if (c) {
      plan.actions.push({ op: 'keep', rel, type: c.type, local: true });
      plan.kept.push(etcPath(rel));
    } else {
      plan.actions.push({ op: 'remove', rel });
      plan.removed.push(etcPath(rel));
    }
  };

  /** Returns true when the result keeps a CUR entry at or below `rel` (so `rel` must be a directory or that entry). */
  const visit = (rel: string): boolean => {
    const o = old.get(rel);
    const c = cur.get(rel);
    const n = next.get(rel);

    if (o?.type === 'dir' && c?.type !== 'dir') {
      // The admin deleted a whole directory or put something else in its place.
      if (sameEtcEntry(n, c)) return false;
      if (!subtreeEqual(O, N, rel)) plan.conflicts.push(conflictOf(rel, o, c, n, n?.type === 'dir' ? 'modified' : changeOf(o, n)));
      keep(rel, c);
      return c !== undefined;
    }

    const start = plan.actions.length;
    let keptHere = false;
    if (sameEtcEntry(c, o)) {
      if (!sameEtcEntry(n, o)) plan.updated++;
      if (c?.type !== 'dir') {
        // Nothing of the admin's below: NEW's subtree stands as it is.
        plan.updated += countBelow(N, rel);
        return false;
      }
    } else if (!sameEtcEntry(n, c)) {
      if (!sameEtcEntry(n, o)) plan.conflicts.push(conflictOf(rel, o, c, n));
      keep(rel, c);
      keptHere = true;
    }
    if (c?.type !== 'dir') return keptHere && c !== undefined;

    let keptBelow = false;
    for (const name of childrenOf(rel, O, C, N)) if (visit(joinRel(rel, name))) keptBelow = true;
    if (keptBelow && !keptHere && n?.type !== 'dir') {
      // NEW removed this directory or made it a file or symlink, but admin
      // entries below it are kept: it stays the admin's directory.
      plan.actions.splice(start, 0, { op: 'keep', rel, type: 'dir', local: false });
      plan.conflicts.push({
        path: etcPath(rel), local: 'unchanged', upstream: changeOf(o, n),
        reason: `${upstreamPhrase(changeOf(o, n), n)}; kept as a directory for local changes below it`,
      });
      if (!sameEtcEntry(n, o)) plan.updated--;
    }
    return keptHere || keptBelow;
  };
  visit('');
  plan.conflicts.sort((a, b) => compareNames(a.path, b.path));
  return plan;
}

// ---------------------------------------------------------------------- read

/**
 * A commit's config tree from its tree objects, without reading content:
 * identities come from the objects' checksums. A commit without a directory
 * at `subpath` gives an empty tree; a file there is an error.
 */
export function readEtcFromCommit(repo: Repo, commit: Checksum, subpath = 'usr/etc'): EtcTree {
  const out = new Map<string, EtcEntry>();
  let node = rootNode(repo, commit);
  const parts = splitTreePath(subpath);
  for (let i = 0; i < parts.length; i++) {
    const t = repo.loadDirTree(node.tree);
    const d = t.dirs.find((x) => x.name === parts[i]);
    if (!d) {
      if (i === parts.length - 1 && t.files.some((f) => f.name === parts[i])) {
        throw new StrataError('NOT_A_DIRECTORY', `/${subpath.replace(/^\/+/, '')} is not a directory in commit ${commit}`, { path: subpath, commit });
      }
      return out;
    }
    node = { kind: 'dir', tree: d.tree, meta: d.meta };
  }
  const files = new Map<Checksum, FileMeta>();
  const dirEntry = (m: DirMeta): EtcEntry => ({ type: 'dir', mode: m.mode, uid: m.uid, gid: m.gid, xattrs: canonicalXattrs(m.xattrs) });
  const walk = (rel: string, tree: Checksum, meta: Checksum): void => {
    out.set(rel, dirEntry(repo.loadDirMeta(meta)));
    const t = repo.loadDirTree(tree);
    for (const f of t.files) {
      let m = files.get(f.checksum);
      if (!m) {
        m = repo.loadFileInfo(f.checksum).meta;
        files.set(f.checksum, m);
      }
      const link = (m.mode & S_IFMT) === S_IFLNK;
      out.set(joinRel(rel, f.name), {
        type: link ? 'symlink' : 'file', mode: m.mode, uid: m.uid, gid: m.gid, xattrs: canonicalXattrs(m.xattrs),
        ...(link ? { target: m.symlinkTarget } : {}), checksum: f.checksum,
      });
    }
    for (const d of t.dirs) walk(joinRel(rel, d.name), d.tree, d.meta);
  };
  walk('', node.tree, node.meta);
  return out;
}

export interface ReadEtcFromDiskOptions {
  /**
   * Take each entry's owner from the first of these trees that has the path
   * (else from disk). For a process that is not root: its files cannot carry
   * other owners, so the owner on disk says nothing about what the admin did.
   */
  assumeOwnersFrom?: readonly EtcTree[];
}

/**
 * A config tree on disk: lstat, readlink, xattrs (never `user.ostreemeta`,
 * a bare-user repository's bookkeeping) and content hashed into the OSTree
 * content checksum. A missing directory gives an empty tree; sockets, fifos
 * and devices are refused, as OSTree refuses them.
 */
export function readEtcFromDisk(dir: string, opts: ReadEtcFromDiskOptions = {}): EtcTree {
  const out = new Map<string, EtcEntry>();
  const root = lstatOrNull(dir);
  if (!root) return out;
  if (!root.isDirectory()) throw ioError(Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), 'read', dir);
  const owner = (rel: string, st: fs.Stats): { uid: number; gid: number } => {
    for (const t of opts.assumeOwnersFrom ?? []) {
      const e = t.get(rel);
      if (e) return { uid: e.uid, gid: e.gid };
    }
    return { uid: st.uid, gid: st.gid };
  };
  const walk = (rel: string, p: string, st: fs.Stats): void => {
    const xattrs = diskXattrs(p);
    const { uid, gid } = owner(rel, st);
    const fmt = st.mode & S_IFMT;
    if (fmt === S_IFDIR) {
      out.set(rel, { type: 'dir', mode: st.mode, uid, gid, xattrs });
      let names: Buffer[];
      try {
        names = fs.readdirSync(p, { encoding: 'buffer' });
      } catch (err) {
        throw ioError(err, 'list', p);
      }
      for (const raw of names) {
        if (!isUtf8(raw)) throw new StrataError('UNSUPPORTED_FILE', `cannot merge ${path.join(p, raw.toString('latin1'))}: its name is not valid UTF-8`, { path: p });
        const name = raw.toString('utf8');
        const child = path.join(p, name);
        let cst: fs.Stats;
        try {
          cst = fs.lstatSync(child);
        } catch (err) {
          throw ioError(err, 'stat', child);
        }
        walk(joinRel(rel, name), child, cst);
      }
      return;
    }
    if (fmt === S_IFLNK) {
      let target: string;
      try {
        target = fs.readlinkSync(p);
      } catch (err) {
        throw ioError(err, 'read symlink', p);
      }
      const meta: FileMeta = { uid, gid, mode: st.mode, symlinkTarget: target, xattrs };
      out.set(rel, { type: 'symlink', mode: st.mode, uid, gid, xattrs, target, checksum: createHash('sha256').update(fileHeader(meta)).digest('hex') as Checksum });
      return;
    }
    if (fmt !== S_IFREG) {
      throw new StrataError('UNSUPPORTED_FILE', `cannot merge ${p}: /etc may hold only files, directories and symlinks; move it away and deploy again`, { path: p });
    }
    const meta: FileMeta = { uid, gid, mode: st.mode, symlinkTarget: '', xattrs };
    out.set(rel, { type: 'file', mode: st.mode, uid, gid, xattrs, checksum: hashFile(p, meta) });
  };
  walk('', dir, root);
  return out;
}

function diskXattrs(p: string): Xattr[] {
  return canonicalXattrs(readXattrs(p).filter((x) => x.name !== BAREUSER_XATTR));
}

/** The OSTree content checksum of a file on disk: header, then its bytes. */
function hashFile(p: string, meta: FileMeta): Checksum {
  const h = createHash('sha256').update(fileHeader(meta));
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw ioError(err, 'open', p);
  }
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } catch (err) {
    throw ioError(err, 'read', p);
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex') as Checksum;
}

// --------------------------------------------------------------------- apply

export interface ApplyEtcMergeOptions {
  /** The running /etc the plan was made from. */
  curDir: string;
  /** The new deployment's /etc, a copy of NEW; edited in place. */
  newDir: string;
}

/** Splits a plan path, refusing anything that could leave the tree. */
function relParts(rel: string): string[] {
  if (rel === '') return [];
  const parts = rel.split('/');
  for (const part of parts) validateEntryName(part);
  return parts;
}

/**
 * Checks that every directory above `parts` under `base` is a real directory,
 * so that nothing is written through a symlink. False when one is missing.
 */
function parentsAreDirs(base: string, parts: string[]): boolean {
  let p = base;
  for (let i = 0; i < parts.length - 1; i++) {
    p += '/' + parts[i];
    const st = lstatOrNull(p);
    if (!st) return false;
    if (!st.isDirectory()) {
      throw new StrataError('UNSAFE_PATH', `${p} is not a directory; refusing to merge /etc through it`, { path: p });
    }
  }
  return true;
}

const typeOf = (st: fs.Stats): EtcEntryType | 'other' => (st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other');

let tmpCounter = 0;

/**
 * Makes `newDir` hold the merged /etc: copies the admin's files, symlinks and
 * directories from `curDir` (content, mode, xattrs, times, and owner when
 * root) and removes what the admin deleted. Files and symlinks are built
 * under a temp name beside their target and renamed over it; paths are
 * checked so that nothing is written through a symlink or outside `newDir`.
 */
export function applyEtcMerge(plan: EtcMergePlan, opts: ApplyEtcMergeOptions): EtcMergeResult {
  const curDir = path.resolve(opts.curDir);
  const newDir = path.resolve(opts.newDir);
  const result: EtcMergeResult = { conflicts: plan.conflicts, kept: plan.kept, removed: plan.removed, updated: plan.updated, warnings: [] };
  const dirs: { src: string; dst: string }[] = [];
  const touched = new Set<string>();
  const access = new DirAccess();
  const top = plan.actions.length ? lstatOrNull(newDir) : null;
  if (top && !top.isDirectory()) throw new StrataError('UNSAFE_PATH', `${newDir} is not a directory; refusing to merge /etc into it`, { path: newDir });

  try {
    for (const action of plan.actions) {
      const parts = relParts(action.rel);
      const dst = parts.length ? `${newDir}/${parts.join('/')}` : newDir;
      try {
        if (action.op === 'remove') {
          if (parts.length === 0) throw new StrataError('UNSAFE_PATH', `refusing to remove ${newDir} itself`, { path: newDir });
          if (!parentsAreDirs(newDir, parts) || !lstatOrNull(dst)) continue;
          access.writable(path.dirname(dst));
          access.removeTree(dst);
          touched.add(path.dirname(dst));
          continue;
        }
        const src = parts.length ? `${curDir}/${parts.join('/')}` : curDir;
        if (!parentsAreDirs(curDir, parts)) throw ioError(Object.assign(new Error('no such file or directory'), { code: 'ENOENT' }), 'read', src);
        const st = lstatOrNull(src);
        if (!st || typeOf(st) !== action.type) {
          throw new StrataError('IO', `${src} changed while /etc was being merged (it is no longer ${article(action.type)}); deploy again`, { path: src });
        }
        if (parts.length && !parentsAreDirs(newDir, parts)) {
          throw new StrataError('INTERNAL', `cannot keep ${etcPath(action.rel)}: its directory is missing from ${newDir}, which is not the tree the plan was made for`, { path: dst });
        }
        if (parts.length) access.writable(path.dirname(dst));
        if (action.type === 'dir') {
          prepareDir(dst, parts.length === 0, access);
          dirs.push({ src, dst });
        } else {
          replaceWithCopy(src, st, dst, access, result.warnings);
          touched.add(path.dirname(dst));
        }
      } catch (err) {
        throw err instanceof StrataError ? err : ioError(err, 'merge /etc into', dst);
      }
    }
    // Children before parents: a directory gets its final mode once nothing more is written into it.
    for (const d of dirs.reverse()) {
      try {
        finishDir(d.src, d.dst, result.warnings);
      } catch (err) {
        throw err instanceof StrataError ? err : ioError(err, 'set metadata of', d.dst);
      }
      access.settled(d.dst);
      touched.add(d.dst);
    }
  } finally {
    access.restore();
  }
  for (const d of touched) fsyncDir(d);
  return result;
}

/**
 * Not root, a read-only directory (OSTree trees have some) cannot be written
 * into or emptied: lend the owner write permission and give the mode back.
 */
class DirAccess {
  private readonly lent = new Map<string, number>();

  writable(dir: string): void {
    if (isRoot || this.lent.has(dir)) return;
    const mode = fs.lstatSync(dir).mode & 0o7777;
    if ((mode & 0o700) === 0o700) return;
    fs.chmodSync(dir, mode | 0o700);
    this.lent.set(dir, mode);
  }

  /** The directory got its final mode elsewhere (or is gone): nothing to give back. */
  settled(dir: string): void {
    this.lent.delete(dir);
  }

  /** rm -r, first opening read-only directories inside when not root. */
  removeTree(p: string): void {
    if (!isRoot) {
      const open = (dir: string): void => {
        this.writable(dir);
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) open(path.join(dir, e.name));
      };
      if (fs.lstatSync(p).isDirectory()) open(p);
      for (const d of [...this.lent.keys()]) if (d === p || d.startsWith(p + '/')) this.lent.delete(d);
    }
    fs.rmSync(p, { recursive: true, force: true });
  }

  restore(): void {
    for (const [dir, mode] of [...this.lent].reverse()) {
      try {
        fs.chmodSync(dir, mode);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'restore the mode of', dir);
      }
    }
    this.lent.clear();
  }
}

/** Makes `dst` a directory (writable by us until finishDir), replacing a file or symlink there. */
function prepareDir(dst: string, isTop: boolean, access: DirAccess): void {
  const st = lstatOrNull(dst);
  if (st?.isDirectory()) {
    access.writable(dst);
    return;
  }
  if (st) {
    if (isTop) throw new StrataError('UNSAFE_PATH', `${dst} is not a directory; refusing to merge /etc into it`, { path: dst });
    fs.rmSync(dst, { force: true });
  }
  fs.mkdirSync(dst, 0o700);
}

function tempBeside(dst: string): string {
  return `${path.dirname(dst)}/.strata-etc-${process.pid}-${++tmpCounter}`;
}

/** Copies a file or symlink from CUR beside `dst`, then renames it over `dst` (never writing through it). */
function replaceWithCopy(src: string, st: fs.Stats, dst: string, access: DirAccess, warnings: string[]): void {
  const tmp = tempBeside(dst);
  const xattrs = diskXattrs(src);
  try {
    if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(src), tmp);
      if (isRoot) fs.lchownSync(tmp, st.uid, st.gid);
      setXattrs(tmp, xattrs, warnings);
      fs.lutimesSync(tmp, st.atimeMs / 1000, st.mtimeMs / 1000);
    } else {
      copyFileContent(src, tmp, st, xattrs, warnings);
    }
    // rename(2) cannot put a file over a directory: the admin's file replaces NEW's directory.
    if (lstatOrNull(dst)?.isDirectory()) access.removeTree(dst);
    fs.renameSync(tmp, dst);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function copyFileContent(src: string, tmp: string, st: fs.Stats, xattrs: Xattr[], warnings: string[]): void {
  const inFd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    // O_EXCL: a name that appeared meanwhile (even a symlink) is never followed.
    const outFd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (;;) {
        const n = fs.readSync(inFd, buf, 0, buf.length, null);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += fs.writeSync(outFd, buf, off, n - off);
      }
      // chown clears setuid/setgid and security.capability: owner, then xattrs, then mode.
      if (isRoot) fs.fchownSync(outFd, st.uid, st.gid);
      setXattrs(tmp, xattrs, warnings);
      fs.fchmodSync(outFd, st.mode & 0o7777);
      fs.futimesSync(outFd, st.atimeMs / 1000, st.mtimeMs / 1000);
      fs.fsyncSync(outFd);
    } finally {
      fs.closeSync(outFd);
    }
  } finally {
    fs.closeSync(inFd);
  }
}

/** Sets xattrs by name (the binding never follows symlinks); a refusal is a warning, as in checkout. */
function setXattrs(file: string, xattrs: Xattr[], warnings: string[]): void {
  for (const x of xattrs) {
    try {
      setAttributeSync(file, x.name, x.value);
    } catch (err) {
      warnings.push(`could not set xattr ${x.name} on ${file}: ${(err as Error).message}`);
    }
  }
}

/** Gives a kept directory CUR's owner (as root), exact xattrs, mode and times. */
function finishDir(src: string, dst: string, warnings: string[]): void {
  const st = fs.lstatSync(src);
  const want = diskXattrs(src);
  const fd = fs.openSync(dst, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  try {
    if (isRoot) fs.fchownSync(fd, st.uid, st.gid);
    const wanted = new Set(want.map((x) => x.name));
    for (const { name } of readXattrs(dst)) {
      if (wanted.has(name) || name === BAREUSER_XATTR) continue;
      try {
        removeAttributeSync(dst, name);
      } catch (err) {
        warnings.push(`could not remove xattr ${name} from ${dst}: ${(err as Error).message}`);
      }
    }
    setXattrs(dst, want, warnings);
    fs.fchmodSync(fd, st.mode & 0o7777);
    fs.futimesSync(fd, st.atimeMs / 1000, st.mtimeMs / 1000);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch {
    return; // removed since (a kept file replaced its directory)
  }
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    throw ioError(err, 'sync', dir);
  } finally {
    fs.closeSync(fd);
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw ioError(err, 'inspect', p);
  }
}

// --------------------------------------------------------------------- merge

export interface MergeEtcOptions {
  repo: Repo | string;
  /** The commit CUR was deployed from; null when there is none (OLD is then empty). */
  oldCommit: Checksum | null;
  /** Where OLD keeps its default config. */
  oldSubpath?: string;
  /** The running /etc; when it does not exist there is nothing to merge. */
  curDir: string;
  newCommit: Checksum;
  newSubpath?: string;
  /** The new deployment's /etc, already a copy of NEW. */
  newDir: string;
}

/**
 * Reads OLD and NEW from the repository and CUR from disk, plans and applies
 * the merge. Not running as root, CUR's owners are taken as OLD's (else
 * NEW's): such a process can give its files no other owner, so owner
 * differences on disk are not the admin's changes and are ignored.
 */
export function mergeEtc(opts: MergeEtcOptions): EtcMergeResult {
  const repo = typeof opts.repo === 'string' ? Repo.open(opts.repo) : opts.repo;
  const empty: EtcTree = new Map();
  if (!lstatOrNull(opts.curDir)) return { conflicts: [], kept: [], removed: [], updated: 0, warnings: [] };
  const old = opts.oldCommit ? readEtcFromCommit(repo, opts.oldCommit, opts.oldSubpath) : empty;
  const next = readEtcFromCommit(repo, opts.newCommit, opts.newSubpath);
  const cur = readEtcFromDisk(opts.curDir, isRoot ? {} : { assumeOwnersFrom: [old, next] });
  return applyEtcMerge(planEtcMerge(old, cur, next), { curDir: opts.curDir, newDir: opts.newDir });
}
