// verifyTree: a checked-out tree against its commit. Each test tampers with a
// fresh checkout (from its own repo: writing through a hardlink edits the
// repo's object too) and expects exactly the differences it made.

import fs from 'node:fs';
import path from 'node:path';
import { getAttributeSync, listAttributesSync, setAttributeSync } from '@napi-rs/xattr';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { checkout } from '../../src/repo/checkout.js';
import { commit } from '../../src/repo/commit.js';
import { Repo, type RepoMode } from '../../src/repo/repo.js';
import { type VerifyTreeOptions, hashFiles, verifyTree } from '../../src/repo/verify-tree.js';
import { resolveTreePath } from '../../src/repo/walk.js';
import { isRoot, makeTree, sh, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

let src: string;

beforeAll(() => {
  src = makeTree(path.join(tmpDir('strata-verify-src-'), 'tree'));
});

interface Deployed {
  repo: Repo;
  commit: Checksum;
  dest: string;
  /** A path inside the checkout. */
  at(p: string): string;
}

async function deployed(mode: RepoMode, source = src): Promise<Deployed> {
  const dir = tmpDir('strata-verify-');
  const repoPath = path.join(dir, 'repo');
  Repo.init(repoPath, mode);
  const c = (await commit({ repo: repoPath, branch: 'main', source, timestamp: 1_700_000_000 })).commit;
  const dest = path.join(dir, 'deploy');
  await checkout({ repo: repoPath, rev: c, dest });
  return { repo: Repo.open(repoPath), commit: c, dest, at: (p) => path.join(dest, p) };
}

function verify(d: Deployed, opts: Partial<VerifyTreeOptions> = {}) {
  return verifyTree({ repo: d.repo, commit: d.commit, root: d.dest, workers: 1, ...opts });
}

async function differences(d: Deployed, opts: Partial<VerifyTreeOptions> = {}) {
  return (await verify(d, opts)).differences;
}

/** Every entry under dir (not dir itself), and the bytes of its regular files. */
function census(dir: string): { entries: number; bytes: number } {
  let entries = 0;
  let bytes = 0;
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    entries++;
    if (st.isFile()) bytes += st.size;
    if (st.isDirectory()) {
      const sub = census(p);
      entries += sub.entries;
      bytes += sub.bytes;
    }
  }
  return { entries, bytes };
}

describe('verifyTree: a clean checkout', () => {
  for (const mode of ['bare-user', 'archive'] as const) {
    for (const workers of [1, 2]) {
      it(`has no differences (${mode}, ${mode === 'bare-user' ? 'hardlinked' : 'copied'}, workers: ${workers})`, async () => {
        const d = await deployed(mode);
        const progress: [number, number][] = [];
        const r = await verify(d, { workers, onProgress: (done, total) => progress.push([done, total]) });
        const { entries, bytes } = census(d.dest);
        expect(r).toEqual({ commit: d.commit, root: fs.realpathSync(d.dest), checked: entries + 1, bytes, differences: [] });
        expect(progress.at(-1)?.[0]).toBe(progress.at(-1)?.[1]);
      });
    }
  }

  it('ignores user.ostreemeta, which hardlinked files share with their bare-user object', async () => {
    const d = await deployed('bare-user');
    const tool = d.at('usr/bin/tool');
    expect(fs.statSync(tool).nlink).toBeGreaterThan(1);
    expect(listAttributesSync(tool)).toContain('user.ostreemeta');
    expect(getAttributeSync(tool, 'user.ostreemeta')?.length).toBeGreaterThan(0);
    expect(await differences(d)).toEqual([]);
  });

  it('a root given through a symlink is verified as the directory it names', async () => {
    const d = await deployed('bare-user');
    const link = path.join(path.dirname(d.dest), 'current');
    fs.symlinkSync(d.dest, link);
    const r = await verifyTree({ repo: d.repo, commit: d.commit, root: link, workers: 1 });
    expect(r.root).toBe(fs.realpathSync(d.dest));
    expect(r.differences).toEqual([]);
  });
});

describe('verifyTree: tampering is detected (bare-user, hardlinked)', () => {
  it('content changed in place through a hardlink, same size: both names of the inode', async () => {
    const d = await deployed('bare-user');
    const tool = d.at('usr/bin/tool');
    const node = resolveTreePath(d.repo, d.commit, '/usr/bin/tool');
    if (node.kind !== 'file') throw new Error('expected a file');
    const object = d.repo.objectFile(node.checksum, 'file');
    const before = fs.readFileSync(tool);
    const fd = fs.openSync(tool, 'r+');
    fs.writeSync(fd, Buffer.from('#!/bin/bash'), 0, 11, 0); // '#!/bin/sh\ne' becomes '#!/bin/bash': same length
    fs.closeSync(fd);
    expect(fs.statSync(tool).size).toBe(before.length);
    // The repo's object changed with it: comparing inodes would prove nothing.
    expect(fs.statSync(object).ino).toBe(fs.statSync(tool).ino);
    expect(fs.readFileSync(object, 'utf8')).toMatch(/^#!\/bin\/bash/);
    expect(await differences(d)).toEqual([
      { path: '/usr/bin/tool', kind: 'modified', what: ['content'] },
      { path: '/usr/bin/tool-hardlink', kind: 'modified', what: ['content'] },
    ]);
  });

  it('chmod u+s', async () => {
    const d = await deployed('bare-user');
    fs.chmodSync(d.at('usr/share/odd-perms'), 0o4600);
    expect(await differences(d)).toEqual([{ path: '/usr/share/odd-perms', kind: 'modified', what: ['mode'] }]);
  });

  it('a directory whose mode changed', async () => {
    const d = await deployed('bare-user');
    fs.chmodSync(d.at('usr/share'), 0o777);
    expect(await differences(d)).toEqual([{ path: '/usr/share', kind: 'modified', what: ['mode'] }]);
  });

  it('a file added in /usr/bin, a file removed', async () => {
    const d = await deployed('bare-user');
    fs.writeFileSync(d.at('usr/bin/evil'), 'evil\n');
    fs.rmSync(d.at('usr/share/odd-perms'));
    expect(await differences(d)).toEqual([
      { path: '/usr/bin/evil', kind: 'added' },
      { path: '/usr/share/odd-perms', kind: 'removed' },
    ]);
  });

  it('a directory removed, a directory added with files: each reported once', async () => {
    const d = await deployed('bare-user');
    fs.rmSync(d.at('usr/share/deep'), { recursive: true });
    fs.mkdirSync(d.at('usr/lib/evil/sub'), { recursive: true });
    fs.writeFileSync(d.at('usr/lib/evil/a'), 'a');
    fs.writeFileSync(d.at('usr/lib/evil/sub/b'), 'b');
    expect(await differences(d)).toEqual([
      { path: '/usr/lib', kind: 'added' },
      { path: '/usr/share/deep', kind: 'removed' },
    ]);
  });

  it('a file replaced by a symlink, a directory by a file, a file by a directory', async () => {
    const d = await deployed('bare-user');
    fs.rmSync(d.at('usr/bin/tool'));
    fs.symlinkSync('/bin/sh', d.at('usr/bin/tool'));
    fs.rmSync(d.at('usr/share/deep'), { recursive: true });
    fs.writeFileSync(d.at('usr/share/deep'), 'now a file\n');
    fs.rmSync(d.at('usr/share/odd-perms'));
    fs.mkdirSync(d.at('usr/share/odd-perms'));
    expect(await differences(d)).toEqual([
      { path: '/usr/bin/tool', kind: 'modified', what: ['type'] },
      { path: '/usr/share/deep', kind: 'modified', what: ['type'] },
      { path: '/usr/share/odd-perms', kind: 'modified', what: ['type'] },
    ]);
  });

  it('a symlink whose target changed', async () => {
    const d = await deployed('bare-user');
    fs.rmSync(d.at('usr/bin/tool-link'));
    fs.symlinkSync('/tmp/evil', d.at('usr/bin/tool-link'));
    expect(await differences(d)).toEqual([{ path: '/usr/bin/tool-link', kind: 'modified', what: ['target'] }]);
  });

  it('a user.* xattr added to a file and to a directory; one changed', async () => {
    const d = await deployed('bare-user');
    setAttributeSync(d.at('usr/share/odd-perms'), 'user.evil', 'x');
    setAttributeSync(d.at('usr/bin'), 'user.evil', 'x');
    setAttributeSync(d.at('usr/share/with-xattrs'), 'user.strata.test', 'HELLO');
    expect(await differences(d)).toEqual([
      { path: '/usr/bin', kind: 'modified', what: ['xattrs'] },
      { path: '/usr/share/odd-perms', kind: 'modified', what: ['xattrs'] },
      { path: '/usr/share/with-xattrs', kind: 'modified', what: ['xattrs'] },
    ]);
  });

  it.skipIf(!isRoot)('as root, chown of a file and of a directory', async () => {
    const d = await deployed('bare-user');
    fs.chownSync(d.at('usr/share/odd-perms'), 4321, 4321);
    fs.chownSync(d.at('usr/share/deep/a'), 0, 4321);
    expect(await differences(d)).toEqual([
      { path: '/usr/share/deep/a', kind: 'modified', what: ['owner'] },
      { path: '/usr/share/odd-perms', kind: 'modified', what: ['owner'] },
    ]);
  });

  it('several aspects of one file at once', async () => {
    const d = await deployed('bare-user');
    const f = d.at('usr/share/odd-perms');
    fs.rmSync(f);
    fs.writeFileSync(f, 'ODD\n');
    fs.chmodSync(f, 0o644);
    setAttributeSync(f, 'user.evil', 'x');
    expect(await differences(d)).toEqual([{ path: '/usr/share/odd-perms', kind: 'modified', what: ['content', 'mode', 'xattrs'] }]);
  });

  it('never follows a symlink planted where a directory was, nor a FIFO where a file was', async () => {
    const d = await deployed('bare-user');
    // The same entries elsewhere: following the link would find nothing wrong.
    const outside = tmpDir('strata-verify-outside-');
    fs.cpSync(d.at('usr/share/deep'), path.join(outside, 'deep'), { recursive: true, preserveTimestamps: true });
    fs.rmSync(d.at('usr/share/deep'), { recursive: true });
    fs.symlinkSync(path.join(outside, 'deep'), d.at('usr/share/deep'));
    fs.rmSync(d.at('usr/share/odd-perms'));
    sh('mkfifo', [d.at('usr/share/odd-perms')]);
    expect(await differences(d)).toEqual([
      { path: '/usr/share/deep', kind: 'modified', what: ['type'] },
      { path: '/usr/share/odd-perms', kind: 'modified', what: ['type'] },
    ]);
  });

  it('skips excluded top-level names on both sides', async () => {
    const d = await deployed('bare-user');
    fs.writeFileSync(d.at('etc/hostname'), 'changed\n');
    fs.rmSync(d.at('etc/empty'));
    fs.mkdirSync(d.at('var/lib/state'), { recursive: true });
    fs.rmSync(d.at('var/empty'), { recursive: true });
    const all = await differences(d);
    expect(all.map((x) => x.path)).toEqual(['/etc/empty', '/etc/hostname', '/var/empty', '/var/lib']);
    const r = await verify(d, { exclude: ['etc', 'var'] });
    expect(r.differences).toEqual([]);
    // Excluded means not looked at: fewer entries checked.
    expect(r.checked).toBe(census(d.dest).entries + 1 - census(d.at('etc')).entries - census(d.at('var')).entries - 2);
  });
});

describe('verifyTree: tampering is detected (archive, copied)', () => {
  it('content (same size), mode and a removed file', async () => {
    const d = await deployed('archive');
    fs.writeFileSync(d.at('usr/share/big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 9));
    fs.chmodSync(d.at('usr/bin/su-helper'), 0o755);
    fs.rmSync(d.at('usr/bin/dangling'));
    expect(await differences(d)).toEqual([
      { path: '/usr/bin/dangling', kind: 'removed' },
      { path: '/usr/bin/su-helper', kind: 'modified', what: ['mode'] },
      { path: '/usr/share/big.bin', kind: 'modified', what: ['content'] },
    ]);
  });
});

describe('verifyTree: threads', () => {
  it('workers: 1 and 2 give identical results on a larger tampered tree', async () => {
    const tree = path.join(tmpDir('strata-verify-many-'), 'tree');
    makeTree(tree);
    for (let i = 0; i < 40; i++) {
      for (let j = 0; j < 12; j++) fs.writeFileSync(path.join(tree, `usr/share/many-${i}-${j}`), `file ${i} ${j}\n`.repeat(j * 50));
    }
    const d = await deployed('bare-user', tree);
    fs.writeFileSync(d.at('usr/share/many-3-4'), 'x');
    fs.chmodSync(d.at('usr/share/many-20-7'), 0o600);
    fs.writeFileSync(d.at('usr/share/many-39-11'), 'new');
    fs.rmSync(d.at('usr/share/many-39-10'));
    fs.writeFileSync(d.at('usr/share/many-39-99'), 'added');
    const one = await verify(d, { workers: 1 });
    const two = await verify(d, { workers: 2 });
    expect(one.differences).toEqual([
      { path: '/usr/share/many-20-7', kind: 'modified', what: ['mode'] },
      { path: '/usr/share/many-3-4', kind: 'modified', what: ['content'] },
      { path: '/usr/share/many-39-10', kind: 'removed' },
      { path: '/usr/share/many-39-11', kind: 'modified', what: ['content'] },
      { path: '/usr/share/many-39-99', kind: 'added' },
    ]);
    expect(two).toEqual(one);
  });
});

describe('hashFiles', () => {
  it('puts the given owner in the header, as a non-root verify does; the disk owner otherwise', async () => {
    const d = await deployed('archive');
    const node = resolveTreePath(d.repo, d.commit, '/usr/bin/tool');
    if (node.kind !== 'file') throw new Error('expected a file');
    const file = d.at('usr/bin/tool');
    expect(hashFiles({ paths: [file], owner: null }).checksums).toEqual([node.checksum]);
    if (!isRoot) return;
    fs.chownSync(file, 1234, 1234);
    expect(hashFiles({ paths: [file], owner: null }).checksums).not.toEqual([node.checksum]);
    expect(hashFiles({ paths: [file], owner: [0, 0] })).toEqual({ checksums: [node.checksum], bytes: fs.statSync(file).size });
  });

  it('hashes symlinks without following them; anything else is null', async () => {
    const d = await deployed('bare-user');
    const node = resolveTreePath(d.repo, d.commit, '/usr/bin/tool-link');
    if (node.kind !== 'file') throw new Error('expected a file');
    expect(hashFiles({ paths: [d.at('usr/bin/tool-link'), d.at('usr/share'), d.at('nope')], owner: null })).toEqual({ checksums: [node.checksum, null, null], bytes: 0 });
  });
});

describe('verifyTree: errors', () => {
  it('a missing root is PATH_NOT_FOUND; a bad exclude name is UNSAFE_PATH', async () => {
    const d = await deployed('bare-user');
    await expect(verifyTree({ repo: d.repo, commit: d.commit, root: path.join(d.dest, 'nope') })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await expect(verifyTree({ repo: d.repo, commit: d.commit, root: d.at('etc/hostname') })).rejects.toMatchObject({ code: 'PATH_NOT_FOUND' });
    await expect(verify(d, { exclude: ['../etc'] })).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
  });
});
