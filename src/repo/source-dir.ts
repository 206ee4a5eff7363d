// Reads a directory on disk into an MDir, handing every file to the object
// writer as soon as it is seen. Hardlinked files are hashed once.

import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import path from 'node:path';
import { listAttributesSync, getAttributeSync } from './xattr.js';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type Xattr, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../core/objects.js';
import { type MDir, type SourceOptions, type SourceStats, type StageFn, applyOwner } from './mtree.js';

export function readXattrs(file: string): Xattr[] {
  let names: string[];
  try {
    names = listAttributesSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String((err as Error).message);
    if (/ENOTSUP|EOPNOTSUPP|not supported/i.test(code)) return [];
    throw ioError(err, 'list xattrs of', file);
  }
  if (names.length === 0) return [];
  const out: Xattr[] = [];
  for (const name of names) {
    const value = getAttributeSync(file, name);
    if (value) out.push({ name, value: Buffer.from(value) });
  }
  return out;
}

const KIND_NAMES: Record<number, string> = {
  0o140000: 'socket',
  0o010000: 'fifo',
  0o020000: 'character device',
  0o060000: 'block device',
};

/** Yield to the event loop now and then so workers get their first jobs early. */
const YIELD_EVERY = 256;

export async function readSourceDir(root: string, opts: SourceOptions, stage: StageFn, stats: SourceStats): Promise<MDir> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('SOURCE_NOT_FOUND', `nothing to commit: ${root} does not exist`, { path: root });
    throw ioError(err, 'read', root);
  }
  if (!st.isDirectory()) throw new StrataError('SOURCE_NOT_FOUND', `${root} is not a directory or a tarball`, { path: root });

  const hardlinks = new Map<string, Promise<Checksum>>();
  let sinceYield = 0;

  const dirMeta = (p: string, s: fs.Stats) =>
    applyOwner({ uid: s.uid, gid: s.gid, mode: s.mode, xattrs: opts.noXattrs ? [] : readXattrs(p) }, opts);

  const walk = async (dirPath: string, dirStat: fs.Stats): Promise<MDir> => {
    const dir: MDir = { kind: 'dir', meta: dirMeta(dirPath, dirStat), entries: new Map() };
    stats.dirs++;
    let rawNames: Buffer[];
    try {
      rawNames = fs.readdirSync(dirPath, { encoding: 'buffer' });
    } catch (err) {
      throw ioError(err, 'list', dirPath);
    }
    for (const raw of rawNames) {
      // Tree entry names are GVariant strings: they must be valid UTF-8.
      if (!isUtf8(raw)) {
        throw new StrataError('UNSUPPORTED_FILE', `cannot commit ${path.join(dirPath, raw.toString('latin1'))}: its name is not valid UTF-8`, { path: dirPath });
      }
      const name = raw.toString('utf8');
      const p = path.join(dirPath, name);
      let s: fs.Stats;
      try {
        s = fs.lstatSync(p);
      } catch (err) {
        throw ioError(err, 'stat', p);
      }
      const fmt = s.mode & S_IFMT;
      if (fmt === S_IFDIR) {
        dir.entries.set(name, await walk(p, s));
        continue;
      }
      if (fmt !== S_IFREG && fmt !== S_IFLNK) {
        const kind = KIND_NAMES[fmt] ?? 'special file';
        if (opts.skipSpecial) {
          stats.skipped.push(path.relative(root, p));
          continue;
        }
        throw new StrataError('UNSUPPORTED_FILE', `cannot commit ${kind} ${p}: OS trees hold only files, directories and symlinks (use --skip-special to leave it out)`, { path: p, kind });
      }
      const key = s.nlink > 1 && fmt === S_IFREG ? `${s.dev}:${s.ino}` : '';
      const linked = key ? hardlinks.get(key) : undefined;
      const meta = applyOwner({
        uid: s.uid,
        gid: s.gid,
        mode: s.mode,
        symlinkTarget: fmt === S_IFLNK ? readLink(p) : '',
        xattrs: opts.noXattrs ? [] : readXattrs(p),
      }, opts);
      const size = fmt === S_IFREG ? s.size : 0;
      let checksum: Promise<Checksum>;
      if (linked) {
        checksum = linked;
      } else {
        checksum = stage({ source: fmt === S_IFREG ? p : undefined, meta, size });
        checksum.catch(() => undefined); // observed later by the commit
        if (key) hardlinks.set(key, checksum);
      }
      if (fmt === S_IFLNK) stats.symlinks++;
      else {
        stats.files++;
        stats.bytes += size;
      }
      dir.entries.set(name, { kind: 'file', checksum, meta, size });
      if (++sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    return dir;
  };
  return walk(root, st);
}

function readLink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch (err) {
    throw ioError(err, 'read symlink', p);
  }
}
