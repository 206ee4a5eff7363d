// Refs: writing, reading, listing, deleting, name rules (OSTree's), and
// resolving what a user types (checksum, unique prefix, ref, REF^).

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Checksum } from '../../src/core/objects.js';
import { commit } from '../../src/repo/commit.js';
import { deleteRef, listRefs, readRef, resolveRev, validateRefName, writeRef } from '../../src/repo/refs.js';
import { Repo } from '../../src/repo/repo.js';
import { sweepStaging } from '../../src/repo/transaction.js';
import { tmpDir } from '../helpers/fixtures.js';
import { codeOf } from '../helpers/errors.js';

process.env.STRATA_WORKERS ??= '1';


const A = 'a'.repeat(64) as Checksum;
const B = 'b'.repeat(64) as Checksum;

describe('ref names', () => {
  it.each(['main', 'os/x86_64/stable', 'fedora/39/x86_64/silverblue', 'a.b-c_d', 'v1.0', '_x', 'a..b', 'x.', 'origin:os/stable', '0'])('accepts %j', (name) => {
    expect(codeOf(() => validateRefName(name))).toBeUndefined();
  });

  it.each(['', '.', '..', 'a/../b', '../x', '/abs', 'trailing/', 'a//b', 'a b', 'tab\tx', 'nl\nx', '.hidden', 'a/.b', '-dash', 'a/-b', 'ü', 'a:', ':b', 'a:b:c', 'a*', 'a~1', 'a^'])(
    'refuses %j with INVALID_REF (as OSTree would)',
    (name) => {
      expect(codeOf(() => validateRefName(name))).toBe('INVALID_REF');
    },
  );
});

describe('writing, reading, listing and deleting refs', () => {
  let repo: Repo;
  beforeAll(() => {
    repo = Repo.init(path.join(tmpDir('strata-refs-'), 'repo'), 'archive').repo;
  });

  it('round-trips a ref, with nested names and remote refs in their own directories', () => {
    writeRef(repo, 'os/x86_64/stable', A);
    writeRef(repo, 'main', B);
    writeRef(repo, 'origin:os/stable', A);
    expect(readRef(repo, 'os/x86_64/stable')).toBe(A);
    expect(readRef(repo, 'main')).toBe(B);
    expect(readRef(repo, 'origin:os/stable')).toBe(A);
    expect(fs.readFileSync(path.join(repo.path, 'refs/heads/os/x86_64/stable'), 'utf8')).toBe(A + '\n');
    expect(fs.readFileSync(path.join(repo.path, 'refs/remotes/origin/os/stable'), 'utf8')).toBe(A + '\n');
  });

  it('moves a ref atomically, leaving no temp file under refs/ or tmp/', () => {
    writeRef(repo, 'main', A);
    writeRef(repo, 'main', B);
    expect(readRef(repo, 'main')).toBe(B);
    const all = (dir: string): string[] => fs.readdirSync(dir, { recursive: true }).map(String);
    expect(all(path.join(repo.path, 'refs')).filter((n) => n.includes('tmp'))).toEqual([]);
    expect(fs.readdirSync(path.join(repo.path, 'tmp')).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('reads a missing ref as null, and a ref whose file is a directory as missing', () => {
    expect(readRef(repo, 'nope')).toBeNull();
    expect(readRef(repo, 'os')).toBeNull();
    expect(readRef(repo, 'main/below-a-file')).toBeNull();
  });

  it('refuses a ref holding something other than a checksum', () => {
    fs.writeFileSync(path.join(repo.path, 'refs/heads/garbage'), 'hello\n');
    expect(codeOf(() => readRef(repo, 'garbage'))).toBe('INVALID_CHECKSUM');
    fs.rmSync(path.join(repo.path, 'refs/heads/garbage'));
  });

  it('lists every ref sorted by name, skipping files that hold no checksum', () => {
    fs.writeFileSync(path.join(repo.path, 'refs/heads/junk'), 'nope\n');
    expect(listRefs(repo)).toEqual([
      { name: 'main', checksum: B },
      { name: 'origin:os/stable', checksum: A },
      { name: 'os/x86_64/stable', checksum: A },
    ]);
    fs.rmSync(path.join(repo.path, 'refs/heads/junk'));
  });

  it('keeps its temp files out of refs/ and sweeps those a dead writer left', () => {
    writeRef(repo, 'fresh', A);
    expect(fs.readdirSync(path.join(repo.path, 'refs/heads')).some((n) => n.includes('.tmp-'))).toBe(false);
    const stray = path.join(repo.path, 'tmp', 'fresh.tmp-999999999-abc');
    fs.writeFileSync(stray, A + '\n');
    sweepStaging(repo);
    expect(fs.existsSync(stray)).toBe(false);
    deleteRef(repo, 'fresh');
  });

  it('deletes a ref once', () => {
    writeRef(repo, 'doomed', A);
    expect(deleteRef(repo, 'doomed')).toBe(true);
    expect(deleteRef(repo, 'doomed')).toBe(false);
    expect(readRef(repo, 'doomed')).toBeNull();
  });

  it('refuses to write an invalid ref name', () => {
    expect(codeOf(() => writeRef(repo, '../escape', A))).toBe('INVALID_REF');
    expect(fs.existsSync(path.join(repo.path, 'refs/escape'))).toBe(false);
  });
});

describe('resolving revisions', () => {
  let repo: Repo;
  const chain: Checksum[] = [];

  beforeAll(async () => {
    const dir = tmpDir('strata-resolve-');
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    repo = Repo.init(path.join(dir, 'repo'), 'archive').repo;
    for (let i = 0; i < 3; i++) {
      fs.writeFileSync(path.join(src, 'version'), `${i}\n`);
      chain.push((await commit({ repo: repo.path, branch: 'os/stable', source: src, timestamp: 1_700_000_000 + i })).commit);
    }
  });

  it('resolves a ref, a full checksum and REF^ / REF^^ to parents', () => {
    expect(resolveRev(repo, 'os/stable')).toBe(chain[2]);
    expect(resolveRev(repo, chain[1])).toBe(chain[1]);
    expect(resolveRev(repo, 'os/stable^')).toBe(chain[1]);
    expect(resolveRev(repo, 'os/stable^^')).toBe(chain[0]);
    expect(resolveRev(repo, `${chain[2]}^`)).toBe(chain[1]);
  });

  it('refuses to step past the first commit with NO_PARENT', () => {
    expect(codeOf(() => resolveRev(repo, 'os/stable^^^'))).toBe('NO_PARENT');
  });

  it('resolves a unique prefix of 4 or more hex digits', () => {
    for (const n of [4, 10, 63]) expect(resolveRev(repo, chain[0].slice(0, n))).toBe(chain[0]);
    expect(resolveRev(repo, `${chain[1].slice(0, 8)}^`)).toBe(chain[0]);
  });

  it('refuses an ambiguous prefix, and treats a too-short one as a ref name', () => {
    const prefix = chain[0].slice(0, 6);
    // A second (fake) commit object sharing the prefix makes it ambiguous.
    const fake = path.join(repo.path, 'objects', prefix.slice(0, 2), `${prefix.slice(2)}${'0'.repeat(58)}.commit`);
    fs.writeFileSync(fake, '');
    try {
      expect(codeOf(() => resolveRev(repo, prefix))).toBe('REF_NOT_FOUND');
      expect(resolveRev(repo, chain[0].slice(0, 12))).toBe(chain[0]);
    } finally {
      fs.rmSync(fake);
    }
    expect(codeOf(() => resolveRev(repo, chain[0].slice(0, 3)))).toBe('REF_NOT_FOUND');
  });

  it('falls back to a ref whose name looks like hex when no commit matches', () => {
    const name = chain[0].startsWith('beef') ? 'dead' : 'beef';
    writeRef(repo, name, chain[1]);
    expect(resolveRev(repo, name)).toBe(chain[1]);
    deleteRef(repo, name);
  });

  it('says REF_NOT_FOUND for unknown names and INVALID_REF for an empty one', () => {
    expect(codeOf(() => resolveRev(repo, 'os/unstable'))).toBe('REF_NOT_FOUND');
    expect(codeOf(() => resolveRev(repo, 'bad name'))).toBe('REF_NOT_FOUND');
    expect(codeOf(() => resolveRev(repo, ''))).toBe('INVALID_REF');
    expect(codeOf(() => resolveRev(repo, '^'))).toBe('INVALID_REF');
  });

  it('a full checksum that is not in the repo resolves, and loading it says OBJECT_MISSING', () => {
    const missing = 'e'.repeat(64) as Checksum;
    expect(resolveRev(repo, missing)).toBe(missing);
    expect(codeOf(() => resolveRev(repo, `${missing}^`))).toBe('OBJECT_MISSING');
  });

  it('commits move the branch and record the old head as parent', () => {
    expect(repo.loadCommit(chain[2]).parent).toBe(chain[1]);
    expect(repo.loadCommit(chain[0]).parent).toBeNull();
    expect(listRefs(repo)).toEqual([{ name: 'os/stable', checksum: chain[2] }]);
  });
});
