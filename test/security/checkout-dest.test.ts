// Attack (or accident): a checkout aimed at a directory that already holds
// data. Without --union it must refuse with DEST_EXISTS and change nothing.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../src/errors.js';
import { checkout } from '../../src/repo/checkout.js';
import { tmpDir } from '../helpers/fixtures.js';
import { type RepoInfo, expectOk, expectRefusal, honestRepo, run, snapshot } from './hostile-repo.js';

describe('checkout into an existing destination', () => {
  let work: string;
  let info: RepoInfo;

  beforeAll(() => {
    work = tmpDir('strata-dest-');
    info = honestRepo(work);
  });

  const occupied = (name: string): string => {
    const dest = path.join(work, name);
    fs.mkdirSync(path.join(dest, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'etc/hostname'), 'my data\n');
    fs.writeFileSync(path.join(dest, 'notes'), 'keep me\n');
    fs.symlinkSync('/nowhere', path.join(dest, 'link'));
    return dest;
  };

  it('a non-empty directory without --union: DEST_EXISTS, destination untouched', async () => {
    const dest = occupied('non-empty');
    const before = snapshot(work);
    expectRefusal(run(['checkout', '--repo', info.repo, 'main', dest]), 'DEST_EXISTS');
    expect(snapshot(work)).toEqual(before);
    const err = await checkout({ repo: info.repo, rev: 'main', dest }).catch((e: unknown) => e);
    expect(isStrataError(err, 'DEST_EXISTS')).toBe(true);
    expect(snapshot(work)).toEqual(before);
  });

  it('a non-empty directory with --subpath: DEST_EXISTS, destination untouched', () => {
    const dest = occupied('non-empty-subpath');
    const before = snapshot(work);
    expectRefusal(run(['checkout', '--repo', info.repo, '--subpath', '/usr', 'main', dest]), 'DEST_EXISTS');
    expect(snapshot(work)).toEqual(before);
  });

  it('a regular file as destination: DEST_EXISTS, file untouched (with and without --union)', () => {
    const dest = path.join(work, 'a-file');
    fs.writeFileSync(dest, 'precious\n');
    const before = snapshot(work);
    expectRefusal(run(['checkout', '--repo', info.repo, 'main', dest]), 'DEST_EXISTS');
    expectRefusal(run(['checkout', '--repo', info.repo, '--union', 'main', dest]), 'DEST_EXISTS');
    expect(snapshot(work)).toEqual(before);
  });

  it('a single file over an existing file without --union: DEST_EXISTS, file untouched', () => {
    const dest = path.join(work, 'hostname-copy');
    fs.writeFileSync(dest, 'precious\n');
    const before = snapshot(work);
    expectRefusal(run(['checkout', '--repo', info.repo, '--subpath', '/etc/hostname', 'main', dest]), 'DEST_EXISTS');
    expect(snapshot(work)).toEqual(before);
  });

  it('an existing empty directory is fine, and so is --union into a non-empty one', () => {
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    expectOk(run(['checkout', '--repo', info.repo, 'main', empty]));
    expect(fs.readFileSync(path.join(empty, 'etc/hostname'), 'utf8')).toBe('honest\n');
    const dest = occupied('union-ok');
    expectOk(run(['checkout', '--repo', info.repo, '--union', 'main', dest]));
    expect(fs.readFileSync(path.join(dest, 'etc/hostname'), 'utf8')).toBe('honest\n');
    expect(fs.readFileSync(path.join(dest, 'notes'), 'utf8')).toBe('keep me\n');
  });

  it('an unknown rev or a missing repo refuses before creating DEST', () => {
    const dest = path.join(work, 'never');
    expectRefusal(run(['checkout', '--repo', info.repo, 'no/such/ref', dest]), 'REF_NOT_FOUND');
    expectRefusal(run(['checkout', '--repo', path.join(work, 'no-repo'), 'main', dest]), 'REPO_NOT_FOUND');
    expectRefusal(run(['checkout', '--repo', info.repo, '--subpath', '/no/such/path', 'main', dest]), 'PATH_NOT_FOUND');
    expect(fs.existsSync(dest)).toBe(false);
  });
});
