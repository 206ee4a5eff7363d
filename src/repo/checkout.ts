// `strata checkout`: a commit (or a subtree of it) becomes a directory.
// From a bare-user repo files are hardlinked to their objects when the
// object's own inode already carries the right mode and owner and the file
// has no xattrs; otherwise (setuid files, other owners, xattrs, archive
// repos) they are copied. A new destination is built beside its final name
// and renamed into place, so it appears whole or not at all.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import type { Checksum, DirMeta } from '../core/objects.js';
import { Repo } from './repo.js';
import { resolveRev } from './refs.js';
import { resolveTreePath, splitTreePath } from './walk.js';
import { FilePlacer, type PlaceCounts, addCounts, applyOwnerAndXattrs, emptyCounts, isRoot } from './place-files.js';
import { WorkerPool, defaultWorkerCount } from './worker-pool.js';

export interface CheckoutOptions {
  repo: string;
  /** Ref or commit. */
  rev: string;
  dest: string;
  /** Check out only this path of the tree. */
  subpath?: string;
  /** Write into an existing directory, replacing files the tree also has. */
  union?: boolean;
  /** Never hardlink; always copy (for a checkout that will be modified). */
  copy?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface CheckoutResult extends PlaceCounts {
  commit: Checksum;
  dest: string;
  dirs: number;
}


const umask = process.umask();

export async function checkout(opts: CheckoutOptions): Promise<CheckoutResult> {
  const repo = Repo.open(opts.repo);
  const commit = resolveRev(repo, opts.rev);
  const node = resolveTreePath(repo, commit, opts.subpath ?? '/');
  const dest = path.resolve(opts.dest);
  const result: CheckoutResult = { commit, dest, dirs: 0, ...emptyCounts() };

  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'inspect', dest);
  }

  if (node.kind === 'file') {
    // A single file: its name under dest (a directory) or dest itself.
    const name = splitTreePath(opts.subpath ?? '').pop() as string;
    const target = existing?.isDirectory() ? path.join(dest, name) : dest;
    if (!opts.union && fs.existsSync(target)) throw new StrataError('DEST_EXISTS', `${target} already exists (use --union to replace it)`, { dest: target });
    const placer = new FilePlacer(repo, !!opts.copy);
    replaceAtomically(target, (tmp) => placer.place(node.checksum, tmp));
    addCounts(result, placer.counts);
    return result;
  }

  if (existing && !opts.union && (!existing.isDirectory() || fs.readdirSync(dest).length > 0)) {
    throw new StrataError('DEST_EXISTS', `checkout destination ${dest} exists and is not empty (use --union to write into it)`, { dest });
  }
  if (existing && !existing.isDirectory()) throw new StrataError('DEST_EXISTS', `${dest} exists and is not a directory`, { dest });

  if (existing && opts.union) {
    // Writing into DEST itself: refuse a malformed or hostile tree, or a
    // missing or corrupt object, before the first write.
    const placer = new FilePlacer(repo, !!opts.copy);
    loadTreeShape(repo, node.tree, node.meta, placer);
    const plan = planDirs(repo, node.tree, node.meta, dest, result);
    for (const [checksum, file] of plan.files) {
      if (lstatOrNull(file)) replaceAtomically(file, (tmp) => placer.place(checksum, tmp));
      else placer.place(checksum, file);
    }
    addCounts(result, placer.counts);
    finishDirs(plan.dirs, result.warnings);
    return result;
  }

  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.strata-tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  // A large tree gets one helper thread, started as soon as the tree proves
  // large so that it loads while directories are still being made; it takes
  // a share of the files once every directory exists (see placeInParallel).
  let pool = null as WorkerPool | null; // assigned in the callback below
  const helper = defaultWorkerCount() > 1;
  try {
    const files: [Checksum, string][] = [];
    const dirs = makeDirs(repo, node.tree, node.meta, tmp, (checksum, file) => {
      if (files.push([checksum, file]) === PARALLEL_MIN_FILES && helper) pool = new WorkerPool(1);
    });
    result.dirs = dirs.length;
    await placeInParallel(repo, files, !!opts.copy, pool, result, opts.onProgress);
    finishDirs(dirs, result.warnings);
    fs.renameSync(tmp, dest);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err instanceof StrataError ? err : ioError(err, 'check out into', dest);
  } finally {
    await pool?.close();
  }
  return result;
}

/** Reads (and so validates) every dirtree and dirmeta of a tree, and every file object's metadata. */
function loadTreeShape(repo: Repo, tree: Checksum, meta: Checksum, placer: FilePlacer): void {
  repo.loadDirMeta(meta);
  const t = repo.loadDirTree(tree);
  for (const f of t.files) placer.prepare(f.checksum);
  for (const d of t.dirs) loadTreeShape(repo, d.tree, d.meta, placer);
}

/** A directory whose owner, xattrs or mode still need setting (after its entries). */
interface PendingDir {
  dir: string;
  meta: DirMeta;
  existed: boolean;
  direct: boolean;
}

/** mkdir gives the final mode at once unless umask or special bits interfere, or (not root) it would shut us out. */
function mkdirMode(perms: number): { direct: boolean; mode: number } {
  const direct = (perms & ~0o777) === 0 && (perms & umask) === 0 && (isRoot || (perms & 0o700) === 0o700);
  return { direct, mode: direct ? perms : 0o700 };
}

/**
 * Makes every directory of a new tree, parents first, handing each file to
 * `onFile` once its directory exists. Returns directories children first.
 */
function makeDirs(repo: Repo, tree: Checksum, metaSum: Checksum, root: string, onFile: (c: Checksum, f: string) => void): PendingDir[] {
  const pending: PendingDir[] = [];
  const visit = (treeSum: Checksum, metaSum: Checksum, dir: string): void => {
    const meta = repo.loadDirMeta(metaSum);
    const t = repo.loadDirTree(treeSum);
    const { direct, mode } = mkdirMode(meta.mode & 0o7777);
    fs.mkdirSync(dir, mode);
    for (const f of t.files) onFile(f.checksum, dir + '/' + f.name);
    for (const d of t.dirs) visit(d.tree, d.meta, dir + '/' + d.name);
    pending.push({ dir, meta, existed: false, direct });
  };
  visit(tree, metaSum, root);
  return pending;
}

interface DirPlan {
  /** [checksum, destination] for every file and symlink. */
  files: [Checksum, string][];
  /** Directories whose owner, xattrs or mode still need setting, children first. */
  dirs: PendingDir[];
}

/** For --union: makes or reuses every directory of the tree and lists the files to place. */
function planDirs(repo: Repo, tree: Checksum, metaSum: Checksum, root: string, result: CheckoutResult): DirPlan {
  const plan: DirPlan = { files: [], dirs: [] };
  const visit = (treeSum: Checksum, metaSum: Checksum, dir: string, mayExist: boolean): void => {
    const meta = repo.loadDirMeta(metaSum);
    const t = repo.loadDirTree(treeSum);
    const { direct, mode } = mkdirMode(meta.mode & 0o7777);
    let existed = false;
    if (mayExist) {
      const st = lstatOrNull(dir);
      if (st && !st.isDirectory()) fs.rmSync(dir, { force: true }); // the tree wins; never write through a symlink
      else existed = !!st;
    }
    if (!existed) fs.mkdirSync(dir, mode);
    result.dirs++;
    for (const f of t.files) plan.files.push([f.checksum, dir + '/' + f.name]);
    for (const d of t.dirs) visit(d.tree, d.meta, dir + '/' + d.name, existed);
    plan.dirs.push({ dir, meta, existed, direct });
  };
  visit(tree, metaSum, root, true);
  return plan;
}

/** Below this many files a checkout stays in one thread. */
const PARALLEL_MIN_FILES = 2000;
/** The helper thread's share: it starts later (it loads first) than the main thread. */
const WORKER_SHARE = 0.45;

/**
 * Places files in two threads, each in its own contiguous run of directories
 * (files come in tree order): measured on rootfs-b, two threads writing into
 * the same directories contend on their locks, disjoint directories do not.
 */
async function placeInParallel(repo: Repo, files: [Checksum, string][], copy: boolean, pool: WorkerPool | null, result: CheckoutResult, onProgress?: (done: number, total: number) => void): Promise<void> {
  let split = pool ? Math.floor(files.length * WORKER_SHARE) : 0;
  // Move the split to a directory boundary.
  const dirOf = (f: string) => f.slice(0, f.lastIndexOf('/'));
  while (split > 0 && split < files.length && dirOf(files[split][1]) === dirOf(files[split - 1][1])) split++;
  const theirs = files.slice(0, split);
  const remote = pool && theirs.length
    ? pool.run<PlaceCounts>({ kind: 'place', task: { repoPath: repo.path, copy, checksums: theirs.map((x) => x[0]), files: theirs.map((x) => x[1]) } })
    : null;
  if (remote) await new Promise((r) => setImmediate(r)); // let the pool post the task before this thread gets busy
  const placer = new FilePlacer(repo, copy);
  for (let i = split; i < files.length; i++) {
    placer.place(files[i][0], files[i][1]);
    if (onProgress && (i - split) % 500 === 0) onProgress(i - split, files.length);
  }
  addCounts(result, placer.counts);
  if (remote) addCounts(result, await remote);
  onProgress?.(files.length, files.length);
}

/** Owner, xattrs and final mode of each directory, after its entries exist. */
function finishDirs(dirs: PendingDir[], warnings: string[]): void {
  for (const d of dirs) {
    applyOwnerAndXattrs(d.dir, d.meta.uid, d.meta.gid, d.meta.xattrs, false, d.existed, warnings);
    if (!d.direct || d.existed) fs.chmodSync(d.dir, d.meta.mode & 0o7777);
  }
}

/** Writes a file under a temp name and renames it over `target`. */
function replaceAtomically(target: string, write: (tmp: string) => void): void {
  const tmp = `${path.dirname(target)}/.${path.basename(target)}.strata-tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  try {
    write(tmp);
    if (lstatOrNull(target)?.isDirectory()) fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
    // rename(2) does nothing when both names are links to one inode (a bare-user
    // object hardlinked again by --union): the temp name must still go.
    fs.rmSync(tmp, { force: true });
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
