// The OSTree layout a composed tree must have: default config in /usr/etc
// (the device merges it into /etc), and an empty /var whose content is
// described by a tmpfiles.d snippet, created at boot when missing:
// directories (`d`) and symlinks (`L`) as lines, files (`C`) copied from
// /usr/share/factory/var. `unassemble` turns a composed commit checked out
// as a base back into the plain layout, so layers see /etc and /var again.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import type { StagingTree } from './tree.js';

export const VAR_TMPFILES = 'usr/lib/tmpfiles.d/strata-var.conf';
export const FACTORY_VAR = 'usr/share/factory/var';

const HEADER = '# Written by strata compose: /var as the image had it. OSTree keeps /var out of\n# the commit; systemd-tmpfiles creates what is missing at boot.\n';

const KIND_NAMES: Record<number, string> = {
  0o140000: 'socket',
  0o010000: 'fifo',
  0o020000: 'character device',
  0o060000: 'block device',
};

/** Refuses what cannot be in an immutable tree (devices, sockets, fifos), naming the first one found. */
export function checkSpecialFiles(root: string): void {
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (!st.isFile() && !st.isSymbolicLink()) {
        const kind = KIND_NAMES[st.mode & 0o170000] ?? 'special file';
        const rel = '/' + path.relative(root, p);
        throw new StrataError('UNSUPPORTED_FILE', `the tree holds the ${kind} ${rel}; an immutable OS tree holds only files, directories and symlinks (remove it, e.g. with 'remove: [${rel.slice(1)}]')`, { path: rel, kind });
      }
    }
  };
  walk(root);
}

/** systemd-tmpfiles field escaping: whitespace, backslash, quotes and control bytes as \xNN. */
function escapeField(p: string): string {
  return p.replace(/[\s\\"'\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function unescapeField(p: string): string {
  return p.replace(/\\x([0-9a-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export interface TmpfilesLine {
  type: 'd' | 'L' | 'C';
  /** Absolute path under /var. */
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** L: the symlink target; C: the factory file. */
  arg?: string;
}

export function formatTmpfiles(lines: TmpfilesLine[]): string {
  const sorted = [...lines].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const body = sorted.map((l) => {
    const p = escapeField(l.path);
    if (l.type === 'd') return `d ${p} ${(l.mode ?? 0o755).toString(8).padStart(4, '0')} ${l.uid ?? 0} ${l.gid ?? 0} -`;
    if (l.type === 'L') return `L ${p} - ${l.uid ?? 0} ${l.gid ?? 0} - ${escapeField(l.arg ?? '')}`;
    return `C ${p} - - - - ${escapeField(l.arg ?? '')}`;
  });
  return HEADER + body.join('\n') + '\n';
}

export function parseTmpfiles(text: string): TmpfilesLine[] {
  const out: TmpfilesLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    const type = f[0];
    const p = unescapeField(f[1] ?? '');
    if (type === 'd') out.push({ type, path: p, mode: parseInt(f[2], 8), uid: Number(f[3]), gid: Number(f[4]) });
    else if (type === 'L') out.push({ type, path: p, uid: Number(f[3]), gid: Number(f[4]), arg: unescapeField(f[6] ?? '') });
    else if (type === 'C') out.push({ type, path: p, arg: unescapeField(f[6] ?? '') });
  }
  return out;
}

export interface AssembleStats {
  varDirs: number;
  varSymlinks: number;
  varFiles: number;
}

function move(from: string, to: string): void {
  try {
    fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
    fs.rmSync(to, { recursive: true, force: true });
    fs.renameSync(from, to);
  } catch (err) {
    throw ioError(err, 'move', from);
  }
}

/** Makes missing directories of a tree path as root:root 0755 (umask-proof). */
function ensureDirs(root: string, rel: string): void {
  let cur = root;
  for (const part of rel.split('/')) {
    cur = path.join(cur, part);
    if (!fs.existsSync(cur)) {
      fs.mkdirSync(cur);
      fs.chmodSync(cur, 0o755);
      fs.lchownSync(cur, 0, 0);
    }
  }
}

/** /etc to /usr/etc, /var into the tmpfiles snippet and the factory. */
export function assemble(tree: StagingTree): AssembleStats {
  const root = tree.root;
  const stats: AssembleStats = { varDirs: 0, varSymlinks: 0, varFiles: 0 };
  const etc = path.join(root, 'etc');
  const etcSt = tree.lstat(etc);
  if (etcSt) {
    if (!etcSt.isDirectory()) throw new StrataError('TREE_LAYOUT', '/etc is not a directory; an OSTree tree keeps its default config in /usr/etc', { path: '/etc' });
    if (tree.lstat(path.join(root, 'usr/etc'))) throw new StrataError('TREE_LAYOUT', 'the tree has both /etc and /usr/etc; give the default config in /etc only (compose moves it to /usr/etc)', { path: '/usr/etc' });
    const usr = tree.lstat(path.join(root, 'usr'));
    if (usr && !usr.isDirectory()) throw new StrataError('TREE_LAYOUT', '/usr is not a directory', { path: '/usr' });
    ensureDirs(root, 'usr');
    move(etc, path.join(root, 'usr/etc'));
  }

  const varDir = path.join(root, 'var');
  const varSt = tree.lstat(varDir);
  if (!varSt) return stats;
  if (!varSt.isDirectory()) throw new StrataError('TREE_LAYOUT', '/var is not a directory', { path: '/var' });
  const lines = new Map<string, TmpfilesLine>();
  const snippet = path.join(root, VAR_TMPFILES);
  if (tree.lstat(snippet)?.isFile()) for (const l of parseTmpfiles(fs.readFileSync(snippet, 'utf8'))) lines.set(l.path, l);

  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const rel = path.relative(root, p);
      const abs = '/' + rel;
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        lines.set(abs, { type: 'd', path: abs, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
        stats.varDirs++;
        walk(p);
      } else if (st.isSymbolicLink()) {
        lines.set(abs, { type: 'L', path: abs, uid: st.uid, gid: st.gid, arg: fs.readlinkSync(p) });
        stats.varSymlinks++;
      } else {
        const factory = `${FACTORY_VAR}/${path.relative(varDir, p)}`;
        ensureDirs(root, path.dirname(factory));
        move(p, path.join(root, factory));
        lines.set(abs, { type: 'C', path: abs, arg: '/' + factory });
        stats.varFiles++;
      }
    }
  };
  walk(varDir);
  for (const name of fs.readdirSync(varDir)) fs.rmSync(path.join(varDir, name), { recursive: true, force: true });
  if (lines.size > 0) {
    ensureDirs(root, path.dirname(VAR_TMPFILES));
    fs.rmSync(snippet, { force: true });
    fs.writeFileSync(snippet, formatTmpfiles([...lines.values()]), { mode: 0o644 });
    fs.chmodSync(snippet, 0o644);
    fs.lchownSync(snippet, 0, 0);
  }
  return stats;
}

/** The reverse, for a base that is a composed commit: /usr/etc back to /etc, /var back from the snippet. */
export function unassemble(tree: StagingTree): void {
  const root = tree.root;
  const usrEtc = path.join(root, 'usr/etc');
  if (tree.lstat(usrEtc)?.isDirectory()) {
    if (tree.lstat(path.join(root, 'etc'))) throw new StrataError('TREE_LAYOUT', 'the base has both /etc and /usr/etc', { path: '/usr/etc' });
    move(usrEtc, path.join(root, 'etc'));
  }
  const snippet = path.join(root, VAR_TMPFILES);
  if (!tree.lstat(snippet)?.isFile()) return;
  const lines = parseTmpfiles(fs.readFileSync(snippet, 'utf8')).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  ensureDirs(root, 'var');
  for (const l of lines) {
    if (!l.path.startsWith('/var/')) continue;
    const p = path.join(root, l.path);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (l.type === 'd') {
      if (!fs.existsSync(p)) fs.mkdirSync(p);
      fs.lchownSync(p, l.uid ?? 0, l.gid ?? 0);
      fs.chmodSync(p, l.mode ?? 0o755);
    } else if (l.type === 'L') {
      fs.rmSync(p, { force: true, recursive: true });
      fs.symlinkSync(l.arg ?? '', p);
      fs.lchownSync(p, l.uid ?? 0, l.gid ?? 0);
    } else if (l.arg?.startsWith(`/${FACTORY_VAR}/`)) {
      const from = path.join(root, l.arg);
      if (tree.lstat(from)) move(from, p);
    }
  }
  fs.rmSync(snippet);
  // An emptied factory directory goes too, so a recompose writes exactly what it had.
  const removeEmpty = (dir: string): void => {
    if (!tree.lstat(dir)?.isDirectory()) return;
    for (const name of fs.readdirSync(dir)) removeEmpty(path.join(dir, name));
    if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
  };
  removeEmpty(path.join(root, FACTORY_VAR));
}
