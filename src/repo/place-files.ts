// Putting content objects in place as files of a checkout: hardlink, symlink
// or copy.

import fs from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { setAttributeSync } from './xattr.js';
import { ioError } from '../errors.js';
import { type Checksum, type FileMeta, type Xattr, S_IFLNK, S_IFMT } from '../core/objects.js';
import { Repo } from './repo.js';

export const isRoot = process.getuid?.() === 0;
const myUid = process.getuid?.() ?? -1;
const myGid = process.getgid?.() ?? -1;

export interface PlaceCounts {
  files: number;
  symlinks: number;
  hardlinked: number;
  copied: number;
  warnings: string[];
}

export function emptyCounts(): PlaceCounts {
  return { files: 0, symlinks: 0, hardlinked: 0, copied: 0, warnings: [] };
}

export function addCounts(a: PlaceCounts, b: PlaceCounts): void {
  a.files += b.files;
  a.symlinks += b.symlinks;
  a.hardlinked += b.hardlinked;
  a.copied += b.copied;
  a.warnings.push(...b.warnings);
}

interface ObjectInfo {
  meta: FileMeta;
  /** True when a hardlink to the object gives the file its exact metadata. */
  linkable: boolean;
}

export class FilePlacer {
  private readonly infos = new Map<Checksum, ObjectInfo>();
  readonly counts = emptyCounts();

  constructor(
    private readonly repo: Repo,
    private readonly copy: boolean,
  ) {}

  private info(checksum: Checksum): ObjectInfo {
    let i = this.infos.get(checksum);
    if (!i) {
      const meta = this.repo.archive ? this.repo.loadFileInfo(checksum).meta : this.repo.loadBareUserMeta(checksum);
      let linkable = false;
      if (!this.copy && !this.repo.archive && meta.xattrs.length === 0) {
        if ((meta.mode & S_IFMT) === S_IFLNK) {
          // Symlinks come from the repo's symlink cache when it can give them their owner.
          linkable = isRoot || (meta.uid === myUid && meta.gid === myGid);
        } else {
          const st = fs.statSync(this.repo.objectFile(checksum, 'file'));
          linkable = (st.mode & 0o7777) === (meta.mode & 0o7777) && (!isRoot || (st.uid === meta.uid && st.gid === meta.gid));
        }
      }
      i = { meta, linkable };
      this.infos.set(checksum, i);
    }
    return i;
  }

  /** Loads (and so validates) an object's metadata ahead of placing it. */
  prepare(checksum: Checksum): void {
    this.info(checksum);
  }

  /** Creates `file` (which must not exist) from the object. */
  place(checksum: Checksum, file: string): void {
    const { meta, linkable } = this.info(checksum);
    if ((meta.mode & S_IFMT) === S_IFLNK) {
      if (linkable && this.linkSymlink(checksum, meta, file)) return;
      fs.symlinkSync(meta.symlinkTarget, file);
      if (isRoot && (meta.uid !== myUid || meta.gid !== myGid)) fs.lchownSync(file, meta.uid, meta.gid);
      if (meta.xattrs.length) applyOwnerAndXattrs(file, meta.uid, meta.gid, meta.xattrs, true, false, this.counts.warnings);
      this.counts.symlinks++;
      return;
    }
    this.counts.files++;
    if (linkable) {
      try {
        fs.linkSync(this.repo.objectFile(checksum, 'file'), file);
        this.counts.hardlinked++;
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw ioError(err, 'link', file);
      }
    }
    this.copyOut(checksum, meta, file);
  }

  /**
   * A bare-user repo stores a symlink as a regular file, so a checkout would
   * create a new inode for each. Symlinks never change in place, so one real
   * symlink per object, kept in the repo's symlink cache, can be hardlinked
   * into every checkout, as ostree does from a bare repo. False when the
   * link cannot be made (the caller then creates the symlink).
   */
  private linkSymlink(checksum: Checksum, meta: FileMeta, file: string): boolean {
    const cached = symlinkCachePath(this.repo, checksum);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.linkSync(cached, file);
        this.counts.symlinks++;
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' || attempt > 0) {
          if (code === 'EXDEV' || code === 'EMLINK' || code === 'EPERM' || code === 'ENOENT') return false;
          throw ioError(err, 'link', file);
        }
      }
      // Not cached yet: make it under a temp name, give it its owner, rename it in.
      const tmp = `${cached}.tmp-${process.pid}-${threadId}`;
      try {
        fs.mkdirSync(path.dirname(cached), { recursive: true });
        fs.rmSync(tmp, { force: true });
        fs.symlinkSync(meta.symlinkTarget, tmp);
        if (isRoot && (meta.uid !== myUid || meta.gid !== myGid)) fs.lchownSync(tmp, meta.uid, meta.gid);
        fs.renameSync(tmp, cached);
      } catch {
        fs.rmSync(tmp, { force: true });
        return false;
      }
    }
    return false;
  }

  private copyOut(checksum: Checksum, meta: FileMeta, file: string): void {
    if (this.repo.archive) {
      const { content } = this.repo.loadFile(checksum);
      fs.writeFileSync(file, content ?? Buffer.alloc(0), { mode: 0o600, flag: 'wx' });
    } else {
      fs.copyFileSync(this.repo.objectFile(checksum, 'file'), file, fs.constants.COPYFILE_EXCL);
    }
    applyOwnerAndXattrs(file, meta.uid, meta.gid, meta.xattrs, false, false, this.counts.warnings);
    fs.chmodSync(file, meta.mode & 0o7777); // after chown, which clears setuid bits
    fs.utimesSync(file, 0, 0);
    this.counts.copied++;
  }
}

/** Where a bare-user repo keeps the real symlink of a symlink object (derived data; prune drops it with the object). */
export function symlinkCachePath(repo: Repo, checksum: Checksum): string {
  return `${repo.path}/extensions/strata/symlinks/${checksum.slice(0, 2)}/${checksum.slice(2)}`;
}

/** Sets owner (as root; skipped when a new entry already has it) and xattrs. */
export function applyOwnerAndXattrs(file: string, uid: number, gid: number, xattrs: Xattr[], isLink: boolean, existed: boolean, warnings: string[]): void {
  if (isRoot && !isLink && (existed || uid !== myUid || gid !== myGid)) fs.chownSync(file, uid, gid);
  for (const x of xattrs) {
    try {
      setAttributeSync(file, x.name, x.value);
    } catch (err) {
      warnings.push(`could not set xattr ${x.name} on ${file}: ${(err as Error).message}`);
    }
  }
}

/** A worker's share of a checkout: files to place, in directories that exist. */
export interface PlaceTask {
  repoPath: string;
  copy: boolean;
  checksums: Checksum[];
  files: string[];
}

export function placeFiles(task: PlaceTask): PlaceCounts {
  const placer = new FilePlacer(Repo.open(task.repoPath), task.copy);
  for (let i = 0; i < task.files.length; i++) placer.place(task.checksums[i], task.files[i]);
  return placer.counts;
}
