// A write transaction: objects are staged under tmp/, made durable with one
// syncfs (as libostree does), then renamed into objects/ with every commit
// object last, and finally the renames are made durable by a second syncfs
// (an fsync of each object directory where syncfs is unavailable). Callers move
// refs only after `commit()` returns, so a kill at any instant leaves either
// the old state or the complete new one; a leftover staging directory is
// swept by the next writer.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type ObjectType, objectName } from '../core/objects.js';
import { type Repo, fsyncDir } from './repo.js';
import { stagedName } from './stage-content.js';

const STAGING_PREFIX = 'staging-strata-';
/** Directories touched by a commit's renames up to which each is fsynced instead of a second syncfs (a process spawn, 6-12 ms from a pull). */
const FSYNC_DIRS_AT_MOST = 8;
const LOCK_NAME = 'strata.lock';

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes a writer lock held as a pid file; a dead holder's lock is taken over.
 * Returns the release function. `busy` makes the error for a live holder.
 */
export function acquirePidLock(lockFile: string, busy: (pid: number) => StrataError): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockFile, 'wx', 0o644);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(lockFile, 'utf8') === String(process.pid)) fs.unlinkSync(lockFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'lock', lockFile);
      let holder = NaN;
      try {
        holder = Number(fs.readFileSync(lockFile, 'utf8').trim());
      } catch {
        continue; // removed meanwhile: try again
      }
      if (pidAlive(holder) && holder !== process.pid) throw busy(holder);
      fs.rmSync(lockFile, { force: true });
    }
  }
  throw busy(NaN);
}

/** Takes the repository's writer lock (tmp/strata.lock). */
export function lockRepo(repo: Repo): () => void {
  const tmpDir = path.join(repo.path, 'tmp');
  fs.mkdirSync(tmpDir, { recursive: true });
  return acquirePidLock(path.join(tmpDir, LOCK_NAME), (pid) =>
    new StrataError('REPO_LOCKED', Number.isNaN(pid) ? `could not lock ${repo.path}` : `repository ${repo.path} is being written by process ${pid}; wait for it to finish`, { pid }));
}

/** Removes staging directories and ref temp files left by writers that died (their pid is gone). */
export function sweepStaging(repo: Repo): number {
  const tmpDir = path.join(repo.path, 'tmp');
  let removed = 0;
  for (const name of safeReaddir(tmpDir)) {
    // Staging directories, and temp files of refs (NAME.tmp-PID-RANDOM).
    const pid = name.startsWith(STAGING_PREFIX) ? Number(name.slice(STAGING_PREFIX.length).split('-')[0]) : Number(/\.tmp-(\d+)-[a-z0-9]+$/.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    fs.rmSync(path.join(tmpDir, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

interface Staged {
  checksum: Checksum;
  type: ObjectType;
  /** Where the object waits when it is not in the staging directory (adopted). */
  source?: string;
}

export class Transaction {
  readonly repo: Repo;
  readonly stagingDir: string;
  private readonly staged: Staged[] = [];
  private readonly stagedSet = new Set<string>();
  private readonly unlock: () => void;
  private done = false;

  private constructor(repo: Repo, stagingDir: string, unlock: () => void) {
    this.repo = repo;
    this.stagingDir = stagingDir;
    this.unlock = unlock;
  }

  static begin(repo: Repo): Transaction {
    const unlock = lockRepo(repo);
    try {
      sweepStaging(repo);
      const dir = path.join(repo.path, 'tmp', `${STAGING_PREFIX}${process.pid}-${Date.now().toString(36)}`);
      fs.mkdirSync(dir, { recursive: true });
      return new Transaction(repo, dir, unlock);
    } catch (err) {
      unlock();
      throw err;
    }
  }

  /** Records a content object a worker staged; false when it was already recorded. */
  noteStaged(checksum: Checksum, type: ObjectType): boolean {
    const key = `${checksum}.${type}`;
    if (this.stagedSet.has(key)) return false;
    this.stagedSet.add(key);
    this.staged.push({ checksum, type });
    return true;
  }

  /**
   * Records an object already verified and written elsewhere on the
   * repository's filesystem (a pull's staging area, decision 0007): commit()
   * makes it durable with the rest and renames it straight into objects/.
   * An abort leaves it where it is. False when the object was already recorded.
   */
  adopt(checksum: Checksum, type: ObjectType, file: string): boolean {
    const key = `${checksum}.${type}`;
    if (this.stagedSet.has(key)) return false;
    this.stagedSet.add(key);
    this.staged.push({ checksum, type, source: file });
    return true;
  }

  /** Hashes and stages a metadata object unless the repo already has it. */
  writeMetadata(type: Exclude<ObjectType, 'file'>, bytes: Buffer): { checksum: Checksum; written: boolean } {
    const checksum = createHash('sha256').update(bytes).digest('hex') as Checksum;
    if (this.stagedSet.has(`${checksum}.${type}`) || this.repo.hasObject(checksum, type)) return { checksum, written: false };
    const file = `${this.stagingDir}/${stagedName(checksum, type, this.repo.archive)}`;
    try {
      fs.writeFileSync(file, bytes, { mode: 0o644 });
    } catch (err) {
      throw ioError(err, 'stage object', file);
    }
    this.noteStaged(checksum, type);
    return { checksum, written: true };
  }

  /** Makes every staged object durable and visible; commits go in last. */
  commit(): void {
    if (this.done) throw new StrataError('INTERNAL', 'transaction already finished');
    try {
      if (this.staged.length > 0) syncFilesystem(this.stagingDir, () => this.staged.map((s) => this.sourceOf(s)));
      const order = (t: ObjectType): number => (t === 'commit' ? 2 : t === 'commitmeta' ? 1 : 0);
      const touched = new Set<string>();
      const objects = path.join(this.repo.path, 'objects');
      const moved = this.moveWholeDirs();
      if (moved.size > 0) touched.add(objects);
      const sorted = this.staged.filter((s) => !moved.has(s)).sort((a, b) => order(a.type) - order(b.type));
      for (const s of sorted) {
        const target = this.repo.objectFile(s.checksum, s.type);
        const dir = this.repo.objectDir(s.checksum);
        if (!touched.has(dir)) {
          fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
          touched.add(dir);
        }
        fs.renameSync(this.sourceOf(s), target);
      }
      // The renames are durable once the directories they wrote to are: an fsync of each when there are a few
      // (a first pull that moved whole directories touches objects/ and the commit's directory), else a second
      // syncfs, one journal commit instead of hundreds of fsyncs (and what is left when syncfs is unavailable).
      if (touched.size > 0 && (touched.size <= FSYNC_DIRS_AT_MOST || !syncfs(objects))) {
        touched.add(objects);
        for (const dir of touched) fsyncDir(dir);
      }
    } catch (err) {
      throw err instanceof StrataError ? err : ioError(err, 'store objects in', this.repo.path);
    } finally {
      this.finish();
    }
  }

  /**
   * Adopted objects that wait in a directory of objects/'s layout (`XX/REST.EXT`,
   * a pull's staging area) go in with one rename of that directory when
   * objects/XX does not exist yet and the directory holds exactly them: a
   * first pull moves 256 directories instead of thousands of files. Commits
   * never go this way (they are renamed last, one by one). Returns the
   * objects moved; any other case falls back to renaming each object.
   */
  private moveWholeDirs(): Set<Staged> {
    const groups = new Map<string, Staged[]>();
    for (const s of this.staged) {
      if (s.source === undefined || s.type === 'commit' || s.type === 'commitmeta') continue;
      if (!s.source.endsWith(`/${objectName(s.checksum, s.type, this.repo.archive)}`)) continue;
      const dir = s.source.slice(0, s.source.lastIndexOf('/'));
      const group = groups.get(dir);
      if (group) group.push(s);
      else groups.set(dir, [s]);
    }
    const moved = new Set<Staged>();
    for (const [dir, group] of groups) {
      const target = this.repo.objectDir(group[0].checksum);
      if (fs.existsSync(target) || fs.readdirSync(dir).length !== group.length) continue;
      try {
        fs.renameSync(dir, target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ENOTEMPTY') continue; // made meanwhile by another writer: one by one
        throw err;
      }
      for (const s of group) moved.add(s);
    }
    return moved;
  }

  private sourceOf(s: Staged): string {
    // Plain concatenation (stagingDir is absolute and normal): this runs once per object.
    return s.source ?? `${this.stagingDir}/${stagedName(s.checksum, s.type, this.repo.archive)}`;
  }

  get stagedCount(): number {
    return this.staged.length;
  }

  abort(): void {
    if (!this.done) this.finish();
  }

  private finish(): void {
    this.done = true;
    fs.rmSync(this.stagingDir, { recursive: true, force: true });
    this.unlock();
  }
}

/** Makes everything written to `dir`'s filesystem durable: one syncfs (coreutils `sync -f`). */
export function syncfs(dir: string): boolean {
  try {
    execFileSync('sync', ['-f', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * One syncfs for the whole filesystem is far cheaper than an fsync per
 * object; where it is unavailable, fsync each file.
 */
export function syncFilesystem(dir: string, files: () => string[]): void {
  if (syncfs(dir)) return;
  for (const f of files()) {
    const fd = fs.openSync(path.resolve(dir, f), 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
