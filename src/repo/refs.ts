// Refs: branch names stored as files under refs/heads (and refs/remotes/NAME
// for pulled refs), each holding a commit checksum and a newline.

import fs from 'node:fs';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, isChecksum } from '../core/objects.js';
import { type Repo, writeFileAtomic } from './repo.js';

/** OSTree's fragment rule (OSTREE_REF_FRAGMENT_REGEXP): ostree ignores refs named otherwise. */
const FRAGMENT = /^\w[-.\w]*$/;

/** A ref is `a/b/c` of fragments [A-Za-z0-9_][-._A-Za-z0-9]*; a remote ref is `remote:ref`. */
export function validateRefName(name: string): void {
  const colon = name.indexOf(':');
  const parts = (colon >= 0 ? [name.slice(0, colon), ...name.slice(colon + 1).split('/')] : name.split('/'));
  for (const p of parts) {
    if (!FRAGMENT.test(p)) {
      throw new StrataError('INVALID_REF', `invalid ref name '${name}': use fragments of letters, digits, '-', '_' and '.' separated by '/'`, { name });
    }
  }
}

function refFile(repo: Repo, name: string): string {
  validateRefName(name);
  const colon = name.indexOf(':');
  if (colon >= 0) return path.join(repo.path, 'refs', 'remotes', name.slice(0, colon), name.slice(colon + 1));
  return path.join(repo.path, 'refs', 'heads', name);
}

/** Fails early (before a commit stores anything) when the ref cannot be written. */
export function checkRefWritable(repo: Repo, name: string): void {
  const file = refFile(repo, name);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    throw new StrataError('INVALID_REF', `cannot use ref '${name}': refs ${name}/... already exist below it`, { name });
  }
}

export function readRef(repo: Repo, name: string): Checksum | null {
  const file = refFile(repo, name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return null;
    throw ioError(err, 'read ref', file);
  }
  const sum = text.trim();
  if (!isChecksum(sum)) throw new StrataError('INVALID_CHECKSUM', `ref ${name} holds '${sum.slice(0, 80)}', not a checksum`, { name });
  return sum;
}

/** Moves a ref crash-safely (temp file, fsync, rename): it reads old or new, never a mix. */
export function writeRef(repo: Repo, name: string, checksum: Checksum): void {
  const file = refFile(repo, name);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmpDir = path.join(repo.path, 'tmp');
    fs.mkdirSync(tmpDir, { recursive: true });
    writeFileAtomic(file, checksum + '\n', 0o644, tmpDir);
  } catch (err) {
    throw ioError(err, 'write ref', file);
  }
}

export function deleteRef(repo: Repo, name: string): boolean {
  const file = refFile(repo, name);
  try {
    fs.unlinkSync(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw ioError(err, 'delete ref', file);
  }
}

export interface RefEntry {
  name: string;
  checksum: Checksum;
}

/** Every ref, heads first then `remote:ref`, sorted by name. */
export function listRefs(repo: Repo): RefEntry[] {
  const out: RefEntry[] = [];
  const walk = (dir: string, prefix: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full, prefix + e.name + '/');
      else if (e.isFile()) {
        const sum = fs.readFileSync(full, 'utf8').trim();
        if (isChecksum(sum)) out.push({ name: prefix + e.name, checksum: sum });
      }
    }
  };
  walk(path.join(repo.path, 'refs', 'heads'), '');
  const remotes = path.join(repo.path, 'refs', 'remotes');
  let remoteNames: string[] = [];
  try {
    remoteNames = fs.readdirSync(remotes);
  } catch {
    // no remotes directory: no remote refs
  }
  for (const r of remoteNames) walk(path.join(remotes, r), r + ':');
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Resolves what a user typed to a commit: a full checksum, a unique prefix of
 * one (at least 4 hex digits), or a ref; each trailing `^` steps to the parent.
 */
export function resolveRev(repo: Repo, rev: string): Checksum {
  let carets = 0;
  while (rev.endsWith('^')) {
    rev = rev.slice(0, -1);
    carets++;
  }
  let sum = resolveBase(repo, rev);
  for (let i = 0; i < carets; i++) {
    const parent = repo.loadCommit(sum).parent;
    if (!parent) throw new StrataError('NO_PARENT', `commit ${sum} has no parent`, { checksum: sum });
    sum = parent;
  }
  return sum;
}

function resolveBase(repo: Repo, rev: string): Checksum {
  if (rev === '') throw new StrataError('INVALID_REF', 'empty ref or commit', {});
  if (isChecksum(rev)) return rev;
  if (/^[0-9a-f]{4,63}$/.test(rev)) {
    const matches = findCommitsByPrefix(repo, rev);
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw new StrataError('REF_NOT_FOUND', `'${rev}' is ambiguous: ${matches.length} commits start with it`, { rev });
  }
  let sum: Checksum | null = null;
  try {
    sum = readRef(repo, rev);
  } catch (err) {
    if (!(err instanceof StrataError && err.code === 'INVALID_REF')) throw err;
  }
  if (!sum) throw new StrataError('REF_NOT_FOUND', `no ref or commit '${rev}' in ${repo.path}`, { rev });
  return sum;
}

function findCommitsByPrefix(repo: Repo, prefix: string): Checksum[] {
  const dir = path.join(repo.path, 'objects', prefix.slice(0, 2));
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const rest = prefix.slice(2);
  return names
    .filter((n) => n.endsWith('.commit') && n.startsWith(rest))
    .map((n) => (prefix.slice(0, 2) + n.slice(0, -'.commit'.length)) as Checksum);
}
