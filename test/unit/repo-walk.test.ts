// ls and cat: reading trees out of commits in both repository modes.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Checksum } from '../../src/core/objects.js';
import { commit } from '../../src/repo/commit.js';
import { Repo } from '../../src/repo/repo.js';
import { formatMode, listTree, resolveTreePath, splitTreePath } from '../../src/repo/walk.js';
import { isRoot, sh, tmpDir } from '../helpers/fixtures.js';
import { codeOf } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';


function buildTree(root: string): void {
  const w = (p: string, content: string | Buffer, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), content);
    fs.chmodSync(path.join(root, p), mode);
  };
  w('etc/hostname', 'box\n');
  w('etc/empty', '');
  w('usr/bin/tool', '#!/bin/sh\n', 0o755);
  w('usr/bin/su', 'setuid\n', 0o4755);
  w('usr/lib/big', Buffer.alloc(200_000, 7));
  w('usr/share/b', 'b');
  w('usr/share/a', 'a');
  w('usr/share/B', 'B');
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.mkdirSync(path.join(root, 'tmp'));
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  sh('setfattr', ['-n', 'user.label', '-v', 'x', path.join(root, 'etc/hostname')]);
  if (isRoot) fs.chownSync(path.join(root, 'usr/share/a'), 1000, 100);
}

for (const mode of ['archive', 'bare-user'] as const) {
  describe(`ls and cat (${mode})`, () => {
    let repo: Repo;
    let c: Checksum;
    let src: string;

    beforeAll(async () => {
      const dir = tmpDir('strata-walk-');
      src = path.join(dir, 'src');
      buildTree(src);
      repo = Repo.init(path.join(dir, 'repo'), mode).repo;
      c = (await commit({ repo: repo.path, branch: 'main', source: src, timestamp: 1_700_000_000 })).commit;
    });

    it('lists a directory in byte order of names, with types, modes, owners, sizes', () => {
      const root = listTree(repo, c, '/', false);
      expect(root.map((e) => `${e.path} ${e.type}`)).toEqual(['/bin symlink', '/etc dir', '/tmp dir', '/usr dir']);
      expect(root[0]).toMatchObject({ name: 'bin', target: 'usr/bin', size: 0, mode: 0o120777 });
      expect(root[2].mode).toBe(0o41777);
      const share = listTree(repo, c, '/usr/share', false);
      expect(share.map((e) => e.name)).toEqual(['B', 'a', 'b']);
      if (isRoot) expect(share[1]).toMatchObject({ uid: 1000, gid: 100 });
    });

    it('lists a whole subtree with -R, parents before children', () => {
      const all = listTree(repo, c, '/usr', true).map((e) => e.path);
      expect(all).toEqual([
        '/usr/bin', '/usr/bin/su', '/usr/bin/tool', '/usr/lib', '/usr/lib/big', '/usr/share', '/usr/share/B', '/usr/share/a', '/usr/share/b',
      ]);
      const big = listTree(repo, c, '/usr/lib', false)[0];
      expect(big).toMatchObject({ type: 'file', size: 200_000, mode: 0o100644 });
    });

    it('lists a single file as one entry, with its checksum and xattrs', () => {
      const [e] = listTree(repo, c, '/etc/hostname', false);
      expect(e).toMatchObject({ path: '/etc/hostname', name: 'hostname', type: 'file', size: 4 });
      expect(e.xattrs.map((x) => `${x.name}=${x.value.toString()}`)).toEqual(['user.label=x']);
      expect(resolveTreePath(repo, c, 'etc/hostname')).toEqual({ kind: 'file', checksum: e.checksum });
    });

    it('cat gives a file’s exact bytes (empty and large too); a symlink has no content', () => {
      for (const p of ['etc/hostname', 'etc/empty', 'usr/lib/big', 'usr/bin/su']) {
        const node = resolveTreePath(repo, c, p);
        if (node.kind !== 'file') throw new Error('not a file');
        const { meta, content } = repo.loadFile(node.checksum);
        expect(content?.equals(fs.readFileSync(path.join(src, p))), p).toBe(true);
        expect(meta.mode & 0o7777).toBe(fs.statSync(path.join(src, p)).mode & 0o7777);
      }
      const link = resolveTreePath(repo, c, '/bin');
      if (link.kind !== 'file') throw new Error('not a file');
      expect(repo.loadFile(link.checksum)).toMatchObject({ content: undefined, meta: { symlinkTarget: 'usr/bin' } });
    });

    it('says PATH_NOT_FOUND, NOT_A_DIRECTORY and UNSAFE_PATH', () => {
      expect(codeOf(() => listTree(repo, c, '/nope', false))).toBe('PATH_NOT_FOUND');
      expect(codeOf(() => listTree(repo, c, '/etc/hostname/x', false))).toBe('NOT_A_DIRECTORY');
      expect(codeOf(() => resolveTreePath(repo, c, '/etc/../..'))).toBe('UNSAFE_PATH');
    });

    it('follows no symlink inside the tree: /bin/tool is not /usr/bin/tool', () => {
      expect(codeOf(() => resolveTreePath(repo, c, '/bin/tool'))).toBe('NOT_A_DIRECTORY');
    });
  });
}

describe('paths and modes', () => {
  it('splitTreePath drops empty and `.` parts and refuses `..`', () => {
    expect(splitTreePath('/')).toEqual([]);
    expect(splitTreePath('//usr/./bin//')).toEqual(['usr', 'bin']);
    expect(codeOf(() => splitTreePath('/usr/../etc'))).toBe('UNSAFE_PATH');
  });

  it.each([
    [0o40755, 'drwxr-xr-x'], [0o100644, '-rw-r--r--'], [0o120777, 'lrwxrwxrwx'], [0o104755, '-rwsr-xr-x'], [0o102755, '-rwxr-sr-x'],
    [0o41777, 'drwxrwxrwt'], [0o41776, 'drwxrwxrwT'], [0o104644, '-rwSr--r--'], [0o100000, '----------'],
  ])('formatMode(%o) is %s', (mode, text) => {
    expect(formatMode(mode)).toBe(text);
  });
});
