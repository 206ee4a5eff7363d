// `strata checkout`: a commit (or a subtree of it) becomes a directory.
// From a bare-user repo files are hardlinked to their objects when the
// object's own inode already carries the right mode and owner and the file
// has no xattrs; otherwise (setuid files, other owners, xattrs, archive
// repos) they are copied. A new destination is built beside its final name
// and renamed into place, so it appears whole or not at all.

import fs from 'node:fs';
import path from 'node:path';
import { setAttributeSync } from '@napi-rs/xattr';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type FileMeta, type Xattr, S_IFLNK, S_IFMT } from '../core/objects.js';
import { Repo } from './repo.js';
import { resolveRev } from './refs.js';
import { resolveTreePath, splitTreePath } from './walk.js';

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
  onProgress?: (done: number) => void;
}

export interface CheckoutResult {
  commit: Checksum;
  dest: string;
  dirs: number;
  files: number;
  symlinks: number;
  hardlinked: number;
  copied: number;
  /** xattrs or owners the OS refused (e.g. when not root). */
  warnings: string[];
}

const isRoot = process.getuid?.() === 0;

export async function checkout(opts: CheckoutOptions): Promise<CheckoutResult> {
  const repo = Repo.open(opts.repo);
  const commit = resolveRev(repo, opts.rev);
  const node = resolveTreePath(repo, commit, opts.subpath ?? '/');
  const dest = path.resolve(opts.dest);
  const result: CheckoutResult = { commit, dest, dirs: 0, files: 0, symlinks: 0, hardlinked: 0, copied: 0, warnings: [] };

  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'inspect', dest);
  }
  const writer = new TreeWriter(repo, result, !!opts.union, !!opts.copy, opts.onProgress);

  if (node.kind === 'file') {
    // A single file: its name under dest (a directory) or dest itself.
    const name = splitTreePath(opts.subpath ?? '').pop() as string;
    const target = existing?.isDirectory() ? path.join(dest, name) : dest;
    if (!opts.union && fs.existsSync(target)) throw new StrataError('DEST_EXISTS', `${target} already exists (use --union to replace it)`, { dest: target });
    writer.writeFileAtomic(node.checksum, target);
    return result;
  }

  if (existing && !opts.union) {
    if (!existing.isDirectory() || fs.readdirSync(dest).length > 0) {
      throw new StrataError('DEST_EXISTS', `checkout destination ${dest} exists and is not empty (use --union to write into it)`, { dest });
    }
  }
  if (existing && opts.union) {
    if (!existing.isDirectory()) throw new StrataError('DEST_EXISTS', `${dest} exists and is not a directory`, { dest });
    writer.writeDir(node.tree, node.meta, dest, true);
    return result;
  }
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.strata-tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    writer.writeDir(node.tree, node.meta, tmp, false);
    fs.renameSync(tmp, dest);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err instanceof StrataError ? err : ioError(err, 'check out into', dest);
  }
  return result;
}

interface ObjectInfo {
  meta: FileMeta;
  /** True when a hardlink to the object gives the file its exact metadata. */
  linkable: boolean;
}

class TreeWriter {
  private readonly infos = new Map<Checksum, ObjectInfo>();
  private done = 0;

  constructor(
    private readonly repo: Repo,
    private readonly result: CheckoutResult,
    private readonly union: boolean,
    private readonly copy: boolean,
    private readonly onProgress?: (done: number) => void,
  ) {}

  private info(checksum: Checksum): ObjectInfo {
    let i = this.infos.get(checksum);
    if (!i) {
      const { meta } = this.repo.loadFileInfo(checksum);
      let linkable = false;
      if (!this.copy && !this.repo.archive && (meta.mode & S_IFMT) !== S_IFLNK && meta.xattrs.length === 0) {
        const st = fs.statSync(this.repo.objectFile(checksum, 'file'));
        linkable = (st.mode & 0o7777) === (meta.mode & 0o7777) && (!isRoot || (st.uid === meta.uid && st.gid === meta.gid));
      }
      i = { meta, linkable };
      this.infos.set(checksum, i);
    }
    return i;
  }

  writeDir(tree: Checksum, metaSum: Checksum, dir: string, mayExist: boolean): void {
    const meta = this.repo.loadDirMeta(metaSum);
    const t = this.repo.loadDirTree(tree);
    if (mayExist) {
      const st = lstatOrNull(dir);
      if (st && !st.isDirectory()) {
        fs.rmSync(dir, { force: true }); // the tree wins; never write through a symlink
        fs.mkdirSync(dir, 0o700);
      } else if (!st) fs.mkdirSync(dir, 0o700);
    } else {
      fs.mkdirSync(dir, 0o700);
    }
    this.result.dirs++;
    for (const f of t.files) this.writeFile(f.checksum, dir + '/' + f.name, mayExist);
    for (const d of t.dirs) this.writeDir(d.tree, d.meta, dir + '/' + d.name, mayExist && fs.existsSync(dir + '/' + d.name));
    // Mode last: a read-only directory must still receive its entries.
    this.applyOwnerAndXattrs(dir, meta.uid, meta.gid, meta.xattrs, false);
    fs.chmodSync(dir, meta.mode & 0o7777);
  }

  /** Replaces one file crash-safely (temp name + rename), for --union and single files. */
  writeFileAtomic(checksum: Checksum, target: string): void {
    const tmp = `${path.dirname(target)}/.${path.basename(target)}.strata-tmp-${process.pid}`;
    fs.rmSync(tmp, { force: true });
    this.writeFile(checksum, tmp, false);
    const st = lstatOrNull(target);
    if (st?.isDirectory()) fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(tmp, target);
  }

  private writeFile(checksum: Checksum, file: string, mayExist: boolean): void {
    if (mayExist && lstatOrNull(file)) {
      this.writeFileAtomic(checksum, file);
      return;
    }
    const { meta, linkable } = this.info(checksum);
    if ((meta.mode & S_IFMT) === S_IFLNK) {
      fs.symlinkSync(meta.symlinkTarget, file);
      if (isRoot) fs.lchownSync(file, meta.uid, meta.gid);
      if (meta.xattrs.length) this.applyOwnerAndXattrs(file, meta.uid, meta.gid, meta.xattrs, true);
      this.result.symlinks++;
    } else if (linkable) {
      try {
        fs.linkSync(this.repo.objectFile(checksum, 'file'), file);
        this.result.hardlinked++;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw ioError(err, 'link', file);
        this.copyOut(checksum, meta, file);
      }
      this.result.files++;
    } else {
      this.copyOut(checksum, meta, file);
      this.result.files++;
    }
    if (this.onProgress && ++this.done % 500 === 0) this.onProgress(this.done);
  }

  private copyOut(checksum: Checksum, meta: FileMeta, file: string): void {
    if (this.repo.archive) {
      const { content } = this.repo.loadFile(checksum);
      fs.writeFileSync(file, content ?? Buffer.alloc(0), { mode: 0o600, flag: 'wx' });
    } else {
      fs.copyFileSync(this.repo.objectFile(checksum, 'file'), file, fs.constants.COPYFILE_EXCL);
    }
    this.applyOwnerAndXattrs(file, meta.uid, meta.gid, meta.xattrs, false);
    fs.chmodSync(file, meta.mode & 0o7777); // after chown, which clears setuid bits
    fs.utimesSync(file, 0, 0);
    this.result.copied++;
  }

  private applyOwnerAndXattrs(file: string, uid: number, gid: number, xattrs: Xattr[], isLink: boolean): void {
    if (isRoot && !isLink) fs.chownSync(file, uid, gid);
    for (const x of xattrs) {
      try {
        setAttributeSync(file, x.name, x.value);
      } catch (err) {
        this.result.warnings.push(`could not set xattr ${x.name} on ${file}: ${(err as Error).message}`);
      }
    }
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
