// The staging tree a compose builds on disk. Every write goes through one
// resolver that follows symlinks as a chroot would (absolute targets start
// at the tree's root), so a layer that writes `lib/x` on a merged-/usr base
// lands in `usr/lib/x`, and nothing can write outside the tree: a path that
// would leave it through `..` is refused with UNSAFE_PATH. The last
// component is never followed: a file replaces a symlink, as tar does.

import fs from 'node:fs';
import path from 'node:path';
import { setAttributeSync } from '../repo/xattr.js';
import { StrataError, ioError } from '../errors.js';
import type { Xattr } from '../core/objects.js';

export interface EntryMeta {
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  xattrs: Xattr[];
}

export const ROOT_DIR_META: EntryMeta = { mode: 0o755, uid: 0, gid: 0, xattrs: [] };

const MAX_SYMLINKS = 40;
const isRoot = process.getuid?.() === 0;

/** Splits a tree path (`/etc/x`, `etc/x/`) into components; refuses `..`, NUL and empty names. */
export function treeParts(p: string): string[] {
  if (p.includes('\0')) throw new StrataError('UNSAFE_PATH', `path ${JSON.stringify(p)} holds a NUL byte`, { path: p });
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new StrataError('UNSAFE_PATH', `path ${JSON.stringify(p)} has a '..' component, which would leave the tree`, { path: p });
  return parts;
}

export class StagingTree {
  constructor(readonly root: string) {}

  /** Makes an empty tree at `root` (which must not exist) with the usual root directory metadata. */
  static create(root: string): StagingTree {
    try {
      fs.mkdirSync(root);
    } catch (err) {
      throw ioError(err, 'create', root);
    }
    const t = new StagingTree(root);
    t.applyMeta(root, ROOT_DIR_META, true);
    return t;
  }

  private escape(shown: string, via: string): StrataError {
    return new StrataError('UNSAFE_PATH', `/${shown} goes through the symlink /${via}, whose target leaves the tree`, { path: shown, symlink: via });
  }

  /**
   * Resolves `parts` to components of real directories under the root (the
   * last one may be missing or, unless followLast, anything). Missing
   * directories on the way are created (0755, root) when `create`.
   * Returns null when a directory on the way is missing and not created.
   */
  resolve(parts: string[], opts: { followLast?: boolean; create?: boolean } = {}): string[] | null {
    const shown = parts.join('/');
    const stack: string[] = [];
    const queue = [...parts];
    let links = 0;
    let lastLink = '';
    while (queue.length > 0) {
      const name = queue.shift() as string;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (stack.length === 0) throw this.escape(shown, lastLink || shown);
        stack.pop();
        continue;
      }
      const isLast = queue.length === 0;
      if (isLast && !opts.followLast) {
        stack.push(name);
        break;
      }
      const p = path.join(this.root, ...stack, name);
      let st: fs.Stats | null = null;
      try {
        st = fs.lstatSync(p);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') throw ioError(err, 'inspect', p);
      }
      if (st === null) {
        if (isLast) {
          stack.push(name);
          break;
        }
        if (!opts.create) return null;
        this.makeDir(p, ROOT_DIR_META);
        stack.push(name);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw new StrataError('UNSAFE_PATH', `/${shown}: too many levels of symlinks`, { path: shown });
        lastLink = [...stack, name].join('/');
        const target = fs.readlinkSync(p);
        if (target.startsWith('/')) stack.length = 0;
        queue.unshift(...target.split('/'));
        continue;
      }
      if (!isLast && !st.isDirectory()) {
        throw new StrataError('COMPOSE_CONFLICT', `cannot place /${shown}: /${[...stack, name].join('/')} is a file, not a directory`, { path: shown });
      }
      stack.push(name);
    }
    return stack;
  }

  /** The real path of a tree path; null when a directory on the way is missing. */
  realPath(parts: string[], followLast = true): string | null {
    const r = this.resolve(parts, { followLast });
    return r === null ? null : path.join(this.root, ...r);
  }

  lstat(real: string): fs.Stats | null {
    try {
      return fs.lstatSync(real);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw ioError(err, 'inspect', real);
    }
  }

  /** Where a non-directory goes: the parent resolved (and made), whatever was there removed. */
  private slotForNonDir(parts: string[]): string {
    if (parts.length === 0) throw new StrataError('COMPOSE_CONFLICT', 'cannot replace the root directory with a file', { path: '/' });
    const real = path.join(this.root, ...(this.resolve(parts, { create: true }) as string[]));
    const st = this.lstat(real);
    if (st?.isDirectory()) {
      if (fs.readdirSync(real).length > 0) {
        throw new StrataError('COMPOSE_CONFLICT', `/${parts.join('/')} is a directory with contents; a later input cannot replace it with a file`, { path: parts.join('/') });
      }
      fs.rmdirSync(real);
    } else if (st) {
      fs.unlinkSync(real);
    }
    return real;
  }

  /** A directory entry: created, or an existing one takes the new metadata. A symlink to a directory is kept and followed. */
  mkdir(parts: string[], meta: EntryMeta): void {
    if (parts.length === 0) {
      this.applyMeta(this.root, meta, true);
      return;
    }
    const real = path.join(this.root, ...(this.resolve(parts, { create: true }) as string[]));
    const st = this.lstat(real);
    if (st?.isDirectory()) {
      this.applyMeta(real, meta, true);
      return;
    }
    if (st?.isSymbolicLink()) {
      // A directory symlink (merged /usr: bin -> usr/bin) stays, as dpkg and tar --keep-directory-symlink keep it.
      const target = this.realPath(parts, true);
      if (target !== null && this.lstat(target)?.isDirectory()) return;
    }
    if (st) fs.unlinkSync(real);
    this.makeDir(real, meta);
  }

  private makeDir(real: string, meta: EntryMeta): void {
    try {
      fs.mkdirSync(real);
    } catch (err) {
      throw ioError(err, 'create', real);
    }
    this.applyMeta(real, meta, true);
  }

  /** Writes a regular file from bytes. */
  writeFile(parts: string[], data: Uint8Array, meta: EntryMeta): string {
    const real = this.slotForNonDir(parts);
    try {
      fs.writeFileSync(real, data, { flag: 'wx', mode: 0o600 });
    } catch (err) {
      throw ioError(err, 'write', real);
    }
    this.applyMeta(real, meta, false);
    return real;
  }

  /** Opens a new regular file for streaming; call finishFile after writing. */
  openFile(parts: string[]): { real: string; fd: number } {
    const real = this.slotForNonDir(parts);
    try {
      return { real, fd: fs.openSync(real, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600) };
    } catch (err) {
      throw ioError(err, 'create', real);
    }
  }

  finishFile(file: { real: string; fd: number }, meta: EntryMeta): void {
    fs.closeSync(file.fd);
    this.applyMeta(file.real, meta, false);
  }

  /** Copies a regular file from outside the tree (reflink where the filesystem can). */
  copyFile(parts: string[], source: string, meta: EntryMeta): string {
    const real = this.slotForNonDir(parts);
    try {
      fs.copyFileSync(source, real, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
    } catch (err) {
      throw ioError(err, 'copy', source);
    }
    this.applyMeta(real, meta, false);
    return real;
  }

  symlink(parts: string[], target: string, uid = 0, gid = 0, xattrs: Xattr[] = []): void {
    if (target === '' || target.includes('\0')) throw new StrataError('UNSAFE_PATH', `symlink /${parts.join('/')} has an empty or NUL-holding target`, { path: parts.join('/') });
    const real = this.slotForNonDir(parts);
    try {
      fs.symlinkSync(target, real);
    } catch (err) {
      throw ioError(err, 'create symlink', real);
    }
    this.chown(real, uid, gid);
    for (const x of xattrs) this.setXattr(real, x);
  }

  /** A hard link to an earlier entry of the tree (never to anything outside it). */
  hardlink(parts: string[], targetParts: string[]): void {
    const target = this.realPath(targetParts, false);
    const st = target === null ? null : this.lstat(target);
    if (target === null || st === null || st.isDirectory()) {
      throw new StrataError('COMPOSE_CONFLICT', `hard link /${parts.join('/')} -> /${targetParts.join('/')}: the target is ${st?.isDirectory() ? 'a directory' : 'not in the tree'}`, { path: parts.join('/'), target: targetParts.join('/') });
    }
    const real = this.slotForNonDir(parts);
    if (real === target) return;
    try {
      fs.linkSync(target, real);
    } catch (err) {
      throw ioError(err, 'hard link', real);
    }
  }

  /** Removes an entry (a directory with all it holds); the last component is not followed. */
  remove(parts: string[]): boolean {
    if (parts.length === 0) throw new StrataError('COMPOSE_CONFLICT', 'cannot remove the root of the tree', { path: '/' });
    const resolved = this.resolve(parts);
    if (resolved === null) return false;
    const real = path.join(this.root, ...resolved);
    if (this.lstat(real) === null) return false;
    try {
      fs.rmSync(real, { recursive: true, force: true });
    } catch (err) {
      throw ioError(err, 'remove', real);
    }
    return true;
  }

  private chown(real: string, uid: number, gid: number): void {
    try {
      fs.lchownSync(real, uid, gid);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!isRoot && (code === 'EPERM' || code === 'EINVAL')) {
        const st = fs.lstatSync(real);
        if (st.uid === uid && st.gid === gid) return;
        throw new StrataError('NEEDS_ROOT', `cannot give ${real} the owner ${uid}:${gid} the image asks for: compose as root`, { path: real, uid, gid });
      }
      throw ioError(err, 'chown', real);
    }
  }

  private setXattr(real: string, x: Xattr): void {
    try {
      setAttributeSync(real, x.name, x.value);
    } catch (err) {
      throw new StrataError('IO', `cannot set xattr ${x.name} on ${real}: ${(err as Error).message} (the staging filesystem must support it; try --workdir on another filesystem)`, { path: real, xattr: x.name });
    }
  }

  /** Owner first, then mode (chown clears setuid bits), then xattrs. */
  applyMeta(real: string, meta: EntryMeta, _isDir: boolean): void {
    this.chown(real, meta.uid, meta.gid);
    try {
      fs.chmodSync(real, meta.mode & 0o7777);
    } catch (err) {
      throw ioError(err, 'chmod', real);
    }
    for (const x of meta.xattrs) this.setXattr(real, x);
  }

  /** True when the path (symlinks followed in the tree) is a directory. */
  isDirectory(parts: string[]): boolean {
    const real = this.realPath(parts, true);
    return real !== null && !!this.lstat(real)?.isDirectory();
  }

  /** Reads a file of the tree following symlinks in root; null when it does not exist. */
  readFile(parts: string[]): Buffer | null {
    const real = this.realPath(parts, true);
    if (real === null) return null;
    const st = this.lstat(real);
    if (!st?.isFile()) return null;
    return fs.readFileSync(real);
  }
}
