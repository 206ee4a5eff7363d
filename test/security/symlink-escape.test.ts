// Attack: escape a checkout through a symlink. A tree cannot hold a symlink
// `evil -> /outside` and a directory `evil/` at once (names are unique), so a
// dirtree claiming both must be refused; and a union checkout into a
// directory where `evil` already is a symlink to somewhere else must replace
// the symlink, never write through it.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDirTree } from '../../src/core/objects.js';
import { isStrataError } from '../../src/errors.js';
import { checkout } from '../../src/repo/checkout.js';
import { tmpDir } from '../helpers/fixtures.js';
import { type RepoInfo, dirtreeBytes, expectOk, expectRefusal, honestRepo, putCommit, putObject, raw, run, snapshot } from './hostile-repo.js';

describe('symlink escape', () => {
  let work: string;
  let info: RepoInfo;
  let outside: string;
  let outsideFile: string;
  let before: string[];

  beforeAll(() => {
    work = tmpDir('strata-symlink-escape-');
    info = honestRepo(work);
    outside = path.join(work, 'outside');
    fs.mkdirSync(outside);
    outsideFile = path.join(outside, 'precious');
    fs.writeFileSync(outsideFile, 'do not touch\n');
    before = snapshot(outside);
  });

  /** Commits a tree built by `build` on `ref` and returns the commit. */
  const commitTree = (name: string, ref: string, build: (root: string) => void): string => {
    const root = path.join(work, `src-${name}`);
    fs.mkdirSync(root);
    build(root);
    return expectOk(run(['commit', '--repo', info.repo, '-b', ref, '--timestamp', '1700000000', root])).trim();
  };

  const linkObject = (target: string): string => {
    const c = commitTree(`link-${path.basename(target)}`, `links/${path.basename(target)}`, (root) => fs.symlinkSync(target, path.join(root, 'evil')));
    return run(['ls', '--repo', info.repo, '--json', c, '/evil']).json<{ checksum: string }[]>()[0].checksum;
  };

  it('a dirtree with `evil` both as a symlink to an outside directory and as a directory is refused', async () => {
    const link = linkObject(outside);
    // The directory `evil` holds /etc's entries: hostname would land in `outside` through the link.
    const bytes = dirtreeBytes([['evil', Buffer.from(link, 'hex')]], [['evil', raw(info.etcTree), raw(info.rootMeta)]]);
    let code: string | undefined;
    try {
      parseDirTree(bytes);
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).toBe('OBJECT_MALFORMED');

    const root = putObject(info, 'dirtree', bytes);
    putCommit(info, root, info.rootMeta, 'hostile/file-and-dir');
    const box = path.join(work, 'box-file-and-dir');
    fs.mkdirSync(box);
    const dest = path.join(box, 'dest');
    expectRefusal(run(['checkout', '--repo', info.repo, 'hostile/file-and-dir', dest]), 'OBJECT_MALFORMED');
    expect(fs.readdirSync(box)).toEqual([]);
    expect(snapshot(outside)).toEqual(before);

    const err = await checkout({ repo: info.repo, rev: 'hostile/file-and-dir', dest }).catch((e: unknown) => e);
    expect(isStrataError(err, 'OBJECT_MALFORMED'), String(err)).toBe(true);

    // Union into an existing directory is refused before anything is written.
    const udest = path.join(work, 'union-file-and-dir');
    fs.mkdirSync(udest);
    fs.writeFileSync(path.join(udest, 'keep'), 'mine\n');
    const ubefore = snapshot(udest);
    expectRefusal(run(['checkout', '--repo', info.repo, '--union', 'hostile/file-and-dir', udest]), 'OBJECT_MALFORMED');
    expect(snapshot(udest)).toEqual(ubefore);
    expect(snapshot(outside)).toEqual(before);
    expectRefusal(run(['ls', '--repo', info.repo, 'hostile/file-and-dir']), 'OBJECT_MALFORMED');
  });

  it('a union checkout does not write through a pre-existing symlink to an outside directory', () => {
    const c = commitTree('dir-evil', 'trees/dir-evil', (root) => {
      fs.mkdirSync(path.join(root, 'evil/sub'), { recursive: true });
      fs.writeFileSync(path.join(root, 'evil/precious'), 'from the tree\n');
      fs.writeFileSync(path.join(root, 'evil/sub/new'), 'from the tree\n');
    });
    const dest = path.join(work, 'dest-dir-evil');
    fs.mkdirSync(dest);
    fs.symlinkSync(outside, path.join(dest, 'evil'));
    expectOk(run(['checkout', '--repo', info.repo, '--union', c, dest]));
    expect(snapshot(outside)).toEqual(before);
    expect(fs.lstatSync(path.join(dest, 'evil')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(dest, 'evil/sub/new'), 'utf8')).toBe('from the tree\n');
  });

  it('a union checkout replaces a symlink to an outside file instead of writing into that file', () => {
    const c = commitTree('file-evil', 'trees/file-evil', (root) => fs.writeFileSync(path.join(root, 'evil'), 'from the tree\n'));
    const dest = path.join(work, 'dest-file-evil');
    fs.mkdirSync(dest);
    fs.symlinkSync(outsideFile, path.join(dest, 'evil'));
    expectOk(run(['checkout', '--repo', info.repo, '--union', c, dest]));
    expect(snapshot(outside)).toEqual(before);
    expect(fs.lstatSync(path.join(dest, 'evil')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(dest, 'evil'), 'utf8')).toBe('from the tree\n');
  });

  it('a symlink checked out by one commit is not followed by the next union checkout', () => {
    const first = commitTree('two-step-1', 'trees/two-step-1', (root) => fs.symlinkSync(outside, path.join(root, 'evil')));
    const second = commitTree('two-step-2', 'trees/two-step-2', (root) => {
      fs.mkdirSync(path.join(root, 'evil'));
      fs.writeFileSync(path.join(root, 'evil/planted'), 'from the tree\n');
    });
    const dest = path.join(work, 'dest-two-step');
    expectOk(run(['checkout', '--repo', info.repo, first, dest]));
    expect(fs.readlinkSync(path.join(dest, 'evil'))).toBe(outside);
    expectOk(run(['checkout', '--repo', info.repo, '--union', second, dest]));
    expect(snapshot(outside)).toEqual(before);
    expect(fs.existsSync(path.join(outside, 'planted'))).toBe(false);
    expect(fs.lstatSync(path.join(dest, 'evil')).isDirectory()).toBe(true);
  });

  it('a single-file --subpath --union checkout onto a symlink replaces the link, not its target', () => {
    const dest = path.join(work, 'dest-single-file');
    fs.symlinkSync(outsideFile, dest);
    expectOk(run(['checkout', '--repo', info.repo, '--union', '--subpath', '/etc/hostname', 'main', dest]));
    expect(snapshot(outside)).toEqual(before);
    expect(fs.lstatSync(dest).isFile()).toBe(true);
    expect(fs.readFileSync(dest, 'utf8')).toBe('honest\n');
  });

  it('a checkout whose DEST is a symlink to an outside directory is refused without --union', () => {
    const dest = path.join(work, 'dest-is-link');
    fs.symlinkSync(outside, dest);
    expectRefusal(run(['checkout', '--repo', info.repo, 'main', dest]), 'DEST_EXISTS');
    expectRefusal(run(['checkout', '--repo', info.repo, '--union', 'main', dest]), 'DEST_EXISTS');
    expect(snapshot(outside)).toEqual(before);
    expect(fs.readlinkSync(dest)).toBe(outside);
  });
});
