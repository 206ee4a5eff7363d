// checkout --subpath and --union, --copy, and what a checkout reports.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { checkout } from '../../src/repo/checkout.js';
import { commit } from '../../src/repo/commit.js';
import { resolveRev } from '../../src/repo/refs.js';
import { Repo } from '../../src/repo/repo.js';
import { resolveTreePath } from '../../src/repo/walk.js';
import { isRoot, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

function buildTree(root: string): void {
  const w = (p: string, content: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), content);
    fs.chmodSync(path.join(root, p), mode);
  };
  w('etc/hostname', 'tree\n');
  w('etc/motd', 'hello\n');
  w('usr/bin/tool', '#!/bin/sh\n', 0o755);
  w('usr/bin/su', 'setuid\n', 0o4755);
  w('usr/share/doc/README', 'readme\n');
  w('replaced-dir', 'a file in the tree\n');
  fs.mkdirSync(path.join(root, 'replaced-file'));
  w('replaced-file/inside', 'x\n');
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.mkdirSync(path.join(root, 'private'));
  fs.chmodSync(path.join(root, 'private'), 0o700);
  fs.mkdirSync(path.join(root, 'locked'));
  w('locked/f', 'in a read-only dir\n');
  fs.chmodSync(path.join(root, 'locked'), 0o555);
}

/** `path mode [-> target]` for every entry, to compare checkouts with their source. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(p)}`);
      else {
        out.push(`${rel} ${(st.mode & 0o7777).toString(8)}${st.isFile() ? ' ' + fs.readFileSync(p, 'utf8') : ''}`);
        if (st.isDirectory()) walk(p);
      }
    }
  };
  walk(dir);
  return out;
}

for (const mode of ['archive', 'bare-user'] as const) {
  describe(`checkout (${mode})`, () => {
    let work: string;
    let repo: string;
    let src: string;
    let c: Checksum;

    beforeAll(async () => {
      work = tmpDir('strata-checkout-');
      src = path.join(work, 'src');
      buildTree(src);
      repo = path.join(work, 'repo');
      Repo.init(repo, mode);
      c = (await commit({ repo, branch: 'main', source: src, timestamp: 1_700_000_000 })).commit;
    });

    it('a whole tree, with counts: hardlinks from bare-user, copies from archive', async () => {
      const dest = path.join(work, 'full');
      const r = await checkout({ repo, rev: 'main', dest });
      expect(listing(dest)).toEqual(listing(src));
      expect(r).toMatchObject({ commit: c, dest, files: 8, symlinks: 1, dirs: 9 });
      expect(r.hardlinked + r.copied).toBe(8);
      // The setuid file is always a copy; from archive every file is.
      expect(r.copied).toBe(mode === 'archive' ? 8 : 1);
      const su = fs.statSync(path.join(dest, 'usr/bin/su'));
      expect(su.mode & 0o7777).toBe(0o4755);
      expect(su.nlink).toBe(1);
      expect(fs.readdirSync(work).filter((n) => n.includes('strata-tmp'))).toEqual([]);
    });

    it('--copy never hardlinks', async () => {
      const r = await checkout({ repo, rev: 'main', dest: path.join(work, 'copied'), copy: true });
      expect(r.hardlinked).toBe(0);
      expect(r.copied).toBe(8);
      expect(fs.statSync(path.join(work, 'copied/etc/hostname')).nlink).toBe(1);
    });

    it('--subpath of a directory checks out just that subtree', async () => {
      const dest = path.join(work, 'sub-usr');
      const r = await checkout({ repo, rev: 'main', dest, subpath: '/usr/share' });
      expect(listing(dest)).toEqual(listing(path.join(src, 'usr/share')));
      expect(r.files).toBe(1);
    });

    it('--subpath of a file: into an existing directory under its own name, or as DEST itself', async () => {
      const dir = path.join(work, 'sub-file-dir');
      fs.mkdirSync(dir);
      await checkout({ repo, rev: 'main', dest: dir, subpath: 'etc/hostname' });
      expect(fs.readFileSync(path.join(dir, 'hostname'), 'utf8')).toBe('tree\n');
      const file = path.join(work, 'sub-file');
      await checkout({ repo, rev: 'main', dest: file, subpath: '/usr/bin/su' });
      expect(fs.readFileSync(file, 'utf8')).toBe('setuid\n');
      expect(fs.statSync(file).mode & 0o7777).toBe(0o4755);
      const link = path.join(work, 'sub-link');
      await checkout({ repo, rev: 'main', dest: link, subpath: '/bin' });
      expect(fs.readlinkSync(link)).toBe('usr/bin');
    });

    it('--union writes into an existing tree: replaces what the tree has, keeps the rest', async () => {
      const dest = path.join(work, 'union');
      fs.mkdirSync(path.join(dest, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(dest, 'etc/hostname'), 'mine\n');
      fs.writeFileSync(path.join(dest, 'etc/local-only'), 'keep\n');
      fs.mkdirSync(path.join(dest, 'replaced-dir/deep'), { recursive: true });
      fs.writeFileSync(path.join(dest, 'replaced-dir/deep/x'), 'x');
      fs.writeFileSync(path.join(dest, 'replaced-file'), 'a file where the tree has a directory\n');
      fs.symlinkSync('/elsewhere', path.join(dest, 'bin'));
      fs.mkdirSync(path.join(dest, 'private'));
      fs.chmodSync(path.join(dest, 'private'), 0o755);
      const r = await checkout({ repo, rev: 'main', dest, union: true });
      expect(r.files).toBe(8);
      expect(fs.readFileSync(path.join(dest, 'etc/hostname'), 'utf8')).toBe('tree\n');
      expect(fs.readFileSync(path.join(dest, 'etc/local-only'), 'utf8')).toBe('keep\n');
      expect(fs.readFileSync(path.join(dest, 'replaced-dir'), 'utf8')).toBe('a file in the tree\n');
      expect(fs.readFileSync(path.join(dest, 'replaced-file/inside'), 'utf8')).toBe('x\n');
      expect(fs.readlinkSync(path.join(dest, 'bin'))).toBe('usr/bin');
      expect(fs.statSync(path.join(dest, 'private')).mode & 0o7777).toBe(0o700);
      expect(fs.statSync(path.join(dest, 'locked')).mode & 0o7777).toBe(0o555);
      expect(listing(dest).filter((l) => !l.startsWith('etc/local-only'))).toEqual(listing(src));
      expect(fs.readdirSync(dest).filter((n) => n.includes('strata-tmp'))).toEqual([]);
    });

    it('--union refuses a tree with a missing object before writing anything', async () => {
      const broken = path.join(work, 'broken-repo');
      Repo.init(broken, mode);
      await commit({ repo: broken, branch: 'main', source: src, timestamp: 1_700_000_000 });
      const r = Repo.open(broken);
      const victim = resolveTreePath(r, resolveRev(r, 'main'), '/usr/share/doc/README');
      if (victim.kind !== 'file') throw new Error('expected a file');
      fs.rmSync(r.objectFile(victim.checksum, 'file'));
      const dest = path.join(work, 'union-broken');
      fs.mkdirSync(path.join(dest, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(dest, 'etc/hostname'), 'mine\n');
      await expect(checkout({ repo: broken, rev: 'main', dest, union: true })).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
      expect(fs.readdirSync(dest)).toEqual(['etc']);
      expect(fs.readFileSync(path.join(dest, 'etc/hostname'), 'utf8')).toBe('mine\n');
    });

    it('--union twice is idempotent, also for read-only directories', async () => {
      const dest = path.join(work, 'union-twice');
      await checkout({ repo, rev: 'main', dest });
      await checkout({ repo, rev: 'main', dest, union: true });
      expect(listing(dest)).toEqual(listing(src));
    });

    it('--union with --subpath of a directory', async () => {
      const dest = path.join(work, 'union-sub');
      fs.mkdirSync(dest);
      fs.writeFileSync(path.join(dest, 'tool'), 'old\n');
      fs.writeFileSync(path.join(dest, 'other'), 'keep\n');
      await checkout({ repo, rev: 'main', dest, union: true, subpath: '/usr/bin' });
      expect(fs.readFileSync(path.join(dest, 'tool'), 'utf8')).toBe('#!/bin/sh\n');
      expect(fs.readFileSync(path.join(dest, 'other'), 'utf8')).toBe('keep\n');
      expect(fs.readFileSync(path.join(dest, 'su'), 'utf8')).toBe('setuid\n');
    });

    it.skipIf(!isRoot)('as root, owners are restored on copies and on existing directories under --union', async () => {
      const own = path.join(work, 'owned-src');
      fs.mkdirSync(path.join(own, 'home/user'), { recursive: true });
      fs.writeFileSync(path.join(own, 'home/user/file'), 'mine\n');
      fs.chownSync(path.join(own, 'home/user'), 1000, 100);
      fs.chownSync(path.join(own, 'home/user/file'), 1000, 100);
      const oc = (await commit({ repo, branch: 'owned', source: own, timestamp: 1_700_000_000 })).commit;
      const dest = path.join(work, 'owned-dest');
      fs.mkdirSync(path.join(dest, 'home/user'), { recursive: true });
      await checkout({ repo, rev: oc, dest, union: true });
      for (const p of ['home/user', 'home/user/file']) {
        const st = fs.lstatSync(path.join(dest, p));
        expect(`${st.uid}:${st.gid}`, p).toBe('1000:100');
      }
    });
  });
}
