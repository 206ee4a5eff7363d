// The /etc digest a device reports, so the fleet server can tell which
// devices' configuration drifted from the expected one. It is a sha256 over
// one line per entry below /etc, sorted by path (bytes of UTF-8):
//
//   strata-etc-digest v1\n                     (once, first)
//   <type> <mode> <uid>:<gid> <payload> <path>\n
//
// type: f (regular file), d (directory), l (symlink), o (anything else);
// mode: the permission bits in octal, 4 digits (0644, 4755);
// payload: sha256 hex of the content (f), the link target as a JSON string
// (l), '-' otherwise; path: relative to /etc, '/'-separated, as a JSON string.
// Times, inode numbers, hardlinks and xattrs are left out: they differ
// between devices with the same configuration. The same tree gives the same
// digest on any machine; any change of a path, mode, owner or content
// changes it. `strata agent etc-digest DIR` prints it for a directory.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../../errors.js';

export interface EtcEntry {
  /** Relative to /etc, '/'-separated. */
  path: string;
  type: 'f' | 'd' | 'l' | 'o';
  mode: number;
  uid: number;
  gid: number;
  /** sha256 hex of a file's content, a symlink's target, or null. */
  payload: string | null;
}

const HEADER = 'strata-etc-digest v1\n';

/** The line an entry contributes (exported for the docs and tests). */
export function etcDigestLine(e: EtcEntry): string {
  const payload = e.type === 'f' ? e.payload : e.type === 'l' ? JSON.stringify(e.payload ?? '') : '-';
  return `${e.type} ${(e.mode & 0o7777).toString(8).padStart(4, '0')} ${e.uid}:${e.gid} ${payload} ${JSON.stringify(e.path)}\n`;
}

/** Pure: the digest of a set of entries, whatever order they come in. */
export function etcDigest(entries: readonly EtcEntry[]): string {
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const h = createHash('sha256').update(HEADER);
  for (const e of sorted) h.update(etcDigestLine(e));
  return h.digest('hex');
}

/** Reads the entries below `dir` (not following symlinks). */
export function readEtcEntries(dir: string): EtcEntry[] {
  const out: EtcEntry[] = [];
  const walk = (abs: string, rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch (err) {
      throw ioError(err, 'read', abs);
    }
    for (const name of names) {
      const p = path.join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(p);
      const base = { path: r, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isFile()) {
        let content: Buffer;
        try {
          content = fs.readFileSync(p);
        } catch (err) {
          throw ioError(err, 'read', p);
        }
        out.push({ ...base, type: 'f', payload: createHash('sha256').update(content).digest('hex') });
      } else if (st.isDirectory()) {
        out.push({ ...base, type: 'd', payload: null });
        walk(p, r);
      } else if (st.isSymbolicLink()) {
        out.push({ ...base, type: 'l', payload: fs.readlinkSync(p) });
      } else {
        out.push({ ...base, type: 'o', payload: null });
      }
    }
  };
  walk(dir, '');
  return out;
}

/** The digest of a directory tree (a deployment's /etc). */
export function etcDigestOfDir(dir: string): string {
  return etcDigest(readEtcEntries(dir));
}
