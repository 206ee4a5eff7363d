// `verifyTree`: does a checked-out tree (a deployment) still hold exactly its
// commit? Every regular file is rehashed: a file hardlinked to a bare-user
// object shares its inode, so tampering edits both and inode identity proves
// nothing. A file is hashed as an OSTree content object (header built from
// the disk's own metadata, then its bytes), so one comparison with the
// tree's checksum clears it; only a mismatch loads the object to say what
// differs. Worker threads hash batches of files while this thread walks.

import fs from 'node:fs';
import path from 'node:path';
import crypto, { createHash } from 'node:crypto';
import { getAttributeSync, listAttributesSync } from './xattr.js';
import { StrataError, ioError } from '../errors.js';
import {
  type Checksum, type Xattr, S_IFLNK, S_IFMT, canonicalXattrs, compareNames, fileHeader, sha256, validateEntryName,
} from '../core/objects.js';
import { BAREUSER_XATTR, type Repo } from './repo.js';
import { joinTreePath } from './walk.js';
import { WorkerPool, defaultWorkerCount } from './worker-pool.js';

export interface VerifyTreeOptions {
  /** The repo holding the commit (bare-user or archive). */
  repo: Repo;
  commit: Checksum;
  /** Directory where the commit is checked out (a symlink here is resolved; none below it is followed). */
  root: string;
  /** Top-level names skipped entirely on both sides, e.g. ['etc', 'var']. */
  exclude?: string[];
  /** Threads that hash, this one included; default defaultWorkerCount(); 1 = no worker threads. */
  workers?: number;
  /** Called as files are hashed: (done, total known so far). */
  onProgress?: (done: number, total: number) => void;
}

export type DifferenceAspect = 'content' | 'type' | 'mode' | 'owner' | 'xattrs' | 'target';

export interface TreeDifference {
  /** Path inside the tree, e.g. `/usr/bin/ls`. */
  path: string;
  kind: 'modified' | 'added' | 'removed';
  /** For `modified`: what differs, in this order: content, type, mode, owner, xattrs, target. */
  what?: DifferenceAspect[];
}

export interface VerifyTreeResult {
  commit: Checksum;
  /** The verified directory, symlinks resolved. */
  root: string;
  /** Entries present on both sides and compared (the root included). */
  checked: number;
  /** Bytes of file content hashed. */
  bytes: number;
  /** Sorted by path; a removed or added directory is listed once, without its children. */
  differences: TreeDifference[];
}

const isRoot = process.getuid?.() === 0;

/** Files per worker batch (a few ms of work); not weighed by size, as a stat costs ~5 µs here. */
const BATCH_FILES = 64;
/** Files this thread hashes at a time. */
const MAIN_SLICE = 16;
/** This thread looks at the event loop this often (ms): replies come in and batches go out only then. */
const YIELD_MS = 1;
/** Batches per worker at once: one running, one waiting in the worker, one in the pool's queue to go the moment it replies. */
const PER_WORKER = 3;

export async function verifyTree(opts: VerifyTreeOptions): Promise<VerifyTreeResult> {
  const workers = opts.workers ?? defaultWorkerCount();
  if (!Number.isInteger(workers) || workers < 1) throw new StrataError('USAGE', `workers must be a whole number >= 1, not ${workers}`, { workers });
  const exclude = new Set(opts.exclude ?? []);
  for (const name of exclude) validateEntryName(name);
  const root = resolveRoot(opts.root);
  const c = opts.repo.loadCommit(opts.commit);
  const rootMeta = opts.repo.loadDirMeta(c.rootMeta);
  // A non-root checkout cannot set owners: hash files as if they had the
  // tree's usual owner (its root directory's) and never report owners.
  const owner: [number, number] | null = isRoot ? null : [rootMeta.uid, rootMeta.gid];
  const pool = workers > 1 ? new WorkerPool(workers - 1) : null;
  const v = new TreeVerifier(opts.repo, exclude, owner, pool, PER_WORKER * (workers - 1), opts.onProgress);
  try {
    if (v.checkDir('/', root, c.rootMeta)) await v.visitDir('/', root, c.rootTree);
    await v.drain();
  } finally {
    await pool?.close();
  }
  v.differences.sort((a, b) => compareNames(a.path, b.path));
  return { commit: opts.commit, root, checked: v.checked, bytes: v.bytes, differences: v.differences };
}

function resolveRoot(root: string): string {
  const abs = path.resolve(root);
  try {
    const real = fs.realpathSync(abs);
    if (fs.lstatSync(real).isDirectory()) return real;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(err, 'open', abs);
  }
  throw new StrataError('PATH_NOT_FOUND', `no checked-out tree at ${abs} (not a directory)`, { path: abs });
}

interface Batch {
  paths: string[];
  files: string[];
  checksums: Checksum[];
}

type DiskKind = 'dir' | 'file' | 'symlink' | 'other';

class TreeVerifier {
  readonly differences: TreeDifference[] = [];
  checked = 1; // the root directory
  bytes = 0;
  private batch: Batch = emptyBatch();
  private readonly queue: Batch[] = [];
  private readonly running = new Set<Promise<void>>();
  private failure: unknown = null;
  private queued = 0;
  private done = 0;
  private lastYield = 0;

  constructor(
    private readonly repo: Repo,
    private readonly exclude: Set<string>,
    private readonly owner: [number, number] | null,
    private readonly pool: WorkerPool | null,
    /** Batches the pool may hold at once. */
    private readonly poolDepth: number,
    private readonly onProgress?: (done: number, total: number) => void,
  ) {}

  /** Compares a directory's entries with a dirtree, then its subdirectories, depth first. */
  async visitDir(treePath: string, abs: string, tree: Checksum): Promise<void> {
    const top = treePath === '/';
    const t = this.repo.loadDirTree(tree);
    const expected = new Map<string, { tree: Checksum; meta: Checksum } | Checksum>();
    for (const f of t.files) if (!(top && this.exclude.has(f.name))) expected.set(f.name, f.checksum);
    for (const d of t.dirs) if (!(top && this.exclude.has(d.name))) expected.set(d.name, d);
    let dirents: fs.Dirent[];
    try {
      dirents = fs.readdirSync(abs, { withFileTypes: true });
    } catch (err) {
      throw ioError(err, 'list', abs);
    }
    const subdirs: [string, string, Checksum][] = [];
    for (const e of dirents) {
      if (top && this.exclude.has(e.name)) continue;
      const p = joinTreePath(treePath, e.name);
      const node = expected.get(e.name);
      // A name that is not UTF-8 decodes with U+FFFD, matches no tree entry and so shows as added.
      if (node === undefined) {
        this.differences.push({ path: p, kind: 'added' });
        continue;
      }
      expected.delete(e.name);
      this.checked++;
      const a = `${abs}/${e.name}`;
      const kind = direntKind(e, a);
      if (typeof node === 'object') {
        if (kind !== 'dir') this.modified(p, ['type']);
        else if (this.checkDir(p, a, node.meta)) subdirs.push([p, a, node.tree]);
      } else if (kind === 'file' || kind === 'symlink') this.addFile(p, a, node);
      else this.modified(p, ['type']); // a directory or special file where the tree has a file
    }
    for (const name of expected.keys()) this.differences.push({ path: joinTreePath(treePath, name), kind: 'removed' });
    await this.breathe();
    for (const [p, a, sub] of subdirs) await this.visitDir(p, a, sub);
  }

  /** Compares a directory's own metadata with its dirmeta; false when it is not a directory. */
  checkDir(treePath: string, abs: string, metaSum: Checksum): boolean {
    const st = lstat(abs);
    if (!st) {
      this.differences.push({ path: treePath, kind: 'removed' });
      return false;
    }
    if (!st.isDirectory()) {
      this.modified(treePath, ['type']);
      return false;
    }
    const m = this.repo.loadDirMeta(metaSum);
    const what: DifferenceAspect[] = [];
    if ((st.mode & 0o7777) !== (m.mode & 0o7777)) what.push('mode');
    if (isRoot && (st.uid !== m.uid || st.gid !== m.gid)) what.push('owner');
    if (!sameXattrs(diskXattrs(abs), m.xattrs)) what.push('xattrs');
    if (what.length) this.modified(treePath, what);
    return true;
  }

  /** Queues a file or symlink for hashing. */
  private addFile(treePath: string, abs: string, checksum: Checksum): void {
    const b = this.batch;
    b.paths.push(treePath);
    b.files.push(abs);
    b.checksums.push(checksum);
    this.queued++;
    if (b.files.length >= BATCH_FILES) {
      this.queue.push(b);
      this.batch = emptyBatch();
    }
  }

  /** Every YIELD_MS: hands the pool a batch and lets it post batches and take replies. */
  private async breathe(): Promise<void> {
    if (!this.pool || performance.now() - this.lastYield < YIELD_MS) return;
    this.pump();
    await new Promise((r) => setImmediate(r));
    this.lastYield = performance.now();
  }

  /**
   * Hands one batch to the pool if it has room. One per call: batches handed
   * over in one tick would travel as one message, leaving a worker nothing
   * queued while it waits for this thread to read its reply.
   */
  private pump(): void {
    if (this.pool && this.queue.length > 0 && this.running.size < this.poolDepth) {
      const b = this.queue.shift() as Batch;
      const job = this.pool
        .run<HashFilesResult>({ kind: 'hash-files', task: { paths: b.files, owner: this.owner } })
        .then((r) => this.settle(b, r))
        .catch((err: unknown) => {
          this.failure ??= err;
        })
        .finally(() => {
          this.running.delete(job);
          if (!this.failure) this.pump();
        });
      this.running.add(job);
    }
  }

  /** After the walk: this thread hashes from the back of the queue while the pool takes from the front. */
  async drain(): Promise<void> {
    if (this.batch.files.length) this.queue.push(this.batch);
    this.batch = emptyBatch();
    while (this.queue.length > 0 && !this.failure) {
      await this.breathe();
      const last = this.queue[this.queue.length - 1];
      if (last) {
        const b = { paths: last.paths.splice(-MAIN_SLICE), files: last.files.splice(-MAIN_SLICE), checksums: last.checksums.splice(-MAIN_SLICE) };
        if (last.files.length === 0) this.queue.pop();
        this.settle(b, hashFiles({ paths: b.files, owner: this.owner }));
      }
    }
    while (this.running.size > 0) await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }

  private settle(b: Batch, r: HashFilesResult): void {
    this.bytes += r.bytes;
    for (let i = 0; i < b.files.length; i++) {
      if (r.checksums[i] !== b.checksums[i]) this.explainFile(b.paths[i], b.files[i], b.checksums[i]);
    }
    this.done += b.files.length;
    this.onProgress?.(this.done, this.queued);
  }

  /** A file or symlink whose checksum differs: load its object and say what differs. */
  private explainFile(treePath: string, abs: string, checksum: Checksum): void {
    const st = lstat(abs);
    if (!st) {
      this.differences.push({ path: treePath, kind: 'removed' });
      return;
    }
    const meta = this.repo.loadFileInfo(checksum).meta;
    const link = (meta.mode & S_IFMT) === S_IFLNK;
    if (link ? !st.isSymbolicLink() : !st.isFile()) return this.modified(treePath, ['type']);
    const what: DifferenceAspect[] = [];
    // Same header as the object's, so only the bytes can make the sums differ.
    if (!link && hashRegularFile(abs, () => fileHeader(meta))?.checksum !== checksum) what.push('content');
    // Linux gives every symlink mode 0777: no checkout could reproduce another.
    if (!link && (st.mode & 0o7777) !== (meta.mode & 0o7777)) what.push('mode');
    if (isRoot && (st.uid !== meta.uid || st.gid !== meta.gid)) what.push('owner');
    if (!sameXattrs(diskXattrs(abs), meta.xattrs)) what.push('xattrs');
    if (link && readLink(abs) !== meta.symlinkTarget) what.push('target');
    if (what.length) this.modified(treePath, what);
  }

  private modified(treePath: string, what: DifferenceAspect[]): void {
    this.differences.push({ path: treePath, kind: 'modified', what });
  }
}

function emptyBatch(): Batch {
  return { paths: [], files: [], checksums: [] };
}

function direntKind(e: fs.Dirent, abs: string): DiskKind {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (e.isSymbolicLink()) return 'symlink';
  if (e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice()) return 'other';
  // The file system gave no type (DT_UNKNOWN): ask lstat.
  const st = lstat(abs);
  return !st ? 'other' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
}

function lstat(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(err, 'inspect', p);
  }
}

function readLink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch (err) {
    throw ioError(err, 'read symlink', p);
  }
}

/**
 * The disk's xattrs as a commit would record them: without the bare-user
 * object's own metadata, which hardlinked files share and whose value is
 * never read (two syscalls saved per file).
 */
function diskXattrs(p: string): Xattr[] {
  let names: string[];
  try {
    names = listAttributesSync(p);
  } catch (err) {
    throw ioError(err, 'list xattrs of', p);
  }
  const out: Xattr[] = [];
  for (const name of names) {
    if (name === BAREUSER_XATTR) continue;
    const value = getAttributeSync(p, name);
    if (value) out.push({ name, value: Buffer.from(value) });
  }
  return out.length > 1 ? canonicalXattrs(out) : out;
}

function sameXattrs(disk: Xattr[], tree: Xattr[]): boolean {
  if (disk.length !== tree.length) return false;
  const sorted = canonicalXattrs(tree);
  return disk.every((x, i) => x.name === sorted[i].name && x.value.equals(sorted[i].value));
}

// ------------------------------------------------------------ hashing files
// Runs on the main thread and in workers (object-worker's 'hash-files' task).

export interface HashFilesTask {
  /** Absolute paths of regular files and symlinks. */
  paths: string[];
  /** [uid, gid] to put in the header instead of the disk's, or null to use the disk's. */
  owner: [number, number] | null;
}

export interface HashFilesResult {
  /** Per path, the checksum of what is there as a content object, or null when it is neither file nor symlink (any longer). */
  checksums: (Checksum | null)[];
  /** Bytes of file content hashed. */
  bytes: number;
}

export function hashFiles(task: HashFilesTask): HashFilesResult {
  const out: HashFilesResult = { checksums: [], bytes: 0 };
  for (const p of task.paths) {
    const header = (st: fs.Stats, symlinkTarget: string) => fileHeader({
      uid: task.owner?.[0] ?? st.uid, gid: task.owner?.[1] ?? st.gid, mode: st.mode, symlinkTarget, xattrs: diskXattrs(p),
    });
    const r = hashRegularFile(p, (st) => header(st, ''));
    if (r) {
      out.checksums.push(r.checksum);
      out.bytes += r.bytes;
      continue;
    }
    // The open refused it: a symlink (O_NOFOLLOW), or something gone or special.
    const st = lstat(p);
    out.checksums.push(st?.isSymbolicLink() ? sha256(header(st, readLink(p))) : null);
  }
  return out;
}

/** One read buffer per thread, reused: 64 KiB stays in cache between the read and the hash (measured faster than 1 MiB). */
const scratch = Buffer.allocUnsafe(64 * 1024);
// O_NOFOLLOW: a symlink is refused, never followed out of the tree;
// O_NONBLOCK: a file swapped for a FIFO cannot hang the open;
// O_NOATIME (root may use it on any file): reading writes no inode.
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | (isRoot ? fs.constants.O_NOATIME : 0);
/** crypto.hash (Node >= 20.12): one call for data in one buffer. */
const oneShotHash = typeof crypto.hash === 'function' ? crypto.hash : null;
const REFUSED = new Set(['ENOENT', 'ELOOP', 'ENOTDIR', 'ENXIO']);

/** sha256(header + content) of a regular file, or null when the path is not (any longer) a regular file. */
function hashRegularFile(file: string, header: (st: fs.Stats) => Buffer): { checksum: Checksum; bytes: number } | null {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    if (REFUSED.has((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw ioError(err, 'open', file);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return null;
    const head = header(st);
    // Reads up to the size fstat gave: the read that would only confirm EOF is a syscall saved per file.
    if (oneShotHash && head.length + st.size <= scratch.length) {
      // Most files fit with their header in the buffer: one hash call, no Hash object.
      head.copy(scratch);
      const bytes = readInto(fd, head.length, st.size);
      return { checksum: oneShotHash('sha256', scratch.subarray(0, head.length + bytes), 'hex') as Checksum, bytes };
    }
    const h = createHash('sha256').update(head);
    let bytes = 0;
    for (let n; bytes < st.size && (n = readInto(fd, 0, Math.min(scratch.length, st.size - bytes))) > 0; bytes += n) h.update(scratch.subarray(0, n));
    return { checksum: h.digest('hex') as Checksum, bytes };
  } catch (err) {
    throw err instanceof StrataError ? err : ioError(err, 'read', file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads up to `size` bytes of fd into scratch at `offset`; returns how many came. */
function readInto(fd: number, offset: number, size: number): number {
  let bytes = 0;
  while (bytes < size) {
    const n = fs.readSync(fd, scratch, offset + bytes, size - bytes, null);
    if (n === 0) break;
    bytes += n;
  }
  return bytes;
}
