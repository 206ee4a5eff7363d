// The object store: opening and creating repositories, and reading objects.
// Layout and config follow OSTree (docs/repo.md): `config`, `objects/xx/…`,
// `refs/{heads,remotes,mirrors}`, `tmp/`, `state/`, `extensions/`.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { getAttributeSync } from './xattr.js';
import { StrataError, ioError } from '../errors.js';
import {
  type Checksum, type Commit, type DirMeta, type DirTree, type FileMeta, type ObjectType, type Metadata,
  S_IFLNK, S_IFMT, archiveInflateOptions, objectPath, parseArchiveHeader, parseBareUserMeta, parseCommit, parseDirMeta, parseDirTree, parseVardict,
} from '../core/objects.js';

export type RepoMode = 'archive' | 'bare-user';
export const REPO_MODES: readonly RepoMode[] = ['archive', 'bare-user'];

/** Name of the xattr that holds a bare-user object's real metadata. */
export const BAREUSER_XATTR = 'user.ostreemeta';

export interface FileObject {
  meta: FileMeta;
  /** Size of the content in bytes (0 for symlinks). */
  size: number;
}

export class Repo {
  readonly path: string;
  readonly mode: RepoMode;
  readonly config: Map<string, Map<string, string>>;
  /** Small caches: trees and metadata are immutable, so caching is always right. */
  private readonly dirtreeCache = new Map<Checksum, DirTree>();
  private readonly dirmetaCache = new Map<Checksum, DirMeta>();

  private constructor(repoPath: string, mode: RepoMode, config: Map<string, Map<string, string>>) {
    this.path = repoPath;
    this.mode = mode;
    this.config = config;
  }

  get archive(): boolean {
    return this.mode === 'archive';
  }

  /** Opens an existing repository (strata- or ostree-made). */
  static open(repoPath: string): Repo {
    const abs = path.resolve(repoPath);
    let text: string;
    try {
      text = fs.readFileSync(path.join(abs, 'config'), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new StrataError('REPO_NOT_FOUND', `no repository at ${abs} (no config file); create one with 'strata init --repo ${repoPath}'`, { path: abs });
      }
      throw ioError(err, 'read', path.join(abs, 'config'));
    }
    const config = parseIni(text);
    const rawMode = config.get('core')?.get('mode');
    const version = config.get('core')?.get('repo_version');
    if (version !== undefined && version !== '1') {
      throw new StrataError('REPO_CONFIG', `repository ${abs} has repo_version=${version}; strata reads version 1`, { path: abs });
    }
    const mode = rawMode === 'archive' || rawMode === 'archive-z2' ? 'archive' : rawMode === 'bare-user' ? 'bare-user' : undefined;
    if (!mode) {
      throw new StrataError('REPO_CONFIG', `repository ${abs} has mode '${rawMode ?? '(none)'}'; strata supports archive and bare-user`, { path: abs, mode: rawMode });
    }
    return new Repo(abs, mode, config);
  }

  /** Creates a repository, or opens it when one of the same mode is already there. */
  static init(repoPath: string, mode: RepoMode): { repo: Repo; created: boolean } {
    const abs = path.resolve(repoPath);
    if (fs.existsSync(path.join(abs, 'config'))) {
      const existing = Repo.open(abs);
      if (existing.mode !== mode) {
        throw new StrataError('REPO_EXISTS', `a ${existing.mode} repository already exists at ${abs}`, { path: abs, mode: existing.mode });
      }
      return { repo: existing, created: false };
    }
    try {
      fs.mkdirSync(abs, { recursive: true });
      for (const dir of ['objects', 'tmp', 'tmp/cache', 'refs/heads', 'refs/remotes', 'refs/mirrors', 'state', 'extensions']) {
        fs.mkdirSync(path.join(abs, dir), { recursive: true, mode: 0o755 });
      }
      // The config lands last and atomically: a repo exists exactly when it does.
      const text = `[core]\nrepo_version=1\nmode=${mode === 'archive' ? 'archive-z2' : 'bare-user'}\n`;
      writeFileAtomic(path.join(abs, 'config'), text);
    } catch (err) {
      throw ioError(err, 'create repository at', abs);
    }
    return { repo: Repo.open(abs), created: true };
  }

  objectFile(checksum: Checksum, type: ObjectType): string {
    // Plain concatenation: this runs once per file in checkout and fsck.
    return `${this.path}/${objectPath(checksum, type, this.archive)}`;
  }

  /** The directory an object lives in, `objects/XX`. */
  objectDir(checksum: Checksum): string {
    return `${this.path}/objects/${checksum.slice(0, 2)}`;
  }

  hasObject(checksum: Checksum, type: ObjectType): boolean {
    try {
      fs.accessSync(this.objectFile(checksum, type));
      return true;
    } catch {
      return false;
    }
  }

  /** Reads a metadata object's raw bytes, or throws OBJECT_MISSING. */
  readMetadataBytes(checksum: Checksum, type: Exclude<ObjectType, 'file'>): Buffer {
    const file = this.objectFile(checksum, type);
    try {
      return fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new StrataError('OBJECT_MISSING', `${type} object ${checksum} is missing from ${this.path}`, { checksum, type, path: file });
      }
      throw ioError(err, 'read', file);
    }
  }

  loadCommit(checksum: Checksum): Commit {
    return withObject(checksum, 'commit', () => parseCommit(this.readMetadataBytes(checksum, 'commit')));
  }

  /** Detached metadata (signatures live here), or null when there is none. */
  loadCommitMeta(checksum: Checksum): Metadata | null {
    if (!this.hasObject(checksum, 'commitmeta')) return null;
    return withObject(checksum, 'commitmeta', () => parseVardict(this.readMetadataBytes(checksum, 'commitmeta')));
  }

  loadDirTree(checksum: Checksum): DirTree {
    let t = this.dirtreeCache.get(checksum);
    if (!t) {
      t = withObject(checksum, 'dirtree', () => parseDirTree(this.readMetadataBytes(checksum, 'dirtree')));
      if (this.dirtreeCache.size > 4096) this.dirtreeCache.clear();
      this.dirtreeCache.set(checksum, t);
    }
    return t;
  }

  loadDirMeta(checksum: Checksum): DirMeta {
    let m = this.dirmetaCache.get(checksum);
    if (!m) {
      m = withObject(checksum, 'dirmeta', () => parseDirMeta(this.readMetadataBytes(checksum, 'dirmeta')));
      if (this.dirmetaCache.size > 4096) this.dirmetaCache.clear();
      this.dirmetaCache.set(checksum, m);
    }
    return m;
  }

  /** A content object's metadata and size, without reading its content. */
  loadFileInfo(checksum: Checksum): FileObject {
    const file = this.objectFile(checksum, 'file');
    return withObject(checksum, 'file', () => {
      if (this.archive) {
        const fd = openObject(file, checksum);
        try {
          const head = Buffer.alloc(4096);
          const n = fs.readSync(fd, head, 0, head.length, 0);
          let buf = head.subarray(0, n);
          if (n >= 4 && buf.readUInt32BE(0) + 8 > n) {
            const need = buf.readUInt32BE(0) + 8;
            if (need > 16 * 1024 * 1024) throw new StrataError('OBJECT_MALFORMED', `file object ${checksum} has an implausible ${need}-byte header`);
            buf = Buffer.alloc(need);
            fs.readSync(fd, buf, 0, need, 0);
          }
          const h = parseArchiveHeader(buf);
          return { meta: h.meta, size: (h.meta.mode & S_IFMT) === S_IFLNK ? 0 : h.size };
        } finally {
          fs.closeSync(fd);
        }
      }
      const meta = this.loadBareUserMeta(checksum);
      return { meta, size: (meta.mode & S_IFMT) === S_IFLNK ? 0 : fs.statSync(file).size };
    });
  }

  /** A bare-user object's metadata (from user.ostreemeta), without a stat. */
  loadBareUserMeta(checksum: Checksum): FileMeta {
    const file = this.objectFile(checksum, 'file');
    return withObject(checksum, 'file', () => {
      const meta = parseBareUserMeta(readBareUserXattr(file, checksum));
      const symlinkTarget = (meta.mode & S_IFMT) === S_IFLNK ? readBareUserSymlink(file, checksum) : '';
      return { uid: meta.uid, gid: meta.gid, mode: meta.mode, xattrs: meta.xattrs, symlinkTarget };
    });
  }

  /** A content object's metadata and (for regular files) its whole content. */
  loadFile(checksum: Checksum): { meta: FileMeta; content: Buffer | undefined } {
    const file = this.objectFile(checksum, 'file');
    return withObject(checksum, 'file', () => {
      if (this.archive) {
        const data = readObjectFile(file, checksum);
        const h = parseArchiveHeader(data);
        if ((h.meta.mode & S_IFMT) === S_IFLNK) return { meta: h.meta, content: undefined };
        const content = inflateBody(data.subarray(h.bodyOffset), h.size, checksum);
        return { meta: h.meta, content };
      }
      const meta = parseBareUserMeta(readBareUserXattr(file, checksum));
      const data = readObjectFile(file, checksum);
      if ((meta.mode & S_IFMT) === S_IFLNK) return { meta: { ...meta, symlinkTarget: symlinkFromContent(data, checksum) }, content: undefined };
      return { meta: { ...meta, symlinkTarget: '' }, content: data };
    });
  }
}

export function inflateBody(body: Buffer, size: number, checksum: string): Buffer {
  try {
    const out = body.length === 0 && size === 0 ? Buffer.alloc(0) : zlib.inflateRawSync(body, archiveInflateOptions(size));
    if (out.length !== size) throw new Error(`${out.length} bytes, header says ${size}`);
    return out;
  } catch (err) {
    throw new StrataError('OBJECT_CORRUPT', `file object ${checksum}: compressed content is corrupt (${(err as Error).message})`, { checksum });
  }
}

function withObject<T>(checksum: Checksum, type: ObjectType, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StrataError && err.code === 'OBJECT_MALFORMED' && !('checksum' in err.data)) {
      throw new StrataError('OBJECT_MALFORMED', `${type} object ${checksum}: ${err.message}`, { checksum, type });
    }
    throw err;
  }
}

function openObject(file: string, checksum: Checksum): number {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StrataError('OBJECT_MISSING', `file object ${checksum} is missing`, { checksum, type: 'file', path: file });
    }
    throw ioError(err, 'open', file);
  }
}

function readObjectFile(file: string, checksum: Checksum): Buffer {
  const fd = openObject(file, checksum);
  try {
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function readBareUserXattr(file: string, checksum: string): Buffer {
  let raw: Buffer | null;
  try {
    raw = getAttributeSync(file, BAREUSER_XATTR);
  } catch (err) {
    if (!fs.existsSync(file)) throw new StrataError('OBJECT_MISSING', `file object ${checksum} is missing`, { checksum, type: 'file', path: file });
    throw ioError(err, 'read xattrs of', file);
  }
  if (!raw) {
    // The binding answers null, not ENOENT, for a file that is not there.
    if (!fs.existsSync(file)) throw new StrataError('OBJECT_MISSING', `file object ${checksum} is missing`, { checksum, type: 'file', path: file });
    throw new StrataError('OBJECT_MALFORMED', `file object ${checksum} has no ${BAREUSER_XATTR} xattr`, { checksum, type: 'file' });
  }
  return raw;
}

function readBareUserSymlink(file: string, checksum: Checksum): string {
  return symlinkFromContent(fs.readFileSync(file), checksum);
}

/** bare-user stores a symlink as a regular file holding its target and a NUL. */
export function symlinkFromContent(data: Buffer, checksum: string): string {
  const end = data.length > 0 && data[data.length - 1] === 0 ? data.length - 1 : data.length;
  if (end === 0 || data.indexOf(0) !== (end === data.length ? -1 : end)) {
    throw new StrataError('OBJECT_MALFORMED', `symlink object ${checksum} has an invalid target`, { checksum });
  }
  return data.toString('utf8', 0, end);
}

export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = out.get(header[1]) ?? new Map();
      out.set(header[1], section);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) continue;
    section.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Writes a small file crash-safely: temp name, fsync, rename, fsync the directory.
 * The temp file goes in `tmpDir` when given (same filesystem), so that a kill
 * never leaves it where readers look (ostree takes any file under refs/ for a ref).
 * `sync: false` skips both fsyncs, for a caller that syncs the whole
 * filesystem before anything points at the file (a deploy does).
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644, tmpDir = path.dirname(file), sync = true): void {
  const tmp = `${tmpDir}/${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    if (sync) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (sync) fsyncDir(path.dirname(file));
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
