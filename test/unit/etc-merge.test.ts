// The /etc three-way merge: OLD (old commit's usr/etc), CUR (the running
// /etc as the admin left it), NEW (new commit's usr/etc). Real repositories,
// commits and check-outs for every rule, and a property test of the planner
// on random small trees.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { getAttributeSync, setAttributeSync } from '@napi-rs/xattr';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Checksum, S_IFDIR, S_IFLNK, S_IFREG, sha256 } from '../../src/core/objects.js';
import { checkout } from '../../src/repo/checkout.js';
import { commit } from '../../src/repo/commit.js';
import { Repo } from '../../src/repo/repo.js';
import {
  type EtcEntry, type EtcMergePlan, type EtcTree,
  applyEtcMerge, mergeEtc, planEtcMerge, readEtcFromCommit, readEtcFromDisk, sameEtcEntry,
} from '../../src/sysroot/etc-merge.js';
import { codeOf } from '../helpers/errors.js';
import { ROOT, isRoot, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

function w(root: string, rel: string, content: string, mode = 0o644): string {
  const f = path.join(root, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, content);
  fs.chmodSync(f, mode);
  return f;
}

function ln(root: string, rel: string, target: string): void {
  const f = path.join(root, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.rmSync(f, { force: true });
  fs.symlinkSync(target, f);
}

function mkdir(root: string, rel: string, mode = 0o755): void {
  fs.mkdirSync(path.join(root, rel), { recursive: true });
  fs.chmodSync(path.join(root, rel), mode);
}

const rm = (root: string, rel: string): void => fs.rmSync(path.join(root, rel), { recursive: true, force: true });
const read = (root: string, rel: string): string => fs.readFileSync(path.join(root, rel), 'utf8');
const exists = (root: string, rel: string): boolean => fs.existsSync(path.join(root, rel)) || isLink(path.join(root, rel));
const modeOf = (root: string, rel: string): number => fs.lstatSync(path.join(root, rel)).mode & 0o7777;

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Commits `src` (a whole OS tree) and returns the commit. */
async function commitTree(repo: string, branch: string, src: string): Promise<Checksum> {
  return (await commit({ repo, branch, source: src, timestamp: 1_700_000_000 })).commit;
}

/** A copy check-out of a commit's usr/etc, as the deploy code makes `etc`. */
async function etcCopy(repo: string, rev: Checksum, dest: string): Promise<string> {
  await checkout({ repo, rev, dest, subpath: '/usr/etc', copy: true });
  return dest;
}

/** Paths left behind under a temp name by the apply step. */
function tempLeftovers(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((p) => path.basename(p).startsWith('.strata-etc-'));
}

// --------------------------------------------------------------- rule check

/** The test's own notion of equal entries, so that the rule check does not trust the code under test. */
function same(a: EtcEntry | undefined, b: EtcEntry | undefined): boolean {
  const key = (e: EtcEntry | undefined): string | undefined =>
    e && JSON.stringify([e.type, e.mode, e.uid, e.gid, e.target ?? null, e.checksum ?? null, e.xattrs.map((x) => [x.name, x.value.toString('hex')])]);
  return key(a) === key(b);
}

function ancestors(rel: string): string[] {
  if (rel === '') return [];
  const parts = rel.split('/');
  return parts.map((_, i) => parts.slice(0, i).join('/'));
}

const under = (rel: string, dir: string): boolean => dir === '' ? rel !== '' : rel.startsWith(dir + '/');

function subtreeSame(a: EtcTree, b: EtcTree, rel: string): boolean {
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    if ((p === rel || under(p, rel)) && !same(a.get(p), b.get(p))) return false;
  }
  return true;
}

/**
 * Checks a merged tree `res` against the rules, path by path, stated
 * directly rather than as the planner computes them.
 */
function checkRules(old: EtcTree, cur: EtcTree, next: EtcTree, res: EtcTree, plan: EtcMergePlan): void {
  const etc = (rel: string): string => (rel === '' ? '/etc' : `/etc/${rel}`);
  const conflictPaths = new Set(plan.conflicts.map((c) => c.path));
  expect(conflictPaths.size, 'one conflict per path').toBe(plan.conflicts.length);
  const all = new Set([...old.keys(), ...cur.keys(), ...next.keys(), ...res.keys()]);
  const expectedConflicts = new Set<string>();
  const expectedKept = new Set<string>();
  const expectedRemoved = new Set<string>();
  for (const p of all) {
    const [o, c, n, r] = [old.get(p), cur.get(p), next.get(p), res.get(p)];
    // The merged tree is a tree: every entry's parent is a directory.
    if (r && p !== '') expect(res.get(ancestors(p).pop() as string)?.type, `parent of ${p}`).toBe('dir');
    const blocker = ancestors(p).find((a) => cur.get(a)?.type !== 'dir');
    if (blocker !== undefined) {
      // Below something that is not a directory in CUR: one decision was made higher up.
      const oq = old.get(blocker);
      const cq = cur.get(blocker);
      if (oq?.type !== 'dir' && same(cq, oq)) expect(same(r, n), `${p} follows NEW below untouched ${blocker}`).toBe(true);
      else expect(r, `${p} gone with the admin's ${blocker}`).toBeUndefined();
      expect(conflictPaths.has(etc(p)), `no conflict reported below ${blocker} for ${p}`).toBe(false);
      continue;
    }
    const wholeDir = o?.type === 'dir' && c?.type !== 'dir';
    const touched = wholeDir || !same(c, o);
    if (touched) {
      expect(same(r, c), `${p} keeps the admin's version`).toBe(true);
      const upstreamChanged = wholeDir ? !subtreeSame(old, next, p) : !same(n, o);
      if (upstreamChanged && !same(n, c)) expectedConflicts.add(etc(p));
      if (!same(n, c)) (c ? expectedKept : expectedRemoved).add(etc(p));
    } else if (!same(r, n)) {
      // Untouched, yet not NEW: only a directory kept to hold the admin's entries below.
      expect(r?.type, `${p} follows NEW`).toBe('dir');
      expect(n?.type, `${p} follows NEW`).not.toBe('dir');
      expect(same(r, c), `${p} kept as the admin's directory`).toBe(true);
      expect([...res.keys()].some((q) => under(q, p)), `${p} holds kept entries`).toBe(true);
      expectedConflicts.add(etc(p));
    }
  }
  expect(new Set(conflictPaths)).toEqual(expectedConflicts);
  expect(new Set(plan.kept)).toEqual(expectedKept);
  expect(new Set(plan.removed)).toEqual(expectedRemoved);
}

// ------------------------------------------------------------- full scenario

/** The old OS tree: everything under usr/etc is a default the scenario plays with. */
function oldTree(root: string): void {
  w(root, 'usr/bin/app', '#!/bin/sh\n', 0o755);
  const e = (rel: string, content: string, mode = 0o644): string => w(root, `usr/etc/${rel}`, content, mode);
  e('untouched-changed', 'v1\n');
  e('untouched-removed', 'v1\n');
  e('local-edit', 'v1\n');
  e('local-deleted', 'v1\n');
  e('same-change', 'v1\n');
  e('modify-modify', 'v1\n');
  e('delete-modify', 'v1\n');
  e('modify-delete', 'v1\n');
  e('chmod-local', 'v1\n');
  e('chmod-upstream', 'v1\n');
  e('setuid-local', 'v1\n', 0o755);
  e('up-type', 'a file\n');
  ln(root, 'usr/etc/link-local', 'a');
  ln(root, 'usr/etc/link-upstream', 'a');
  ln(root, 'usr/etc/link-both', 'a');
  ln(root, 'usr/etc/link-to-file', 'a');
  e('file-to-dir', 'v1\n');
  e('gone.d/a', 'a\n');
  e('gone.d/b', 'b\n');
  e('gone-changed.d/a', 'a\n');
  e('gone-changed.d/b', 'b\n');
  e('private.d/f', 'v1\n');
  e('private.d/g', 'v1\n');
  e('a/b/c/conf', 'v1\n');
  e('a/b/c/other', 'v1\n');
  e('dropped.d/x', 'v1\n');
  e('dropped.d/y', 'v1\n');
  e('dirtype.d/k', 'v1\n');
  e('dir-to-file.d/q', 'v1\n');
  e('xattr-local', 'v1\n');
  setAttributeSync(e('xattr-default', 'v1\n'), 'user.default', 'yes');
  if (isRoot) {
    e('owner-local', 'v1\n');
    fs.chownSync(e('owned-default', 'v1\n'), 1000, 1000);
  }
}

/** The new OS tree: the old one with the upstream side of each case. */
function newTree(root: string): void {
  oldTree(root);
  const e = (rel: string, content: string, mode = 0o644): string => w(root, `usr/etc/${rel}`, content, mode);
  e('untouched-changed', 'v2\n');
  rm(root, 'usr/etc/untouched-removed');
  e('upstream-added', 'new\n');
  e('same-change', 'v2\n');
  e('modify-modify', 'v2\n');
  e('delete-modify', 'v2\n');
  rm(root, 'usr/etc/modify-delete');
  e('add-add', 'theirs\n');
  e('add-add-same', 'same\n');
  fs.chmodSync(path.join(root, 'usr/etc/chmod-upstream'), 0o640);
  ln(root, 'usr/etc/up-type', 'elsewhere');
  ln(root, 'usr/etc/link-upstream', 'c');
  ln(root, 'usr/etc/link-both', 'c');
  e('gone-changed.d/a', 'a2\n');
  e('private.d/g', 'v2\n');
  e('a/b/c/other', 'v2\n');
  rm(root, 'usr/etc/dropped.d');
  rm(root, 'usr/etc/dirtype.d');
  e('dirtype.d', 'a file now\n');
}

/** What the admin did to the running /etc. */
function adminEdits(cur: string): void {
  w(cur, 'local-edit', 'mine\n');
  rm(cur, 'local-deleted');
  w(cur, 'local-added', 'mine\n');
  w(cur, 'same-change', 'v2\n');
  w(cur, 'modify-modify', 'mine\n');
  rm(cur, 'delete-modify');
  w(cur, 'modify-delete', 'mine\n');
  w(cur, 'add-add', 'mine\n');
  w(cur, 'add-add-same', 'same\n');
  fs.chmodSync(path.join(cur, 'chmod-local'), 0o600);
  fs.chmodSync(path.join(cur, 'setuid-local'), 0o4755);
  ln(cur, 'link-local', 'b');
  ln(cur, 'link-both', 'b');
  rm(cur, 'link-to-file');
  w(cur, 'link-to-file', 'now a file\n');
  rm(cur, 'file-to-dir');
  w(cur, 'file-to-dir/inner', 'x\n');
  rm(cur, 'gone.d');
  rm(cur, 'gone-changed.d');
  fs.chmodSync(path.join(cur, 'private.d'), 0o700);
  w(cur, 'a/b/c/conf', 'mine\n');
  w(cur, 'dropped.d/x', 'mine\n');
  w(cur, 'dirtype.d/k', 'mine\n');
  rm(cur, 'dir-to-file.d');
  w(cur, 'dir-to-file.d', 'a file instead\n');
  setAttributeSync(path.join(cur, 'xattr-local'), 'user.local', 'set by admin');
  if (isRoot) fs.chownSync(path.join(cur, 'owner-local'), 1234, 1234);
  // Times the copies must keep.
  fs.utimesSync(path.join(cur, 'local-edit'), 1_600_000_000, 1_600_000_000);
  fs.lutimesSync(path.join(cur, 'link-local'), 1_600_000_001, 1_600_000_001);
}

describe('mergeEtc on real commits and check-outs', () => {
  let work: string;
  let repo: string;
  let oldC: Checksum;
  let newC: Checksum;
  let curDir: string;
  let newDir: string;
  let trees: { old: EtcTree; cur: EtcTree; next: EtcTree };
  let result: ReturnType<typeof mergeEtc>;

  beforeAll(async () => {
    work = tmpDir('strata-etc-merge-');
    repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    oldTree(path.join(work, 'old'));
    newTree(path.join(work, 'new'));
    oldC = await commitTree(repo, 'os', path.join(work, 'old'));
    newC = await commitTree(repo, 'os', path.join(work, 'new'));
    curDir = await etcCopy(repo, oldC, path.join(work, 'cur-etc'));
    adminEdits(curDir);
    newDir = await etcCopy(repo, newC, path.join(work, 'new-etc'));
    const r = Repo.open(repo);
    trees = { old: readEtcFromCommit(r, oldC), cur: readEtcFromDisk(curDir), next: readEtcFromCommit(r, newC) };
    result = mergeEtc({ repo: r, oldCommit: oldC, curDir, newCommit: newC, newDir });
  });

  it('untouched files follow the new default: changed, added, removed, chmod, retargeted, type-changed', () => {
    expect(read(newDir, 'untouched-changed')).toBe('v2\n');
    expect(exists(newDir, 'untouched-removed')).toBe(false);
    expect(read(newDir, 'upstream-added')).toBe('new\n');
    expect(modeOf(newDir, 'chmod-upstream')).toBe(0o640);
    expect(fs.readlinkSync(path.join(newDir, 'link-upstream'))).toBe('c');
    expect(fs.readlinkSync(path.join(newDir, 'up-type'))).toBe('elsewhere');
    expect(read(newDir, 'private.d/g')).toBe('v2\n');
    expect(read(newDir, 'a/b/c/other')).toBe('v2\n');
    expect(getAttributeSync(path.join(newDir, 'xattr-default'), 'user.default')?.toString()).toBe('yes');
    if (isRoot) expect(fs.statSync(path.join(newDir, 'owned-default')).uid).toBe(1000);
    // The nine paths above that changed upstream (not xattr-default, owned-default),
    // plus dropped.d/y (removed upstream): what "updated" counts.
    expect(result.updated).toBe(9);
  });

  it("the admin's edits, additions, chmods and symlink edits are kept when upstream left them alone", () => {
    expect(read(newDir, 'local-edit')).toBe('mine\n');
    expect(read(newDir, 'local-added')).toBe('mine\n');
    expect(modeOf(newDir, 'chmod-local')).toBe(0o600);
    expect(modeOf(newDir, 'setuid-local')).toBe(0o4755);
    expect(fs.readlinkSync(path.join(newDir, 'link-local'))).toBe('b');
    expect(getAttributeSync(path.join(newDir, 'xattr-local'), 'user.local')?.toString()).toBe('set by admin');
    expect(read(newDir, 'a/b/c/conf')).toBe('mine\n');
    expect(modeOf(newDir, 'private.d')).toBe(0o700);
    if (isRoot) expect(fs.statSync(path.join(newDir, 'owner-local'))).toMatchObject({ uid: 1234, gid: 1234 });
  });

  it('copies keep their modification times, and each is a new file (not a link to the running /etc)', () => {
    expect(fs.lstatSync(path.join(newDir, 'local-edit')).mtimeMs).toBe(1_600_000_000_000);
    expect(fs.lstatSync(path.join(newDir, 'link-local')).mtimeMs).toBe(1_600_000_001_000);
    expect(fs.statSync(path.join(newDir, 'local-edit')).ino).not.toBe(fs.statSync(path.join(curDir, 'local-edit')).ino);
    expect(fs.statSync(path.join(newDir, 'local-edit')).nlink).toBe(1);
  });

  it('local deletions stay deleted, files and whole directories', () => {
    expect(exists(newDir, 'local-deleted')).toBe(false);
    expect(exists(newDir, 'gone.d')).toBe(false);
    expect(exists(newDir, 'gone-changed.d')).toBe(false);
    expect(exists(newDir, 'delete-modify')).toBe(false);
    expect(result.removed).toEqual(['/etc/delete-modify', '/etc/gone-changed.d', '/etc/gone.d', '/etc/local-deleted']);
  });

  it('type changes by the admin are kept: symlink to file, file to directory, directory to file', () => {
    expect(fs.lstatSync(path.join(newDir, 'link-to-file')).isFile()).toBe(true);
    expect(read(newDir, 'link-to-file')).toBe('now a file\n');
    expect(read(newDir, 'file-to-dir/inner')).toBe('x\n');
    expect(read(newDir, 'dir-to-file.d')).toBe('a file instead\n');
  });

  it('the same change on both sides is no conflict and needs no copy', () => {
    expect(read(newDir, 'same-change')).toBe('v2\n');
    expect(read(newDir, 'add-add-same')).toBe('same\n');
    expect(result.kept).not.toContain('/etc/same-change');
    expect(result.kept).not.toContain('/etc/add-add-same');
  });

  it("conflicts keep the admin's version and are reported with what each side did", () => {
    expect(read(newDir, 'modify-modify')).toBe('mine\n');
    expect(read(newDir, 'modify-delete')).toBe('mine\n');
    expect(read(newDir, 'add-add')).toBe('mine\n');
    expect(fs.readlinkSync(path.join(newDir, 'link-both'))).toBe('b');
    // Upstream dropped dropped.d and made dirtype.d a file; the admin's files below them are kept.
    expect(read(newDir, 'dropped.d/x')).toBe('mine\n');
    expect(exists(newDir, 'dropped.d/y')).toBe(false);
    expect(read(newDir, 'dirtype.d/k')).toBe('mine\n');
    expect(result.conflicts.map(({ path: p, local, upstream, reason }) => ({ p, local, upstream, reason }))).toEqual([
      { p: '/etc/add-add', local: 'added', upstream: 'added', reason: 'added locally and in new default with different content' },
      { p: '/etc/delete-modify', local: 'deleted', upstream: 'modified', reason: 'deleted locally, changed in new default' },
      { p: '/etc/dirtype.d', local: 'unchanged', upstream: 'type', reason: 'replaced by a file in new default; kept as a directory for local changes below it' },
      { p: '/etc/dirtype.d/k', local: 'modified', upstream: 'deleted', reason: 'modified locally, removed in new default' },
      { p: '/etc/dropped.d', local: 'unchanged', upstream: 'deleted', reason: 'removed in new default; kept as a directory for local changes below it' },
      { p: '/etc/dropped.d/x', local: 'modified', upstream: 'deleted', reason: 'modified locally, removed in new default' },
      { p: '/etc/gone-changed.d', local: 'deleted', upstream: 'modified', reason: 'deleted locally, changed in new default' },
      { p: '/etc/link-both', local: 'modified', upstream: 'modified', reason: 'modified locally, changed in new default' },
      { p: '/etc/modify-delete', local: 'modified', upstream: 'deleted', reason: 'modified locally, removed in new default' },
      { p: '/etc/modify-modify', local: 'modified', upstream: 'modified', reason: 'modified locally, changed in new default' },
    ]);
  });

  it('the merged /etc on disk satisfies every rule, path by path', () => {
    const plan = planEtcMerge(trees.old, trees.cur, trees.next);
    expect(plan.conflicts).toEqual(result.conflicts);
    checkRules(trees.old, trees.cur, trees.next, readEtcFromDisk(newDir), plan);
    expect(tempLeftovers(newDir)).toEqual([]);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('merging again from the merged /etc into a fresh copy of NEW changes nothing more', async () => {
    // The merged /etc is now CUR of the new deployment; OLD is NEW.
    const again = await etcCopy(repo, newC, path.join(work, 'new-etc-2'));
    const r = mergeEtc({ repo, oldCommit: newC, curDir: newDir, newCommit: newC, newDir: again });
    expect(r.conflicts).toEqual([]);
    expect(r.updated).toBe(0);
    const a = readEtcFromDisk(newDir);
    const b = readEtcFromDisk(again);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [p, e] of a) expect(sameEtcEntry(b.get(p), e), p).toBe(true);
  });
});

// ------------------------------------------------------ identities & inputs

describe('config trees from commits and from disk are comparable', () => {
  for (const mode of ['archive', 'bare-user'] as const) {
    it(`${mode}: a copy check-out reads back as the commit's tree (modes, setuid, symlinks, xattrs, owners)`, async () => {
      const work = tmpDir('strata-etc-ids-');
      const repo = path.join(work, 'repo');
      Repo.init(repo, mode);
      oldTree(path.join(work, 'src'));
      fs.chmodSync(path.join(work, 'src/usr/etc/private.d'), 0o700);
      setAttributeSync(path.join(work, 'src/usr/etc/a'), 'user.dir', 'x');
      const c = await commitTree(repo, 'os', path.join(work, 'src'));
      const fromCommit = readEtcFromCommit(Repo.open(repo), c);
      const fromDisk = readEtcFromDisk(await etcCopy(repo, c, path.join(work, 'etc')));
      expect([...fromDisk.keys()].sort()).toEqual([...fromCommit.keys()].sort());
      for (const [p, e] of fromCommit) expect(sameEtcEntry(fromDisk.get(p), e), p).toBe(true);
      expect(fromCommit.get('private.d')).toMatchObject({ type: 'dir', mode: S_IFDIR | 0o700 });
      expect(fromCommit.get('setuid-local')).toMatchObject({ type: 'file', mode: S_IFREG | 0o755 });
      expect(fromCommit.get('link-local')).toMatchObject({ type: 'symlink', target: 'a' });
      expect(fromCommit.get('a')?.xattrs.map((x) => x.name)).toEqual(['user.dir']);
      // One edit, even of a single byte, changes the identity.
      const edited = path.join(work, 'etc-edited');
      await etcCopy(repo, c, edited);
      w(edited, 'local-edit', 'v2\n');
      expect(sameEtcEntry(readEtcFromDisk(edited).get('local-edit'), fromCommit.get('local-edit'))).toBe(false);
    });
  }

  it('a hardlinked check-out from bare-user ignores the objects’ user.ostreemeta', async () => {
    const work = tmpDir('strata-etc-links-');
    const repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    w(work, 'src/usr/etc/plain', 'plain\n');
    const c = await commitTree(repo, 'os', path.join(work, 'src'));
    const dest = path.join(work, 'etc');
    const r = await checkout({ repo, rev: c, dest, subpath: '/usr/etc' });
    expect(r.hardlinked).toBe(1);
    expect(getAttributeSync(path.join(dest, 'plain'), 'user.ostreemeta')).not.toBeNull();
    expect(sameEtcEntry(readEtcFromDisk(dest).get('plain'), readEtcFromCommit(Repo.open(repo), c).get('plain'))).toBe(true);
  });

  it('a commit without usr/etc, or a missing directory, is an empty tree; a file at usr/etc is an error', async () => {
    const work = tmpDir('strata-etc-empty-');
    const repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    w(work, 'bare/usr/bin/app', 'x');
    w(work, 'flat/usr', 'usr is a file');
    w(work, 'odd/usr/etc', 'etc is a file');
    const r = Repo.open(repo);
    expect(readEtcFromCommit(r, await commitTree(repo, 'a', path.join(work, 'bare'))).size).toBe(0);
    expect(readEtcFromCommit(r, await commitTree(repo, 'b', path.join(work, 'flat'))).size).toBe(0);
    const odd = await commitTree(repo, 'c', path.join(work, 'odd'));
    expect(codeOf(() => readEtcFromCommit(r, odd))).toBe('NOT_A_DIRECTORY');
    expect(readEtcFromDisk(path.join(work, 'nowhere')).size).toBe(0);
  });

  it('a socket, fifo or device in the running /etc is refused before anything is written', async () => {
    const work = tmpDir('strata-etc-fifo-');
    const repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    w(work, 'src/usr/etc/f', 'v1\n');
    const c = await commitTree(repo, 'os', path.join(work, 'src'));
    const cur = await etcCopy(repo, c, path.join(work, 'cur'));
    w(cur, 'f', 'mine\n');
    execFileSync('mkfifo', [path.join(cur, 'pipe')]);
    const next = await etcCopy(repo, c, path.join(work, 'next'));
    expect(codeOf(() => mergeEtc({ repo, oldCommit: c, curDir: cur, newCommit: c, newDir: next }))).toBe('UNSUPPORTED_FILE');
    expect(read(next, 'f')).toBe('v1\n');
  });
});

describe('mergeEtc edge cases', () => {
  let work: string;
  let repo: string;
  let c1: Checksum;
  let c2: Checksum;
  let noEtc: Checksum;

  beforeAll(async () => {
    work = tmpDir('strata-etc-edge-');
    repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    w(work, 't1/usr/etc/same', 'same\n');
    w(work, 't1/usr/etc/differs', 'v1\n');
    w(work, 't1/usr/etc/owned', 'v1\n');
    c1 = await commitTree(repo, 'os', path.join(work, 't1'));
    w(work, 't2/usr/etc/same', 'same\n');
    w(work, 't2/usr/etc/differs', 'v2\n');
    w(work, 't2/usr/etc/owned', 'v2\n');
    c2 = await commitTree(repo, 'os', path.join(work, 't2'));
    w(work, 't0/usr/bin/app', 'x');
    noEtc = await commitTree(repo, 'bare', path.join(work, 't0'));
  });

  it('without a running /etc there is nothing to merge', async () => {
    const next = await etcCopy(repo, c2, path.join(work, 'no-cur'));
    const before = readEtcFromDisk(next);
    const r = mergeEtc({ repo, oldCommit: c1, curDir: path.join(work, 'does-not-exist'), newCommit: c2, newDir: next });
    expect(r).toEqual({ conflicts: [], kept: [], removed: [], updated: 0, warnings: [] });
    expect(planEtcMerge(before, new Map(), before).actions).toEqual([]);
    for (const [p, e] of readEtcFromDisk(next)) expect(sameEtcEntry(before.get(p), e), p).toBe(true);
  });

  for (const [name, old] of [['no old commit', () => null], ['an old commit without usr/etc', () => noEtc]] as const) {
    it(`${name}: OLD is empty, so every running file is the admin's, conflicting where NEW differs`, async () => {
      const cur = await etcCopy(repo, c1, path.join(work, `cur-${name.length}`));
      const next = await etcCopy(repo, c2, path.join(work, `next-${name.length}`));
      const r = mergeEtc({ repo, oldCommit: old(), curDir: cur, newCommit: c2, newDir: next });
      expect(r.conflicts.map((c) => [c.path, c.reason])).toEqual([
        ['/etc/differs', 'added locally and in new default with different content'],
        ['/etc/owned', 'added locally and in new default with different content'],
      ]);
      expect(r.kept).toEqual(['/etc/differs', '/etc/owned']);
      expect(read(next, 'differs')).toBe('v1\n');
      expect(read(next, 'same')).toBe('same\n');
    });
  }

  it.skipIf(!isRoot)('not root: owners on disk are ignored, taken from OLD (else NEW); content edits still count', async () => {
    const cur = await etcCopy(repo, c1, path.join(work, 'cur-owners'));
    fs.chownSync(path.join(cur, 'owned'), 4321, 4321);
    fs.chownSync(path.join(cur, 'same'), 4321, 4321);
    w(cur, 'added', 'mine\n');
    fs.chownSync(path.join(cur, 'added'), 4321, 4321);
    w(cur, 'differs', 'mine\n');
    const r = Repo.open(repo);
    const [old, next] = [readEtcFromCommit(r, c1), readEtcFromCommit(r, c2)];
    // As root, a chown is the admin's change.
    expect(planEtcMerge(old, readEtcFromDisk(cur), next).kept).toEqual(['/etc/added', '/etc/differs', '/etc/owned', '/etc/same']);
    // As a process that cannot chown, it is not.
    const assumed = readEtcFromDisk(cur, { assumeOwnersFrom: [old, next] });
    expect(assumed.get('owned')).toMatchObject({ uid: old.get('owned')?.uid, gid: old.get('owned')?.gid });
    expect(assumed.get('added')).toMatchObject({ uid: 4321, gid: 4321 });
    const plan = planEtcMerge(old, assumed, next);
    expect(plan.kept).toEqual(['/etc/added', '/etc/differs']);
    expect(plan.conflicts.map((c) => c.path)).toEqual(['/etc/differs']);
  });

  it('a chmod of a directory alone is kept, with its owner and xattrs; its untouched files follow NEW', async () => {
    const src1 = path.join(work, 'd1');
    w(src1, 'usr/etc/conf.d/a', 'v1\n');
    setAttributeSync(path.join(src1, 'usr/etc/conf.d'), 'user.upstream', 'old');
    const src2 = path.join(work, 'd2');
    w(src2, 'usr/etc/conf.d/a', 'v2\n');
    setAttributeSync(path.join(src2, 'usr/etc/conf.d'), 'user.upstream', 'old');
    const o = await commitTree(repo, 'dirs', src1);
    const n = await commitTree(repo, 'dirs', src2);
    const cur = await etcCopy(repo, o, path.join(work, 'cur-dirmeta'));
    fs.chmodSync(path.join(cur, 'conf.d'), 0o750);
    fs.utimesSync(path.join(cur, 'conf.d'), 1_500_000_000, 1_500_000_000);
    setAttributeSync(path.join(cur, 'conf.d'), 'user.admin', 'mine');
    if (isRoot) fs.chownSync(path.join(cur, 'conf.d'), 0, 42);
    const next = await etcCopy(repo, n, path.join(work, 'next-dirmeta'));
    const r = mergeEtc({ repo, oldCommit: o, curDir: cur, newCommit: n, newDir: next });
    expect(r).toMatchObject({ conflicts: [], kept: ['/etc/conf.d'], removed: [], updated: 1 });
    const st = fs.lstatSync(path.join(next, 'conf.d'));
    expect(st.mode & 0o7777).toBe(0o750);
    expect(st.mtimeMs).toBe(1_500_000_000_000);
    if (isRoot) expect(st.gid).toBe(42);
    expect(getAttributeSync(path.join(next, 'conf.d'), 'user.admin')?.toString()).toBe('mine');
    expect(read(next, 'conf.d/a')).toBe('v2\n');
  });
});

/** The merge as an unprivileged user would run it, in a child process (setpriv to nobody). */
const UNPRIVILEGED_SCRIPT = `
import fs from 'node:fs';
import path from 'node:path';
import { Repo } from '${ROOT}/src/repo/repo.js';
import { commit } from '${ROOT}/src/repo/commit.js';
import { checkout } from '${ROOT}/src/repo/checkout.js';
import { mergeEtc } from '${ROOT}/src/sysroot/etc-merge.js';
const work = process.argv[2];
const w = (p, c, m = 0o644) => { fs.mkdirSync(path.dirname(path.join(work, p)), { recursive: true }); fs.writeFileSync(path.join(work, p), c); fs.chmodSync(path.join(work, p), m); };
const tree = (name, x) => {
  w(name + '/usr/etc/x', x); w(name + '/usr/etc/y', '1'); w(name + '/usr/etc/ro.d/z', '1'); w(name + '/usr/etc/gone.d/q', '1');
  for (const d of ['ro.d', 'gone.d']) fs.chmodSync(path.join(work, name, 'usr/etc', d), 0o555);
};
tree('a', '1');
tree('b', '2');
const repo = path.join(work, 'repo');
Repo.init(repo, 'bare-user');
// Owned by root in the commits, as an OS tree is; by nobody on disk.
const a = (await commit({ repo, branch: 'os', source: path.join(work, 'a'), ownerUid: 0, ownerGid: 0, timestamp: 1 })).commit;
const b = (await commit({ repo, branch: 'os', source: path.join(work, 'b'), ownerUid: 0, ownerGid: 0, timestamp: 2 })).commit;
const cur = path.join(work, 'cur');
await checkout({ repo, rev: a, dest: cur, subpath: '/usr/etc', copy: true });
const next = path.join(work, 'next');
await checkout({ repo, rev: b, dest: next, subpath: '/usr/etc', copy: true });
w('cur/y', 'mine');
fs.chmodSync(path.join(cur, 'ro.d'), 0o755); w('cur/ro.d/z', 'mine'); fs.chmodSync(path.join(cur, 'ro.d'), 0o555);
fs.chmodSync(path.join(cur, 'gone.d'), 0o755); fs.rmSync(path.join(cur, 'gone.d'), { recursive: true });
const r = mergeEtc({ repo, oldCommit: a, curDir: cur, newCommit: b, newDir: next });
const read = (p) => fs.readFileSync(path.join(next, p), 'utf8');
console.log(JSON.stringify({ r, x: read('x'), y: read('y'), z: read('ro.d/z'), roMode: fs.statSync(path.join(next, 'ro.d')).mode & 0o7777, gone: fs.existsSync(path.join(next, 'gone.d')) }));
`;

describe('mergeEtc as an unprivileged user', () => {
  const setpriv = spawnSync('setpriv', ['--version']).status === 0;
  it.skipIf(!isRoot || !setpriv)('owners on disk are ignored, and read-only directories are written into and given their mode back', () => {
    const work = tmpDir('strata-etc-nobody-');
    fs.chmodSync(work, 0o777);
    fs.writeFileSync(path.join(work, 'merge.mts'), UNPRIVILEGED_SCRIPT);
    const tsx = path.join(ROOT, 'node_modules/.bin/tsx');
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', tsx, path.join(work, 'merge.mts'), work], {
      encoding: 'utf8', env: { ...process.env, HOME: work, STRATA_WORKERS: '1' },
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      r: { conflicts: [], kept: ['/etc/ro.d/z', '/etc/y'], removed: ['/etc/gone.d'], updated: 1, warnings: [] },
      x: '2', y: 'mine', z: 'mine', roMode: 0o555, gone: false,
    });
  });
});

// ------------------------------------------------------------------- safety

describe('applyEtcMerge never writes through symlinks or outside the new /etc', () => {
  it('a symlink in NEW where the admin has a file or a directory is replaced, its target untouched', async () => {
    const work = tmpDir('strata-etc-safe-');
    const outside = path.join(work, 'outside');
    w(outside, 'victim', 'untouched\n');
    const repo = path.join(work, 'repo');
    Repo.init(repo, 'bare-user');
    const t1 = path.join(work, 't1');
    ln(t1, 'usr/etc/escape', 'placeholder');
    w(t1, 'usr/etc/conf.d/x', 'v1\n');
    const t2 = path.join(work, 't2');
    ln(t2, 'usr/etc/escape', path.join(outside, 'victim'));
    ln(t2, 'usr/etc/conf.d', outside);
    const o = await commitTree(repo, 'os', t1);
    const n = await commitTree(repo, 'os', t2);
    const cur = await etcCopy(repo, o, path.join(work, 'cur'));
    rm(cur, 'escape');
    w(cur, 'escape', 'admin file\n');
    w(cur, 'conf.d/x', 'admin conf\n');
    const next = await etcCopy(repo, n, path.join(work, 'next'));
    const r = mergeEtc({ repo, oldCommit: o, curDir: cur, newCommit: n, newDir: next });
    expect(fs.lstatSync(path.join(next, 'escape')).isFile()).toBe(true);
    expect(read(next, 'escape')).toBe('admin file\n');
    expect(fs.lstatSync(path.join(next, 'conf.d')).isDirectory()).toBe(true);
    expect(read(next, 'conf.d/x')).toBe('admin conf\n');
    expect(fs.readdirSync(outside)).toEqual(['victim']);
    expect(read(outside, 'victim')).toBe('untouched\n');
    expect(r.conflicts.map((c) => c.path)).toEqual(['/etc/conf.d', '/etc/conf.d/x', '/etc/escape']);
  });

  it('a plan naming .. or a path through a symlink in newDir is refused', () => {
    const work = tmpDir('strata-etc-hostile-');
    const cur = path.join(work, 'cur');
    const next = path.join(work, 'next');
    const outside = path.join(work, 'outside');
    w(cur, 'lnk/x', 'admin\n');
    w(cur, 'evil', 'admin\n');
    mkdir(next, '');
    mkdir(outside, '');
    fs.symlinkSync(outside, path.join(next, 'lnk'));
    const plan = (rel: string, op: 'keep' | 'remove'): EtcMergePlan => ({
      actions: [op === 'keep' ? { op, rel, type: 'file', local: true } : { op, rel }],
      conflicts: [], kept: [], removed: [], updated: 0,
    });
    expect(codeOf(() => applyEtcMerge(plan('../evil', 'keep'), { curDir: cur, newDir: next }))).toBe('UNSAFE_PATH');
    expect(codeOf(() => applyEtcMerge(plan('lnk/x', 'keep'), { curDir: cur, newDir: next }))).toBe('UNSAFE_PATH');
    w(outside, 'x', 'outside\n');
    expect(codeOf(() => applyEtcMerge(plan('lnk/x', 'remove'), { curDir: cur, newDir: next }))).toBe('UNSAFE_PATH');
    expect(codeOf(() => applyEtcMerge(plan('', 'remove'), { curDir: cur, newDir: next }))).toBe('UNSAFE_PATH');
    expect(read(outside, 'x')).toBe('outside\n');
    expect(fs.existsSync(path.join(work, 'evil'))).toBe(false);
  });

  it('a running /etc that changed type since planning is an error, not a copy of something else', () => {
    const work = tmpDir('strata-etc-race-');
    const cur = path.join(work, 'cur');
    const next = path.join(work, 'next');
    ln(cur, 'conf', '/etc/shadow');
    mkdir(next, '');
    const plan: EtcMergePlan = { actions: [{ op: 'keep', rel: 'conf', type: 'file', local: true }], conflicts: [], kept: [], removed: [], updated: 0 };
    expect(codeOf(() => applyEtcMerge(plan, { curDir: cur, newDir: next }))).toBe('IO');
    expect(fs.readdirSync(next)).toEqual([]);
  });
});

// --------------------------------------------------------- property: planner

type GNode =
  | { t: 'file'; content: number; mode: number; own: number }
  | { t: 'symlink'; target: string }
  | { t: 'dir'; mode: number; own: number; kids: Record<string, GNode | null> };

const NAMES = ['a', 'b', 'c'] as const;

const nodeArb: fc.Arbitrary<GNode> = fc.letrec<{ node: GNode }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 3, depthSize: 'small' },
    fc.record({ t: fc.constant('file' as const), content: fc.integer({ min: 0, max: 2 }), mode: fc.constantFrom(0o644, 0o600, 0o4755), own: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ t: fc.constant('symlink' as const), target: fc.constantFrom('x', 'y') }),
    fc.record({
      t: fc.constant('dir' as const), mode: fc.constantFrom(0o755, 0o700), own: fc.integer({ min: 0, max: 1 }),
      kids: fc.record({ a: fc.option(tie('node'), { nil: null }), b: fc.option(tie('node'), { nil: null }), c: fc.option(tie('node'), { nil: null }) }),
    }),
  ),
})).node;

const rootArb = nodeArb.filter((n) => n.t === 'dir');

/** Deterministic choice per path: 0 keeps `base`, 1 takes `other`, 2 mixes two directories. */
function pick(seed: number, rel: string): number {
  let h = seed >>> 0;
  for (const ch of rel) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return (h ^ (h >>> 13)) % 3 === 0 ? 1 : (h >>> 7) % 4 === 0 ? 2 : 0;
}

/** A variant of `base`: some paths replaced by `other`'s, so that trees share most entries. */
function mix(base: GNode | null, other: GNode | null, seed: number, rel = ''): GNode | null {
  const choice = pick(seed, rel);
  if (choice === 1 && rel !== '') return other;
  if (base?.t === 'dir') {
    const meta = choice === 2 && other?.t === 'dir' ? other : base;
    const otherKids = other?.t === 'dir' ? other.kids : {};
    const kids: Record<string, GNode | null> = {};
    for (const n of NAMES) kids[n] = mix(base.kids[n] ?? null, otherKids[n] ?? null, seed, rel + '/' + n);
    return { t: 'dir', mode: meta.mode, own: meta.own, kids };
  }
  return base;
}

function toTree(root: GNode | null): Map<string, EtcEntry> {
  const out = new Map<string, EtcEntry>();
  const add = (rel: string, n: GNode): void => {
    if (n.t === 'file') {
      out.set(rel, { type: 'file', mode: S_IFREG | n.mode, uid: n.own, gid: 0, xattrs: [], checksum: sha256(Buffer.from(`${n.content}/${n.mode}/${n.own}`)) });
    } else if (n.t === 'symlink') {
      out.set(rel, { type: 'symlink', mode: S_IFLNK | 0o777, uid: 0, gid: 0, xattrs: [], target: n.target, checksum: sha256(Buffer.from(`->${n.target}`)) });
    } else {
      out.set(rel, { type: 'dir', mode: S_IFDIR | n.mode, uid: n.own, gid: 0, xattrs: n.own ? [{ name: 'user.x', value: Buffer.from('1') }] : [] });
      for (const name of NAMES) if (n.kids[name]) add(rel === '' ? name : `${rel}/${name}`, n.kids[name] as GNode);
    }
  };
  if (root) add('', root);
  return out;
}

/** The plan carried out on maps: NEW, with CUR's entries put in and the admin's deletions taken out. */
function simulate(plan: EtcMergePlan, cur: EtcTree, next: EtcTree): Map<string, EtcEntry> {
  const res = new Map(next);
  const drop = (rel: string, self: boolean): void => {
    for (const p of [...res.keys()]) if ((self && p === rel) || under(p, rel)) res.delete(p);
  };
  for (const a of plan.actions) {
    if (a.op === 'remove') {
      drop(a.rel, true);
      continue;
    }
    const c = cur.get(a.rel) as EtcEntry;
    expect(c.type).toBe(a.type);
    if (c.type !== 'dir' || res.get(a.rel)?.type !== 'dir') drop(a.rel, true);
    res.set(a.rel, c);
    // Parents come first: whatever the plan touches already sits in a directory.
    if (a.rel !== '') expect(res.get(ancestors(a.rel).pop() as string)?.type, `parent of ${a.rel}`).toBe('dir');
  }
  return res;
}

describe('planEtcMerge (property)', () => {
  const trees = fc.record({
    old: rootArb,
    r1: nodeArb,
    r2: nodeArb,
    s1: fc.integer(),
    s2: fc.integer(),
    nextFromCur: fc.boolean(),
  }).map(({ old, r1, r2, s1, s2, nextFromCur }) => {
    const cur = mix(old, r1, s1);
    const next = mix(nextFromCur ? cur : old, r2, s2);
    return { old: toTree(old), cur: toTree(cur), next: toTree(next) };
  });

  it('the result is NEW wherever the admin left OLD alone, and CUR wherever the admin changed it', () => {
    fc.assert(
      fc.property(trees, ({ old, cur, next }) => {
        const plan = planEtcMerge(old, cur, next);
        checkRules(old, cur, next, simulate(plan, cur, next), plan);
      }),
      { numRuns: 1500 },
    );
  });

  it('is pure and total: the same inputs give the same plan, and untouched /etc gives no actions', () => {
    fc.assert(
      fc.property(trees, ({ old, next }) => {
        expect(planEtcMerge(old, old, next).actions).toEqual([]);
        expect(planEtcMerge(old, old, next).conflicts).toEqual([]);
        expect(planEtcMerge(old, next, next).actions).toEqual([]);
        expect(planEtcMerge(old, next, next)).toEqual(planEtcMerge(old, next, next));
      }),
      { numRuns: 300 },
    );
  });
});
