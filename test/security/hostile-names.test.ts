// Attack: a repository (a tampered disk, a hostile mirror) holds a dirtree
// whose entry names are `..`, `.`, '' or `a/b`, hoping a checkout writes
// outside its destination. The objects are named by their real SHA-256, so
// only name validation stands in the way.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDirTree } from '../../src/core/objects.js';
import { checkout } from '../../src/repo/checkout.js';
import { isStrataError } from '../../src/errors.js';
import { tmpDir } from '../helpers/fixtures.js';
import { type RepoInfo, dirtreeBytes, expectRefusal, honestRepo, putCommit, putObject, raw, run, snapshot } from './hostile-repo.js';

const NAMES: [string, string][] = [
  ['..', 'dot-dot'],
  ['.', 'dot'],
  ['', 'empty'],
  ['a/b', 'slash'],
  ['../../escaped', 'dot-dot-slash'],
  ['/abs', 'absolute'],
];

describe('hostile dirtree entry names', () => {
  let work: string;
  let info: RepoInfo;

  beforeAll(() => {
    work = tmpDir('strata-hostile-names-');
    info = honestRepo(work);
  });

  /** Root: an honest /etc (made first), then /usr holding the hostile entry. */
  const hostileCommit = (name: string, as: 'file' | 'dir', label: string): string => {
    const bad = as === 'file'
      ? dirtreeBytes([[name, raw(info.file)]], [])
      : dirtreeBytes([], [[name, raw(info.etcTree), raw(info.rootMeta)]]);
    const badTree = putObject(info, 'dirtree', bad);
    const root = putObject(info, 'dirtree', dirtreeBytes([], [['etc', raw(info.etcTree), raw(info.rootMeta)], ['usr', raw(badTree), raw(info.rootMeta)]]));
    putCommit(info, root, info.rootMeta, `hostile/${label}-${as}`);
    return `hostile/${label}-${as}`;
  };

  for (const [name, label] of NAMES) {
    for (const as of ['file', 'dir'] as const) {
      describe(`${JSON.stringify(name)} as a ${as} name`, () => {
        let ref: string;
        beforeAll(() => {
          ref = hostileCommit(name, as, label);
        });

        it('checkout refuses; DEST never appears and nothing is written beside it', async () => {
          const box = path.join(work, `box-${label}-${as}`);
          fs.mkdirSync(box);
          const before = snapshot(work);
          const dest = path.join(box, 'dest');
          const r = run(['checkout', '--repo', info.repo, ref, dest]);
          expectRefusal(r, 'UNSAFE_PATH');
          expect(fs.readdirSync(box)).toEqual([]);
          expect(snapshot(work)).toEqual(before);
          // The library says why, with a stable code.
          const err = await checkout({ repo: info.repo, rev: ref, dest }).catch((e: unknown) => e);
          expect(isStrataError(err, 'UNSAFE_PATH'), String(err)).toBe(true);
          expect(fs.readdirSync(box)).toEqual([]);
        });

        it('checkout --union into an existing DEST refuses and leaves DEST untouched', () => {
          const dest = path.join(work, `union-${label}-${as}`);
          fs.mkdirSync(dest);
          fs.writeFileSync(path.join(dest, 'keep'), 'mine\n');
          const before = snapshot(work);
          const r = run(['checkout', '--repo', info.repo, '--union', ref, dest]);
          expectRefusal(r, 'UNSAFE_PATH');
          expect(snapshot(work)).toEqual(before);
        });

        it('ls -R refuses with one line; fsck reports the dirtree', () => {
          expectRefusal(run(['ls', '--repo', info.repo, '-R', ref]), 'UNSAFE_PATH');
          const f = run(['fsck', '--repo', info.repo, '--json']);
          expect(f.status).toBe(1);
          expect(f.json<{ problems: { type: string }[] }>().problems.some((p) => p.type === 'dirtree')).toBe(true);
        });
      });
    }
  }

  it('a hostile root dirtree is refused the same way', () => {
    const root = putObject(info, 'dirtree', dirtreeBytes([['..', raw(info.file)]], []));
    putCommit(info, root, info.rootMeta, 'hostile/root');
    const box = path.join(work, 'box-root');
    fs.mkdirSync(box);
    const before = snapshot(work);
    expectRefusal(run(['checkout', '--repo', info.repo, 'hostile/root', path.join(box, 'dest')]), 'UNSAFE_PATH');
    expect(snapshot(work)).toEqual(before);
    expect(fs.readdirSync(box)).toEqual([]);
  });

  it('--subpath with `..` cannot climb out of the tree', () => {
    const box = path.join(work, 'box-subpath');
    fs.mkdirSync(box);
    expectRefusal(run(['checkout', '--repo', info.repo, '--subpath', '/etc/../..', 'main', path.join(box, 'dest')]), 'UNSAFE_PATH');
    expect(fs.readdirSync(box)).toEqual([]);
  });

  it('parseDirTree itself refuses every hostile name', () => {
    for (const [name] of NAMES) {
      for (const bytes of [dirtreeBytes([[name, raw(info.file)]], []), dirtreeBytes([], [[name, raw(info.etcTree), raw(info.rootMeta)]])]) {
        let code: string | undefined;
        try {
          parseDirTree(bytes);
        } catch (err) {
          code = (err as { code?: string }).code;
        }
        expect(code, JSON.stringify(name)).toBe('UNSAFE_PATH');
      }
    }
  });
});
