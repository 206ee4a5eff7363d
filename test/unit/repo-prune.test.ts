// Prune: what goes and what stays under each policy (default, --refs-only,
// --depth, --keep-younger-than), dry runs that delete nothing, freed bytes,
// and a repository that fscks clean afterwards.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Checksum, objectPath, serializeDirMeta } from '../../src/core/objects.js';
import { isStrataError } from '../../src/errors.js';
import { commit } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { log } from '../../src/repo/history.js';
import { parseDuration, planPrune, prune } from '../../src/repo/prune.js';
import { listObjects } from '../../src/repo/reachable.js';
import { deleteRef, writeRef } from '../../src/repo/refs.js';
import { Repo, type RepoMode } from '../../src/repo/repo.js';
import { sh, tmpDir } from '../helpers/fixtures.js';

process.env.STRATA_WORKERS ??= '1';

const DAY = 86_400;
const T0 = 1_700_000_000;

interface Fixture {
  repo: Repo;
  /** main's history, oldest first: T0, T0+1d, T0+2d, T0+3d. */
  main: Checksum[];
  /** A commit no ref points at (its branch was deleted). */
  orphan: Checksum;
  /** An object nothing references (as a killed commit leaves). */
  stray: string;
}

async function fixture(mode: RepoMode = 'archive'): Promise<Fixture> {
  const dir = tmpDir('strata-prune-');
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/shared'), 'in every commit\n'.repeat(100));
  const repo = Repo.init(path.join(dir, 'repo'), mode).repo;
  const main: Checksum[] = [];
  for (let i = 0; i < 4; i++) {
    fs.writeFileSync(path.join(src, 'etc/version'), `version ${i}\n`.repeat(200 + i));
    main.push((await commit({ repo: repo.path, branch: 'main', source: src, timestamp: T0 + i * DAY })).commit);
  }
  fs.writeFileSync(path.join(src, 'etc/orphan-only'), 'only in the orphan\n'.repeat(300));
  const orphan = (await commit({ repo: repo.path, branch: 'scratch', source: src, timestamp: T0 + 5 * DAY, parent: null })).commit;
  fs.rmSync(path.join(src, 'etc/orphan-only'));
  deleteRef(repo, 'scratch');
  const strayBytes = serializeDirMeta({ uid: 4242, gid: 4242, mode: 0o40700, xattrs: [] });
  const { createHash } = await import('node:crypto');
  const straySum = createHash('sha256').update(strayBytes).digest('hex') as Checksum;
  const stray = path.join(repo.path, objectPath(straySum, 'dirmeta', repo.archive));
  fs.mkdirSync(path.dirname(stray), { recursive: true });
  fs.writeFileSync(stray, strayBytes);
  return { repo, main, orphan, stray };
}

const has = (repo: Repo, c: Checksum) => repo.hasObject(c, 'commit');

async function expectClean(repo: Repo): Promise<void> {
  const r = await fsck({ repo: repo.path });
  expect(r.problems).toEqual([]);
}

/** A private copy of a fixture (cp -a keeps bare-user xattrs): building one takes five commits. */
function copyOf(t: Fixture): Fixture {
  const dir = tmpDir('strata-prune-copy-');
  sh('cp', ['-a', t.repo.path, path.join(dir, 'repo')]);
  const repo = Repo.open(path.join(dir, 'repo'));
  return { ...t, repo, stray: path.join(repo.path, path.relative(t.repo.path, t.stray)) };
}

describe('prune', () => {
  let template: Fixture;
  let f: Fixture;
  beforeAll(async () => {
    template = await fixture();
  });
  beforeEach(() => {
    f = copyOf(template);
  });

  it('by default keeps every commit and deletes only unreferenced objects', async () => {
    const before = listObjects(f.repo).length;
    const r = prune({ repo: f.repo.path });
    expect(r).toMatchObject({ dryRun: false, total: 1, deleted: 1, deletedCommits: 0 });
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(fs.existsSync(f.stray)).toBe(false);
    expect(listObjects(f.repo).length).toBe(before - 1);
    for (const c of [...f.main, f.orphan]) expect(has(f.repo, c)).toBe(true);
    await expectClean(f.repo);
    // Nothing left to do.
    expect(prune({ repo: f.repo.path })).toMatchObject({ total: 0, deleted: 0, freedBytes: 0 });
  });

  it('a dry run says what would go and deletes nothing', () => {
    const before = listObjects(f.repo).map((o) => o.file).sort();
    const r = prune({ repo: f.repo.path, refsOnly: true, dryRun: true });
    expect(r.dryRun).toBe(true);
    expect(r.deleted).toBe(0);
    expect(r.total).toBeGreaterThan(1);
    expect(r.deletedCommits).toBe(1);
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(listObjects(f.repo).map((o) => o.file).sort()).toEqual(before);
    // A dry run takes no lock, so it works while a writer holds the repository.
    expect(fs.existsSync(path.join(f.repo.path, 'tmp/strata.lock'))).toBe(false);
  });

  it('--refs-only deletes the orphan commit and the objects only it used', async () => {
    const orphanOnly = f.repo.loadCommit(f.orphan).rootTree;
    const r = prune({ repo: f.repo.path, refsOnly: true });
    expect(r.deletedCommits).toBe(1);
    expect(r.deleted).toBe(r.total);
    expect(r.freedBytes).toBeGreaterThan(0);
    expect(has(f.repo, f.orphan)).toBe(false);
    expect(f.repo.hasObject(orphanOnly, 'dirtree')).toBe(false);
    for (const c of f.main) expect(has(f.repo, c)).toBe(true);
    expect(log({ repo: f.repo.path, rev: 'main' }).map((c) => c.checksum)).toEqual([...f.main].reverse());
    await expectClean(f.repo);
  });

  it('--depth 1 keeps each ref and one parent; log ends at the missing grandparent', async () => {
    const r = prune({ repo: f.repo.path, depth: 1 });
    expect(r.deletedCommits).toBe(3); // main~2, main~3 and the orphan
    expect(f.main.map((c) => has(f.repo, c))).toEqual([false, false, true, true]);
    const history = log({ repo: f.repo.path, rev: 'main' });
    expect(history.map((c) => c.checksum)).toEqual([f.main[3], f.main[2]]);
    expect(history[1].parentPresent).toBe(false);
    expect(history[1].parent).toBe(f.main[1]);
    await expectClean(f.repo);
  });

  it('--depth 0 keeps only the heads; --depth -1 keeps all history', async () => {
    expect(prune({ repo: f.repo.path, depth: -1 }).deletedCommits).toBe(1);
    expect(f.main.every((c) => has(f.repo, c))).toBe(true);
    expect(prune({ repo: f.repo.path, depth: 0 }).deletedCommits).toBe(3);
    expect(f.main.map((c) => has(f.repo, c))).toEqual([false, false, false, true]);
    await expectClean(f.repo);
  });

  it('--keep-younger-than drops ancestors older than the cutoff; heads always stay', async () => {
    // now = T0+3d; 1.5 days keeps T0+3d and T0+2d.
    const r = prune({ repo: f.repo.path, keepYoungerThan: parseDuration('36h'), now: T0 + 3 * DAY });
    expect(r.deletedCommits).toBe(3);
    expect(f.main.map((c) => has(f.repo, c))).toEqual([false, false, true, true]);
    await expectClean(f.repo);
    // A head older than the cutoff is kept all the same.
    expect(prune({ repo: f.repo.path, keepYoungerThan: 60, now: T0 + 100 * DAY }).deletedCommits).toBe(1);
    expect(has(f.repo, f.main[3])).toBe(true);
    await expectClean(f.repo);
  });

  it('keeps what any ref needs: a second ref on an old commit keeps its history', async () => {
    writeRef(f.repo, 'old', f.main[1]);
    prune({ repo: f.repo.path, depth: 0 });
    expect(f.main.map((c) => has(f.repo, c))).toEqual([false, true, false, true]);
    await expectClean(f.repo);
  });

  it('planPrune reads only, and lists commits before the trees they need', () => {
    const plan = planPrune(f.repo, { refsOnly: true });
    expect(plan.delete.length).toBeGreaterThan(1);
    expect(plan.delete[0].type).toBe('commit');
    const firstNonCommit = plan.delete.findIndex((o) => o.type !== 'commit');
    expect(plan.delete.slice(firstNonCommit).some((o) => o.type === 'commit')).toBe(false);
    expect(plan.keptCommits.sort()).toEqual([...f.main].sort());
    for (const o of plan.delete) expect(fs.existsSync(o.file)).toBe(true);
    expect(plan.freedBytes).toBe(plan.delete.reduce((n, o) => n + fs.statSync(o.file).size, 0));
  });

  it('works on bare-user repositories too', async () => {
    const b = await fixture('bare-user');
    const r = prune({ repo: b.repo.path, refsOnly: true });
    expect(r.deletedCommits).toBe(1);
    expect(r.freedBytes).toBeGreaterThan(0);
    await expectClean(b.repo);
  });

  it('refuses a bad --depth with USAGE, and takes the writer lock', () => {
    for (const depth of [-2, 1.5, Number.NaN]) {
      let code: string | undefined;
      try {
        prune({ repo: f.repo.path, depth });
      } catch (err) {
        code = isStrataError(err) ? err.code : String(err);
      }
      expect(code).toBe('USAGE');
    }
    fs.writeFileSync(path.join(f.repo.path, 'tmp/strata.lock'), String(process.ppid));
    let code: string | undefined;
    try {
      prune({ repo: f.repo.path });
    } catch (err) {
      code = isStrataError(err) ? err.code : String(err);
    }
    expect(code).toBe('REPO_LOCKED');
    fs.rmSync(path.join(f.repo.path, 'tmp/strata.lock'));
  });
});

describe('parseDuration', () => {
  it.each([
    ['45s', 45], ['90m', 5400], ['12h', 43200], ['30d', 2592000], ['2w', 1209600], ['1 day', 86400], ['3 weeks', 1814400], ['10min', 600], ['7D', 604800],
  ])('%s is %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '30', 'd', '1.5d', '-1d', '3 fortnights', '1y'])('refuses %j with INVALID_DURATION', (text) => {
    let code: string | undefined;
    try {
      parseDuration(text);
    } catch (err) {
      code = isStrataError(err) ? err.code : String(err);
    }
    expect(code).toBe('INVALID_DURATION');
  });
});
