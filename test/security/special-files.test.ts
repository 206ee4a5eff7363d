// Attack (or accident): committing a tree that holds a fifo, a socket or a
// device node. OS trees hold only files, directories and symlinks: the commit
// must refuse with UNSUPPORTED_FILE naming the path and write nothing, unless
// --skip-special asks to leave them out.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../src/errors.js';
import { commit } from '../../src/repo/commit.js';
import { isRoot, sh, tmpDir } from '../helpers/fixtures.js';
import { expectOk, expectRefusal, run, snapshot, writeSmallTree } from './hostile-repo.js';

process.env.STRATA_WORKERS ??= '1';

type Kind = 'fifo' | 'socket' | 'device';

function makeSpecial(file: string, kind: Kind): void {
  if (kind === 'fifo') sh('mkfifo', [file]);
  else if (kind === 'socket') sh('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', file]);
  else sh('mknod', [file, 'c', '1', '3']);
}

const KINDS: Kind[] = ['fifo', 'socket', ...(isRoot ? (['device'] as Kind[]) : [])];

describe('committing special files', () => {
  let work: string;
  let repo: string;

  beforeAll(() => {
    work = tmpDir('strata-special-');
    repo = path.join(work, 'repo');
    expectOk(run(['init', '--repo', repo, '--mode', 'bare-user']));
  });

  for (const kind of KINDS) {
    it(`a ${kind}: UNSUPPORTED_FILE naming the path, repository untouched`, async () => {
      const src = writeSmallTree(path.join(work, `src-${kind}`));
      const special = path.join(src, 'usr/bin', `the-${kind}`);
      makeSpecial(special, kind);
      const before = snapshot(repo);
      const r = run(['commit', '--repo', repo, '-b', `special/${kind}`, src]);
      expectRefusal(r, 'UNSUPPORTED_FILE');
      expect(r.stderr).toContain(special);
      expect(snapshot(repo)).toEqual(before);

      const err = await commit({ repo, branch: `special/${kind}`, source: src }).catch((e: unknown) => e);
      expect(isStrataError(err, 'UNSUPPORTED_FILE'), String(err)).toBe(true);
      expect((err as { data: { path: string } }).data.path).toBe(special);
      expect(snapshot(repo)).toEqual(before);
    });

    it(`a ${kind} with --skip-special: the commit succeeds and leaves it out`, () => {
      const src = path.join(work, `src-${kind}`);
      const r = run(['commit', '--repo', repo, '-b', `special/${kind}`, '--skip-special', '--json', src]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.json<{ stats: { skipped: string[] } }>().stats.skipped).toEqual([`usr/bin/the-${kind}`]);
      const ls = run(['ls', '--repo', repo, '-R', '--json', `special/${kind}`]).json<{ path: string }[]>().map((e) => e.path);
      expect(ls).toContain('/usr/bin/tool');
      expect(ls).not.toContain(`/usr/bin/the-${kind}`);
      expect(run(['fsck', '--repo', repo]).status).toBe(0);
    });
  }

  it('a special file at the top of the source is refused too', () => {
    const src = path.join(work, 'src-top');
    fs.mkdirSync(src);
    makeSpecial(path.join(src, 'fifo'), 'fifo');
    const r = run(['commit', '--repo', repo, '-b', 'special/top', src]);
    expectRefusal(r, 'UNSUPPORTED_FILE');
    expect(r.stderr).toContain(path.join(src, 'fifo'));
  });

  it('a fifo given as the source itself is refused with one line', () => {
    const fifo = path.join(work, 'source-fifo');
    makeSpecial(fifo, 'fifo');
    const r = run(['commit', '--repo', repo, '-b', 'special/source', fifo]);
    expectRefusal(r, ['SOURCE_NOT_FOUND', 'UNSUPPORTED_FILE', 'TAR_MALFORMED']);
  });
});
