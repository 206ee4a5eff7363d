// Putting inputs into the staging tree: tarballs (base, tar layers, a .deb's
// data.tar, OCI layers with their whiteouts) and directories.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import { TarReader, type TarEntry, safeTarPath } from '../core/tar.js';
import { openTarball } from '../repo/source-tar.js';
import { readXattrs } from '../repo/source-dir.js';
import { type EntryMeta, type StagingTree } from './tree.js';

export interface TarApplyOptions {
  /** OCI layer rules: `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` empties its directory of them. */
  whiteouts?: boolean;
  /** Directories that exist keep their owner and mode, as dpkg leaves them (tar and OCI layers set them). */
  keepExistingDirs?: boolean;
  /** Called with every path the tarball puts in the tree (for a package's file list); may throw to refuse it. */
  onPath?: (parts: string[], entry: TarEntry) => void;
  /** Called before an entry other than a directory is written, while what it replaces is still there (layering's conflict check). */
  beforeWrite?: (parts: string[], entry: TarEntry) => void;
}

export interface ApplyStats {
  entries: number;
  bytes: number;
  removed: number;
}

const SPECIAL: Partial<Record<TarEntry['type'], string>> = {
  'char-device': 'character device',
  'block-device': 'block device',
  fifo: 'fifo',
};

const OPAQUE = '.wh..wh..opq';
const WHITEOUT = '.wh.';

function metaOf(e: TarEntry): EntryMeta {
  return { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, xattrs: e.xattrs };
}

export async function applyTarball(tree: StagingTree, file: string, opts: TarApplyOptions = {}): Promise<ApplyStats> {
  const input = openTarball(file);
  const reader = new TarReader();
  const stats: ApplyStats = { entries: 0, bytes: 0, removed: 0 };
  /** Paths this tarball created: an opaque directory keeps these and drops what lower layers had. */
  const created = new Set<string>();
  let open: { real: string; fd: number; meta: EntryMeta } | null = null;

  const removeLower = (dirParts: string[]): void => {
    const real = tree.realPath(dirParts, true);
    if (real === null || !tree.lstat(real)?.isDirectory()) return;
    for (const name of fs.readdirSync(real)) {
      if (created.has([...dirParts, name].join('/'))) continue;
      fs.rmSync(path.join(real, name), { recursive: true, force: true });
      stats.removed++;
    }
  };

  const onEntry = (entry: TarEntry): void => {
    const parts = safeTarPath(entry.path);
    stats.entries++;
    const name = parts[parts.length - 1] ?? '';
    if (opts.whiteouts && name.startsWith(WHITEOUT)) {
      const dir = parts.slice(0, -1);
      if (name === OPAQUE) removeLower(dir);
      else {
        const victim = name.slice(WHITEOUT.length);
        if (victim === '' || victim === '.' || victim === '..') throw new StrataError('UNSAFE_PATH', `whiteout ${JSON.stringify(entry.path)} names no entry`, { path: entry.path });
        if (tree.remove([...dir, victim])) stats.removed++;
      }
      return;
    }
    const special = SPECIAL[entry.type];
    if (special) {
      throw new StrataError('UNSUPPORTED_FILE', `${special} /${parts.join('/')} cannot go into an OS tree (only files, directories and symlinks); leave it out of the input`, { path: parts.join('/'), kind: special });
    }
    created.add(parts.join('/'));
    if (entry.type !== 'directory') opts.beforeWrite?.(parts, entry);
    switch (entry.type) {
      case 'directory':
        if (!(opts.keepExistingDirs && tree.isDirectory(parts))) tree.mkdir(parts, metaOf(entry));
        opts.onPath?.(parts, entry);
        return;
      case 'symlink':
        // Symlinks cannot carry user.* xattrs on Linux; tar writers do not give them any.
        tree.symlink(parts, entry.linkpath, entry.uid, entry.gid);
        opts.onPath?.(parts, entry);
        return;
      case 'hardlink':
        tree.hardlink(parts, safeTarPath(entry.linkpath));
        opts.onPath?.(parts, entry);
        return;
      case 'file': {
        const f = tree.openFile(parts);
        open = { ...f, meta: metaOf(entry) };
        stats.bytes += entry.size;
        opts.onPath?.(parts, entry);
        return;
      }
    }
  };

  try {
    try {
      for await (const chunk of input.chunks) {
        for (const ev of reader.push(chunk as Buffer)) {
          if (ev.kind === 'entry') onEntry(ev.entry);
          else if (ev.kind === 'data' && open) {
            const o: { real: string; fd: number } = open;
            for (let off = 0; off < ev.bytes.length; ) off += fs.writeSync(o.fd, ev.bytes, off);
          } else if (ev.kind === 'entry-end' && open) {
            const o: { real: string; fd: number; meta: EntryMeta } = open;
            open = null;
            tree.finishFile(o, o.meta);
          }
        }
      }
    } catch (err) {
      if (err instanceof StrataError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (typeof e?.code === 'string' && e.code.startsWith('Z_')) throw new StrataError('TAR_MALFORMED', `cannot decompress ${file}: gzip data is corrupt or truncated`, { path: file });
      throw ioError(err, 'read', file);
    }
    await input.finish();
    reader.end();
    return stats;
  } finally {
    input.close();
    const o = open as { fd: number } | null;
    if (o) fs.closeSync(o.fd);
  }
}

const KIND_NAMES: Record<number, string> = {
  0o140000: 'socket',
  0o010000: 'fifo',
  0o020000: 'character device',
  0o060000: 'block device',
};

/**
 * Copies a directory into the tree: owners, modes, xattrs, symlinks and
 * hardlinks as they are. The source directory's own metadata becomes the
 * tree root's only for a base (`asRoot`); a layer's folder is just a folder.
 */
export function applyDir(tree: StagingTree, source: string, asRoot = false): ApplyStats {
  const stats: ApplyStats = { entries: 0, bytes: 0, removed: 0 };
  let st: fs.Stats;
  try {
    st = fs.lstatSync(source);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('SOURCE_NOT_FOUND', `${source} does not exist`, { path: source });
    throw ioError(err, 'read', source);
  }
  if (!st.isDirectory()) throw new StrataError('SOURCE_NOT_FOUND', `${source} is not a directory`, { path: source });
  const inodes = new Map<string, string[]>();
  const meta = (p: string, s: fs.Stats): EntryMeta => ({ mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, xattrs: readXattrs(p) });

  const walk = (dir: string, parts: string[], s: fs.Stats): void => {
    if (parts.length > 0 || asRoot) tree.mkdir(parts, meta(dir, s));
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort();
    } catch (err) {
      throw ioError(err, 'list', dir);
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const cs = fs.lstatSync(p);
      const childParts = [...parts, name];
      stats.entries++;
      if (cs.isDirectory()) walk(p, childParts, cs);
      else if (cs.isSymbolicLink()) tree.symlink(childParts, fs.readlinkSync(p), cs.uid, cs.gid);
      else if (cs.isFile()) {
        const key = cs.nlink > 1 ? `${cs.dev}:${cs.ino}` : '';
        const first = key ? inodes.get(key) : undefined;
        if (first) tree.hardlink(childParts, first);
        else {
          tree.copyFile(childParts, p, meta(p, cs));
          stats.bytes += cs.size;
          if (key) inodes.set(key, childParts);
        }
      } else {
        const kind = KIND_NAMES[cs.mode & 0o170000] ?? 'special file';
        throw new StrataError('UNSUPPORTED_FILE', `${kind} ${p} cannot go into an OS tree (only files, directories and symlinks); leave it out of the input`, { path: p, kind });
      }
    }
  };
  walk(source, [], st);
  return stats;
}
