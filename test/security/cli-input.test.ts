// Attack (or typo): bad input on the command line. Each is one line on
// stderr, a non-zero exit from the registry, and no change to the repository.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CLI, tmpDir } from '../helpers/fixtures.js';
import { type RepoInfo, expectRefusal, honestRepo, run, snapshot } from './hostile-repo.js';

describe('bad command-line input', () => {
  let work: string;
  let info: RepoInfo;
  let src: string;
  let before: string[];

  beforeAll(() => {
    work = tmpDir('strata-cli-');
    info = honestRepo(work);
    src = path.join(work, 'src');
    before = snapshot(info.repo);
  });

  const noEnvRepo = { STRATA_REPO: '' };

  it('missing --repo (and no STRATA_REPO)', () => {
    for (const args of [['log', 'main'], ['ls', 'main'], ['fsck'], ['checkout', 'main', path.join(work, 'x')], ['commit', '-b', 'main', src], ['refs'], ['prune']]) {
      expectRefusal(run(args, noEnvRepo), 'USAGE');
    }
    expect(fs.existsSync(path.join(work, 'x'))).toBe(false);
  });

  it('STRATA_REPO stands in for --repo', () => {
    expect(run(['log', 'main'], { STRATA_REPO: info.repo }).status).toBe(0);
  });

  it('unknown ref', () => {
    for (const cmd of ['log', 'show', 'ls', 'rev-parse']) expectRefusal(run([cmd, '--repo', info.repo, 'no/such/ref']), 'REF_NOT_FOUND');
    expectRefusal(run(['diff', '--repo', info.repo, 'main', 'nope']), 'REF_NOT_FOUND');
    expectRefusal(run(['checkout', '--repo', info.repo, 'nope', path.join(work, 'y')]), 'REF_NOT_FOUND');
    expect(fs.existsSync(path.join(work, 'y'))).toBe(false);
  });

  it('unknown commit checksum and short ambiguous or unknown prefixes', () => {
    expectRefusal(run(['show', '--repo', info.repo, '0'.repeat(64)]), 'OBJECT_MISSING');
    expectRefusal(run(['show', '--repo', info.repo, 'ffff']), 'REF_NOT_FOUND');
  });

  it('REF^ past the first commit', () => {
    expectRefusal(run(['rev-parse', '--repo', info.repo, 'main^']), 'NO_PARENT');
  });

  it('invalid ref names for commit -b', () => {
    for (const bad of ['', 'a b', 'a/../b', '../escape', '/abs', 'a//b', 'trailing/', 'tab\there', 'x\ny', '.hidden', '-dash', 'a/.b']) {
      expectRefusal(run(['commit', '--repo', info.repo, '-b', bad, src]), ['INVALID_REF', 'USAGE']);
    }
    expect(snapshot(info.repo)).toEqual(before);
    expect(fs.readdirSync(path.join(info.repo, 'refs/heads'))).toEqual(['main']);
  });

  it('bad --timestamp', () => {
    for (const bad of ['yesterday', '2024-13-45', '12:00', '-5', '1e9', '']) {
      expectRefusal(run(['commit', '--repo', info.repo, '-b', 'ts', '--timestamp', bad, src]), 'INVALID_TIMESTAMP');
    }
    expect(snapshot(info.repo)).toEqual(before);
  });

  it('bad numbers and durations', () => {
    expectRefusal(run(['log', '--repo', info.repo, '-n', 'many', 'main']), 'USAGE');
    expectRefusal(run(['log', '--repo', info.repo, '-n', '0', 'main']), 'USAGE');
    expectRefusal(run(['prune', '--repo', info.repo, '--depth', 'x']), 'USAGE');
    expectRefusal(run(['prune', '--repo', info.repo, '--keep-younger-than', 'soon']), 'INVALID_DURATION');
    expectRefusal(run(['commit', '--repo', info.repo, '-b', 'o', '--owner-uid', '-1', src]), 'USAGE');
    expectRefusal(run(['commit', '--repo', info.repo, '-b', 'o', '--add-metadata-string', 'novalue', src]), 'USAGE');
    expectRefusal(run(['init', '--repo', path.join(work, 'r2'), '--mode', 'bare']), 'USAGE');
    expect(snapshot(info.repo)).toEqual(before);
    expect(fs.existsSync(path.join(work, 'r2'))).toBe(false);
  });

  it('not-a-repo directory', () => {
    const plain = path.join(work, 'plain');
    fs.mkdirSync(plain);
    fs.writeFileSync(path.join(plain, 'file'), 'x');
    for (const args of [['log', 'main'], ['ls', 'main'], ['fsck'], ['refs'], ['prune'], ['commit', '-b', 'main', src]]) {
      expectRefusal(run([...args, '--repo', plain]), 'REPO_NOT_FOUND');
    }
    expectRefusal(run(['log', 'main', '--repo', path.join(plain, 'file')]), 'REPO_NOT_FOUND');
    expectRefusal(run(['log', 'main', '--repo', path.join(work, 'does-not-exist')]), 'REPO_NOT_FOUND');
    expect(fs.readdirSync(plain)).toEqual(['file']);
  });

  it('a repo whose config names an unsupported mode', () => {
    const bare = path.join(work, 'bare');
    fs.mkdirSync(bare);
    fs.writeFileSync(path.join(bare, 'config'), '[core]\nrepo_version=1\nmode=bare\n');
    expectRefusal(run(['log', 'main', '--repo', bare]), 'REPO_CONFIG');
    expectRefusal(run(['init', '--repo', info.repo, '--mode', 'bare-user']), 'REPO_EXISTS');
  });

  it('a reader that closes the pipe early (strata ... | head) ends the command quietly', () => {
    // Output far larger than a pipe's buffer, so the writer really meets the closed pipe.
    const big = path.join(work, 'big');
    fs.mkdirSync(big);
    fs.writeFileSync(path.join(big, 'data'), 'x'.repeat(4 * 1024 * 1024));
    const repo = path.join(work, 'big-repo');
    run(['init', '--repo', repo]);
    run(['commit', '--repo', repo, '-b', 'big', big]);
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" cat --repo "${repo}" big /data | head -c 1 >/dev/null`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('unknown commands, unknown flags and missing arguments', () => {
    expectRefusal(run(['frobnicate']), 'USAGE');
    expectRefusal(run(['log', '--repo', info.repo, '--bogus', 'main']), 'USAGE');
    expectRefusal(run(['log', '--repo', info.repo]), 'USAGE');
    expectRefusal(run(['commit', '--repo', info.repo, src]), 'USAGE');
    expectRefusal(run(['checkout', '--repo', info.repo, 'main']), 'USAGE');
  });

  it('a source that does not exist', () => {
    expectRefusal(run(['commit', '--repo', info.repo, '-b', 'x', path.join(work, 'nope')]), 'SOURCE_NOT_FOUND');
    expect(snapshot(info.repo)).toEqual(before);
  });

  it('a path that is not in the commit, or of the wrong kind', () => {
    expectRefusal(run(['ls', '--repo', info.repo, 'main', '/nope']), 'PATH_NOT_FOUND');
    expectRefusal(run(['ls', '--repo', info.repo, 'main', '/etc/hostname/x']), 'NOT_A_DIRECTORY');
    expectRefusal(run(['cat', '--repo', info.repo, 'main', '/etc']), 'NOT_A_FILE');
    expectRefusal(run(['cat', '--repo', info.repo, 'main', '/bin']), 'NOT_A_FILE');
    expectRefusal(run(['cat', '--repo', info.repo, 'main', '/../etc/hostname']), 'UNSAFE_PATH');
  });
});
