// strata against the real `ostree` (Debian's 2022.7): the same tree gives the
// same commit checksum; each tool fscks and checks out what the other wrote;
// strata's log/show/ls/diff agree with ostree's on an ostree-made repo; a
// flipped byte in any object kind is caught by both fscks.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, isRoot, makeTree, ostree, rootfsPair, runAsync, sh, strata, tmpDir } from '../helpers/fixtures.js';

const T = '2023-11-14T22:13:20Z';
const MODES = ['archive', 'bare-user'] as const;
type Mode = (typeof MODES)[number];

const hasOstree = spawnSync('ostree', ['--version']).status === 0;
const pair = hasOstree ? rootfsPair() : null;
const rootfsTitle = pair
  ? 'the real Debian rootfs pair'
  : 'the real Debian rootfs pair (SKIPPED: rootfsPair() returned null: no cached /var/cache/strata-testdata and not root to build it)';

function ok(r: ReturnType<typeof strata> | ReturnType<typeof ostree>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status} (signal ${r.signal}): ${r.stderr}`);
  return r.stdout;
}


/** Commits `src` with both tools at once; returns [strata's checksum, ostree's]. */
async function commitBoth(srepo: string, orepo: string, branch: string, src: string, extra: string[]): Promise<[string, string]> {
  const [s, o] = await Promise.all([
    runAsync(process.execPath, [CLI, 'commit', '--repo', srepo, '-b', branch, '--timestamp', T, '-s', 'S', ...extra, src]),
    runAsync('ostree', ['commit', `--repo=${orepo}`, '-b', branch, `--timestamp=${T}`, '-s', 'S', ...extra, src]),
  ]);
  if (s.status !== 0) throw new Error(`strata commit ${branch} exited ${s.status}: ${s.stderr}`);
  if (o.status !== 0) throw new Error(`ostree commit ${branch} exited ${o.status}: ${o.stderr}`);
  return [s.stdout.trim(), o.stdout.trim()];
}

function strataCommit(repo: string, branch: string, src: string, extra: string[] = []): string {
  return ok(strata(['commit', '--repo', repo, '-b', branch, '--timestamp', T, '-s', 'S', ...extra, src]), `strata commit ${branch}`).trim();
}

/** `PATH TYPE MODE UID GID TARGET` for every entry under dir, sorted. */
function listing(dir: string, owners = true): string[] {
  const fmt = owners ? '%P %y %m %U %G %l\n' : '%P %y %m %l\n';
  return sh('find', [dir, '-mindepth', '1', '-printf', fmt]).split('\n').filter(Boolean).sort();
}

function expectSameTree(src: string, dest: string, opts: { owners?: boolean } = {}): void {
  const d = spawnSync('diff', ['-r', '--no-dereference', src, dest], { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(d.stdout + d.stderr, `diff -r ${src} ${dest}`).toBe('');
  expect(d.status).toBe(0);
  expect(listing(dest, opts.owners ?? true)).toEqual(listing(src, opts.owners ?? true));
}

function symlinks(dir: string): string[] {
  return sh('find', [dir, '-type', 'l', '-printf', '%P -> %l\n']).split('\n').filter(Boolean).sort();
}

function xattrDump(file: string): string {
  return sh('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', file]).split('\n').slice(1).sort().join('\n');
}

function flipByte(file: string, offset?: number): () => void {
  const orig = fs.readFileSync(file);
  const b = Buffer.from(orig);
  const i = offset ?? Math.floor(b.length / 2);
  b[i] ^= 0xff;
  fs.chmodSync(file, fs.statSync(file).mode | 0o200);
  fs.writeFileSync(file, b);
  return () => fs.writeFileSync(file, orig);
}

function objectFile(repo: string, mode: Mode, checksum: string, type: string): string {
  const ext = type === 'file' ? (mode === 'archive' ? 'filez' : 'file') : type;
  return path.join(repo, 'objects', checksum.slice(0, 2), `${checksum.slice(2)}.${ext}`);
}

interface LsEntry { path: string; type: string; mode: string; uid: number; gid: number; size: number; checksum: string; target?: string; xattrs: unknown[] }

function strataLs(repo: string, rev: string, p = '/'): LsEntry[] {
  return strata(['ls', '--repo', repo, '-R', '--json', rev, p]).json<LsEntry[]>();
}

interface FsckJson { problems: { checksum: string; type: string; status: string; usedAt: string[] }[] }

describe.skipIf(!hasOstree)('strata and ostree (Debian 2022.7) interoperate', () => {
  let work: string;
  let tree: string;
  let tree2: string;
  const srepo = {} as Record<Mode, string>;
  const orepo = {} as Record<Mode, string>;
  /** Commits made by each tool, by branch, for later steps. */
  const made: Record<Mode, Record<string, string>> = { archive: {}, 'bare-user': {} };

  beforeAll(() => {
    work = tmpDir('strata-interop-');
    tree = makeTree(path.join(work, 'tree'), 0);
    tree2 = makeTree(path.join(work, 'tree2'), 1);
    fs.writeFileSync(path.join(tree2, 'etc/added'), 'new in variant 1\n');
    fs.rmSync(path.join(tree2, 'usr/share/odd-perms'));
    fs.chmodSync(path.join(tree2, 'usr/bin/tool'), 0o700);
    for (const m of MODES) {
      srepo[m] = path.join(work, `strata-${m}`);
      orepo[m] = path.join(work, `ostree-${m}`);
      ok(strata(['init', '--repo', srepo[m], '--mode', m]), 'strata init');
      ok(ostree(['init', `--repo=${orepo[m]}`, `--mode=${m}`]), 'ostree init');
      if (m === 'archive') {
        // Checksums do not depend on compression; level 1 keeps the rootfs commits quick.
        for (const r of [srepo[m], orepo[m]]) fs.appendFileSync(path.join(r, 'config'), '[archive]\nzlib-level=1\n');
      }
    }
  });

  for (const m of MODES) {
    describe(`${m} repositories`, () => {
      describe('identical checksums for the same tree', () => {
        const cases: [string, string[]][] = [
          ['tree/plain', ['--no-bindings']],
          ['tree/meta', ['--no-bindings', '--add-metadata-string', 'version=1']],
          ['tree/bound', []],
          ['tree/bound-meta', ['--add-metadata-string', 'version=1', '--add-metadata-string', 'name=strata test']],
        ];
        for (const [branch, extra] of cases) {
          it(`makeTree(), ${extra.join(' ') || 'with the default ref binding'}`, async () => {
            const [s, o] = await commitBoth(srepo[m], orepo[m], branch, tree, extra);
            expect(s).toMatch(/^[0-9a-f]{64}$/);
            expect(s).toBe(o);
            made[m][branch] = s;
          });
        }

        it.skipIf(!pair)(`${rootfsTitle}: rootfs-a with --no-bindings, rootfs-b with version=1 and the default ref binding`, async () => {
          for (const [branch, src, extra] of [
            ['rootfs/a', pair!.a, ['--no-bindings']],
            ['rootfs/b', pair!.b, ['--add-metadata-string', 'version=1']],
          ] as const) {
            const [s, o] = await commitBoth(srepo[m], orepo[m], branch, src, [...extra]);
            expect(s).toMatch(/^[0-9a-f]{64}$/);
            expect(s, branch).toBe(o);
            made[m][branch] = s;
          }
        }, 150_000);

        it('a second commit on a branch (with a parent) agrees too', async () => {
          const [s, o] = await commitBoth(srepo[m], orepo[m], 'tree/plain', tree2, ['--no-bindings', '--add-metadata-string', 'version=2']);
          expect(s).toBe(o);
          made[m]['tree/plain^'] = made[m]['tree/plain'];
          made[m]['tree/plain'] = s;
        });
      });

      it('ostree fsck passes on the strata-made repository', () => {
        const r = ostree(['fsck', `--repo=${srepo[m]}`]);
        expect(r.status, r.stderr).toBe(0);
      }, 60_000);

      it('strata fsck passes on the ostree-made repository', () => {
        const r = strata(['fsck', '--repo', orepo[m], '--json']);
        expect(r.status, r.stderr).toBe(0);
        expect(r.json<FsckJson>().problems).toEqual([]);
      }, 60_000);

      describe('ostree checks out what strata committed', () => {
        const sources = (): [string, string][] => [
          ['tree/plain^', tree],
          ['tree/plain', tree2],
          ...(pair ? ([['rootfs/b', pair.b]] as [string, string][]) : []),
        ];
        it(m === 'archive' ? 'plain checkout reproduces the tree: content, modes, owners, symlinks' : 'checkout -U reproduces content and behaves exactly as on an ostree-made repo', () => {
          for (const [branch, src] of sources()) {
            const rev = made[m][branch];
            const dest = path.join(work, `oco-${m}-${branch.replace(/\W/g, '_')}`);
            const args = ['checkout', `--repo=${srepo[m]}`, ...(m === 'bare-user' ? ['-U'] : []), rev, dest];
            ok(ostree(args), `ostree checkout ${branch}`);
            if (m === 'archive') {
              expectSameTree(src, dest);
              if (src === tree) expect(xattrDump(path.join(dest, 'usr/share/with-xattrs'))).toBe(xattrDump(path.join(tree, 'usr/share/with-xattrs')));
            } else {
              // User mode drops owners and setuid bits and hardlinks objects: content and
              // symlinks must match the source, and the rest must match ostree's own repo.
              const d = spawnSync('diff', ['-r', '--no-dereference', src, dest], { encoding: 'utf8', maxBuffer: 64 << 20 });
              expect(d.stdout + d.stderr).toBe('');
              const theirs = path.join(work, `oco-own-${m}-${branch.replace(/\W/g, '_')}`);
              ok(ostree(['checkout', `--repo=${orepo[m]}`, '-U', rev, theirs]), 'ostree checkout of its own repo');
              expect(listing(dest)).toEqual(listing(theirs));
              expect(symlinks(dest)).toEqual(symlinks(src));
            }
          }
        }, 90_000);

        if (m === 'bare-user') {
          it.skipIf(!isRoot)('as root, a full (non -U) checkout also restores owners and setuid bits', () => {
            for (const [branch, src] of sources()) {
              const dest = path.join(work, `oco-full-${m}-${branch.replace(/\W/g, '_')}`);
              ok(ostree(['checkout', `--repo=${srepo[m]}`, made[m][branch], dest]), 'ostree checkout');
              expectSameTree(src, dest);
            }
          }, 90_000);
        }
      });

      describe('strata reads ostree-made repositories', () => {
        it('strata checkout of an ostree commit reproduces the tree: content, modes, owners, symlinks, xattrs', () => {
          const sources: [string, string][] = [['tree/plain^', tree], ['tree/plain', tree2], ...(pair ? ([['rootfs/b', pair.b]] as [string, string][]) : [])];
          for (const [branch, src] of sources) {
            const dest = path.join(work, `sco-${m}-${branch.replace(/\W/g, '_')}`);
            const r = strata(['checkout', '--repo', orepo[m], made[m][branch], dest, '--json']);
            expect(r.status, r.stderr).toBe(0);
            expectSameTree(src, dest, { owners: isRoot });
            if (branch === 'tree/plain^') {
              expect(xattrDump(path.join(dest, 'usr/share/with-xattrs'))).toBe(xattrDump(path.join(tree, 'usr/share/with-xattrs')));
            }
          }
        }, 90_000);

        it('strata log lists the same commits as ostree log', () => {
          const s = strata(['log', '--repo', orepo[m], 'tree/plain', '--json']);
          expect(s.status, s.stderr).toBe(0);
          const o = ok(ostree(['log', `--repo=${orepo[m]}`, 'tree/plain']), 'ostree log');
          const theirs = [...o.matchAll(/^commit ([0-9a-f]{64})$/gm)].map((x) => x[1]);
          const ours = s.json<{ checksum: string; version: string | null; timestamp: number }[]>();
          expect(ours.map((c) => c.checksum)).toEqual(theirs);
          expect(ours.map((c) => c.version)).toEqual(['2', null]);
          expect(ours[0].timestamp).toBe(Date.parse(T) / 1000);
        });

        it('strata show reads subject, version and the ref binding as ostree wrote them', () => {
          const c = strata(['show', '--repo', orepo[m], 'tree/bound-meta', '--json']).json<{ checksum: string; subject: string; version: string; metadata: Record<string, unknown>; parent: string | null }>();
          expect(c.checksum).toBe(made[m]['tree/bound-meta']);
          expect(c.subject).toBe('S');
          expect(c.version).toBe(ok(ostree(['show', `--repo=${orepo[m]}`, 'tree/bound-meta', '--print-metadata-key=version']), 'ostree show').trim().replace(/^'|'$/g, ''));
          expect(c.metadata['ostree.ref-binding']).toEqual(['tree/bound-meta']);
          expect(c.metadata.name).toBe('strata test');
          expect(c.parent).toBeNull();
        });

        it('strata ls -R lists what ostree ls -R lists (type, mode, owner, size, symlink target)', () => {
          const revs = ['tree/plain', ...(pair ? ['rootfs/b'] : [])];
          for (const rev of revs) {
            const o = ok(ostree(['ls', `--repo=${orepo[m]}`, '-R', made[m][rev]]), 'ostree ls');
            const theirs = o.split('\n').filter(Boolean).map((line) => {
              const x = /^([-dl])(\d{5}) (\d+) (\d+) +(\d+) (.*?)(?: -> (.*))?$/.exec(line);
              if (!x) throw new Error(`cannot read ostree ls line: ${line}`);
              const type = x[1] === 'd' ? 'dir' : x[1] === 'l' ? 'symlink' : 'file';
              return `${x[6]} ${type} ${parseInt(x[2], 8).toString(8)} ${x[3]}:${x[4]} ${type === 'file' ? x[5] : 0} ${x[7] ?? ''}`;
            }).filter((l) => !l.startsWith('/ dir'));
            const ours = strataLs(orepo[m], made[m][rev]).map((e) => `${e.path} ${e.type} ${(parseInt(e.mode, 8) & 0o7777).toString(8)} ${e.uid}:${e.gid} ${e.size} ${e.target ?? ''}`);
            expect(ours.sort()).toEqual(theirs.sort());
          }
        }, 60_000);

        it('strata diff reports the same added, deleted and modified paths as ostree diff', () => {
          const pairs: [string, string][] = [[made[m]['tree/plain^'], made[m]['tree/plain']], ...(pair ? ([[made[m]['rootfs/a'], made[m]['rootfs/b']]] as [string, string][]) : [])];
          for (const [a, b] of pairs) {
            const o = ok(ostree(['diff', `--repo=${orepo[m]}`, a, b]), 'ostree diff');
            const theirs = o.split('\n').filter(Boolean).map((l) => l.replace(/^([AMD])\s+/, '$1 '));
            const r = strata(['diff', '--repo', orepo[m], a, b, '--json']);
            expect(r.status, r.stderr).toBe(0);
            const letter = { added: 'A', removed: 'D', modified: 'M', metadata: 'M' } as Record<string, string>;
            const ours = r.json<{ entries: { path: string; change: string }[] }>().entries.map((e) => `${letter[e.change]} ${e.path}`);
            expect(ours.sort()).toEqual(theirs.sort());
            expect(ours.length).toBeGreaterThan(0);
          }
        }, 60_000);
      });

      describe('corruption is caught by strata fsck and ostree fsck', () => {
        let repo: string;
        let commit: string;
        let rootTree: string;
        let rootMeta: string;
        beforeAll(() => {
          repo = path.join(work, `corrupt-${m}`);
          ok(strata(['init', '--repo', repo, '--mode', m]), 'init');
          commit = strataCommit(repo, 'main', tree, ['--no-bindings']);
          const c = strata(['show', '--repo', repo, commit, '--json']).json<{ rootTree: string; rootMeta: string }>();
          rootTree = c.rootTree;
          rootMeta = c.rootMeta;
        });

        const expectCaught = (checksum: string, type: string, status: 'corrupt' | 'missing'): FsckJson['problems'][number] => {
          const r = strata(['fsck', '--repo', repo, '--json']);
          expect(r.status).not.toBe(0);
          const problems = r.json<FsckJson>().problems;
          const p = problems.find((x) => x.checksum === checksum && x.type === type);
          expect(p, JSON.stringify(problems)).toBeDefined();
          expect(p!.status).toBe(status);
          const human = strata(['fsck', '--repo', repo]);
          expect(human.status).toBe(1);
          expect(human.stderr.trim().split('\n')).toHaveLength(1);
          const o = ostree(['fsck', `--repo=${repo}`]);
          expect(o.status, `ostree fsck should fail: ${o.stdout}`).not.toBe(0);
          return p!;
        };

        const kinds: [string, () => [string, string]][] = [
          ['a content object (regular file)', () => [strataLs(repo, commit, '/usr/share/big.bin')[0].checksum, 'file']],
          ['a content object (symlink)', () => [strataLs(repo, commit, '/usr/bin/tool-link')[0].checksum, 'file']],
          ['a dirtree', () => [strataLs(repo, commit, '/usr/share/deep').find((e) => e.path === '/usr/share/deep/a')!.checksum, 'dirtree']],
          ['the root dirtree', () => [rootTree, 'dirtree']],
          ['a dirmeta', () => [rootMeta, 'dirmeta']],
          ['the commit', () => [commit, 'commit']],
        ];
        for (const [what, pick] of kinds) {
          it(`one flipped byte in ${what}`, () => {
            const [checksum, type] = pick();
            const restore = flipByte(objectFile(repo, m, checksum, type));
            try {
              expectCaught(checksum, type, 'corrupt');
            } finally {
              restore();
            }
            expect(strata(['fsck', '--repo', repo]).status).toBe(0);
          });
        }

        it('a deleted content object is reported missing, with the tree path where it is used', () => {
          const leaf = strataLs(repo, commit, '/usr/share/deep/a/b/c/d/leaf')[0].checksum;
          const file = objectFile(repo, m, leaf, 'file');
          const saved = path.join(work, `saved-${m}`);
          fs.renameSync(file, saved);
          try {
            const p = expectCaught(leaf, 'file', 'missing');
            expect(p.usedAt).toContain(`${commit}:/usr/share/deep/a/b/c/d/leaf`);
          } finally {
            fs.renameSync(saved, file);
          }
        });

        it('a deleted dirtree is reported missing, with the directory where it is used', () => {
          const dt = strataLs(repo, commit, '/usr/share/deep').find((e) => e.path === '/usr/share/deep/a')!.checksum;
          const file = objectFile(repo, m, dt, 'dirtree');
          const saved = path.join(work, `saved-dt-${m}`);
          fs.renameSync(file, saved);
          try {
            const p = expectCaught(dt, 'dirtree', 'missing');
            expect(p.usedAt).toContain(`${commit}:/usr/share/deep/a`);
          } finally {
            fs.renameSync(saved, file);
          }
          expect(strata(['fsck', '--repo', repo]).status).toBe(0);
        });
      });
    });
  }

  describe('strata checkout hardlinks from bare-user and copies from archive', () => {
    /** Files that cannot share the object's inode: special bits, other owners, xattrs, modes the object cannot carry. */
    const mustCopy = (e: LsEntry): boolean => {
      const perms = parseInt(e.mode, 8) & 0o7777;
      return (perms & 0o7000) !== 0 || ((perms & 0o775) | 0o400) !== perms || e.uid !== 0 || e.gid !== 0 || e.xattrs.length > 0;
    };

    const check = (m: Mode, rev: string, label: string): void => {
      const dest = path.join(work, `links-${m}-${label}`);
      const r = strata(['checkout', '--repo', srepo[m], rev, dest, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const result = r.json<{ files: number; hardlinked: number; copied: number }>();
      const files = strataLs(srepo[m], rev).filter((e) => e.type === 'file');
      let linked = 0;
      for (const e of files) {
        const st = fs.lstatSync(path.join(dest, e.path));
        const obj = fs.statSync(objectFile(srepo[m], m, e.checksum, 'file'));
        if (m === 'archive' || mustCopy(e)) {
          expect(st.ino, `${e.path} must be a copy`).not.toBe(obj.ino);
          expect(st.nlink, `${e.path} must be a copy`).toBe(1);
          expect(st.mode & 0o7777).toBe(parseInt(e.mode, 8) & 0o7777);
          expect(`${st.uid}:${st.gid}`).toBe(isRoot ? `${e.uid}:${e.gid}` : `${process.getuid!()}:${process.getgid!()}`);
        } else {
          expect(st.ino, `${e.path} must be hardlinked to its object`).toBe(obj.ino);
          expect(st.nlink).toBeGreaterThan(1);
          linked++;
        }
      }
      expect(result.files).toBe(files.length);
      expect(result.hardlinked).toBe(linked);
      expect(result.copied).toBe(files.length - linked);
      if (m === 'bare-user') expect(linked).toBeGreaterThan(files.length / 2);
      else expect(linked).toBe(0);
    };

    for (const m of MODES) {
      it(`${m}: makeTree() (setuid, setgid, other owners, xattrs, mode 000 are copied)`, () => {
        check(m, made[m]['tree/plain^'], 'tree');
        if (m === 'bare-user' && isRoot) {
          // The ones makeTree marks as needing their own inode really got one.
          const dest = path.join(work, `links-${m}-tree`);
          for (const f of ['usr/bin/su-helper', 'usr/bin/sg-helper', 'usr/share/with-xattrs', 'usr/share/owned', 'usr/share/no-read']) {
            expect(fs.lstatSync(path.join(dest, f)).nlink, f).toBe(1);
          }
          expect(fs.lstatSync(path.join(dest, 'usr/bin/tool')).nlink).toBeGreaterThan(1);
        }
      });

      it.skipIf(!pair)(`${m}: rootfs-b${pair ? '' : ' (SKIPPED: rootfsPair() returned null)'}`, () => {
        check(m, made[m]['rootfs/b'], 'rootfs-b');
      }, 60_000);
    }
  });
});
