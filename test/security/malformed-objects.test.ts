// Attack: objects that do not parse. Truncated and garbage commits,
// dirtrees, dirmetas and content objects, and checksum fields of the wrong
// length, both as damaged files (the name no longer matches) and as hostile
// objects named by their real SHA-256. Every command that reads them must
// stop with one line and the registry's exit code, never a stack trace, and
// a refused checkout leaves no destination behind.

import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { serialize } from '../../src/core/gvariant.js';
import { type Checksum, serializeCommit, serializeDirMeta } from '../../src/core/objects.js';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import type { RepoMode } from '../../src/repo/repo.js';
import { CLI, sh, tmpDir } from '../helpers/fixtures.js';
import { type RepoInfo, dirtreeBytes, expectRefusal, honestRepo, objectFile, putCommit, putObject, raw, run, setRef, snapshot } from './hostile-repo.js';

type Command = 'log' | 'ls' | 'checkout' | 'fsck';

interface Case {
  name: string;
  modes?: RepoMode[];
  /** Damages the repo; returns the rev to read. */
  damage: (info: RepoInfo) => string;
  /** Commands that must refuse (the others may succeed, but never crash). */
  refuse: Command[];
  codes?: ErrorCode[];
}

const truncate = (file: string, keep: (n: number) => number): void => {
  const b = fs.readFileSync(file);
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, b.subarray(0, keep(b.length)));
};

const garbage = (n: number, seed: number): Buffer => {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
};

/** A commit whose checksum fields are `rootTreeLen` / `parentLen` bytes long, named by its hash. */
const oddCommit = (info: RepoInfo, rootTreeLen: number, parentLen = 0, rootMetaLen = 32): Checksum =>
  putObject(info, 'commit', serialize('(a{sv}aya(say)sstayay)', [
    [], Buffer.alloc(parentLen, 1), [], 'odd', '', 0n, Buffer.concat([raw(info.rootTree), Buffer.alloc(64)]).subarray(0, rootTreeLen),
    Buffer.concat([raw(info.rootMeta), Buffer.alloc(64)]).subarray(0, rootMetaLen),
  ]));

const CASES: Case[] = [
  { name: 'truncated commit', damage: (i) => (truncate(objectFile(i, i.commit, 'commit'), (n) => n - 9), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  { name: 'empty commit file', damage: (i) => (truncate(objectFile(i, i.commit, 'commit'), () => 0), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  {
    name: 'garbage commit, named by its checksum',
    damage: (i) => {
      const c = putObject(i, 'commit', garbage(300, 7));
      setRef(i, 'main', c);
      return 'main';
    },
    refuse: ['log', 'ls', 'checkout', 'fsck'],
  },
  { name: 'commit with a 31-byte root tree checksum', damage: (i) => (setRef(i, 'main', oddCommit(i, 31)), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  { name: 'commit with a 33-byte root tree checksum', damage: (i) => (setRef(i, 'main', oddCommit(i, 33)), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  { name: 'commit with an empty root meta checksum', damage: (i) => (setRef(i, 'main', oddCommit(i, 32, 0, 0)), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  { name: 'commit with a 5-byte parent checksum', damage: (i) => (setRef(i, 'main', oddCommit(i, 32, 5)), 'main'), refuse: ['log', 'ls', 'checkout', 'fsck'] },
  { name: 'truncated root dirtree', damage: (i) => (truncate(objectFile(i, i.rootTree, 'dirtree'), (n) => n >> 1), 'main'), refuse: ['ls', 'checkout', 'fsck'] },
  {
    name: 'garbage root dirtree, named by its checksum',
    damage: (i) => (putCommit(i, putObject(i, 'dirtree', garbage(200, 3)), i.rootMeta, 'bad'), 'bad'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'dirtree with a 31-byte file checksum, named by its checksum',
    damage: (i) => (putCommit(i, putObject(i, 'dirtree', dirtreeBytes([['f', raw(i.file).subarray(0, 31)]], [])), i.rootMeta, 'bad'), 'bad'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'dirtree with a 0-byte dirmeta checksum, named by its checksum',
    damage: (i) => (putCommit(i, putObject(i, 'dirtree', dirtreeBytes([], [['d', raw(i.etcTree), Buffer.alloc(0)]])), i.rootMeta, 'bad'), 'bad'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'dirtree with unsorted entries, named by its checksum',
    damage: (i) => (putCommit(i, putObject(i, 'dirtree', dirtreeBytes([['z', raw(i.file)], ['a', raw(i.file)]], [])), i.rootMeta, 'bad'), 'bad'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  { name: 'truncated root dirmeta', damage: (i) => (truncate(objectFile(i, i.rootMeta, 'dirmeta'), (n) => n - 3), 'main'), refuse: ['checkout', 'fsck'] },
  {
    name: 'garbage dirmeta, named by its checksum',
    damage: (i) => (putCommit(i, i.rootTree, putObject(i, 'dirmeta', garbage(40, 11)), 'bad'), 'bad'),
    refuse: ['checkout', 'fsck'],
  },
  {
    name: 'dirmeta whose mode is a regular file, named by its checksum',
    damage: (i) => (putCommit(i, i.rootTree, putObject(i, 'dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o100644, xattrs: [] })), 'bad'), 'bad'),
    refuse: ['checkout', 'fsck'],
  },
  {
    name: 'archive content object truncated inside its header',
    modes: ['archive'],
    damage: (i) => (truncate(objectFile(i, i.file, 'file'), () => 20), 'main'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'archive content object truncated inside its compressed body',
    modes: ['archive'],
    damage: (i) => {
      // os-release: 500 bytes, so the body is big enough to cut.
      const ls = run(['ls', '--repo', i.repo, '--json', 'main', '/etc/os-release']).json<{ checksum: Checksum }[]>();
      truncate(objectFile(i, ls[0].checksum, 'file'), (n) => n - 4);
      return 'main';
    },
    refuse: ['checkout', 'fsck'],
  },
  { name: 'archive content object of garbage', modes: ['archive'], damage: (i) => (fs.writeFileSync(objectFile(i, i.file, 'file'), garbage(64, 5)), 'main'), refuse: ['ls', 'checkout', 'fsck'] },
  {
    name: 'archive content object whose header claims more bytes than the file has',
    modes: ['archive'],
    damage: (i) => {
      const f = objectFile(i, i.file, 'file');
      const b = fs.readFileSync(f);
      b.writeUInt32BE(4000, 0);
      fs.writeFileSync(f, b);
      return 'main';
    },
    refuse: ['ls', 'checkout', 'fsck'],
  },
  { name: 'empty archive symlink object', modes: ['archive'], damage: (i) => (truncate(objectFile(i, i.link, 'file'), () => 0), 'main'), refuse: ['ls', 'checkout', 'fsck'] },
  {
    name: 'bare-user content object without user.ostreemeta',
    modes: ['bare-user'],
    damage: (i) => (sh('setfattr', ['-x', 'user.ostreemeta', objectFile(i, i.file, 'file')]), 'main'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'bare-user content object with a garbage user.ostreemeta',
    modes: ['bare-user'],
    damage: (i) => (sh('setfattr', ['-n', 'user.ostreemeta', '-v', '0x' + garbage(23, 9).toString('hex'), objectFile(i, i.file, 'file')]), 'main'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
  {
    name: 'bare-user content object truncated',
    modes: ['bare-user'],
    damage: (i) => (truncate(objectFile(i, i.file, 'file'), (n) => n - 2), 'main'),
    refuse: ['fsck'],
  },
  {
    name: 'bare-user symlink object with an empty target',
    modes: ['bare-user'],
    damage: (i) => (truncate(objectFile(i, i.link, 'file'), () => 0), 'main'),
    refuse: ['ls', 'checkout', 'fsck'],
  },
];

const CODES: ErrorCode[] = ['OBJECT_MALFORMED', 'OBJECT_CORRUPT', 'OBJECT_MISSING', 'UNSAFE_PATH'];

/** The CLI without blocking: the commands of one case run side by side. */
function runAsync(args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ status: err ? (err.code as number) : 0, signal: null, stdout, stderr, json: <T>() => JSON.parse(stdout) as T });
    });
  });
}

type Outcome = Pick<ReturnType<typeof run>, 'status' | 'signal' | 'stdout' | 'stderr' | 'json'>;

describe('malformed objects', () => {
  for (const mode of ['archive', 'bare-user'] as const) {
    describe.concurrent(`${mode} repository`, () => {
      let template: RepoInfo;
      beforeAll(() => {
        template = honestRepo(tmpDir('strata-malformed-template-'), mode);
      });

      for (const c of CASES.filter((x) => !x.modes || x.modes.includes(mode))) {
        it(c.name, async () => {
          const work = tmpDir('strata-malformed-');
          // cp -a keeps bare-user objects' user.ostreemeta xattrs.
          sh('cp', ['-a', template.repo, path.join(work, 'repo')]);
          const info: RepoInfo = { ...template, repo: path.join(work, 'repo') };
          const rev = c.damage(info);
          const argv: Record<Command, string[]> = {
            log: ['log', '--repo', info.repo, rev],
            ls: ['ls', '--repo', info.repo, '-R', rev],
            checkout: ['checkout', '--repo', info.repo, rev, path.join(work, 'dest')],
            fsck: ['fsck', '--repo', info.repo],
          };
          const cmds = c.refuse;
          const [json, ...outcomes] = await Promise.all([runAsync(['fsck', '--repo', info.repo, '--json']), ...cmds.map((cmd) => runAsync(argv[cmd]))]);
          cmds.forEach((cmd, k) => {
            const r = outcomes[k];
            expect(r.status, `${cmd} should refuse: ${r.stdout}`).not.toBe(0);
            expectRefusal(r as ReturnType<typeof run>, cmd === 'fsck' ? 'FSCK_FAILED' : (c.codes ?? CODES));
          });
          // A refused checkout leaves nothing behind.
          if (cmds.includes('checkout')) expect(fs.readdirSync(work).sort()).toEqual(['repo']);
          // fsck --json names a problem and exits 1, with nothing on stderr.
          expect(json.status).toBe(1);
          expect(json.stderr).toBe('');
          expect(json.json<{ problems: unknown[] }>().problems.length).toBeGreaterThan(0);
        });
      }
    });
  }

  it('commands that do not need the damaged object still work', () => {
    // A truncated root dirmeta: log never reads it, ls of / lists the entries, not / itself.
    const work = tmpDir('strata-malformed-');
    const info = honestRepo(work);
    truncate(objectFile(info, info.rootMeta, 'dirmeta'), (n) => n - 3);
    expect(run(['log', '--repo', info.repo, 'main']).status).toBe(0);
    expect(run(['ls', '--repo', info.repo, 'main', '/etc']).status).toBe(0);
    expectRefusal(run(['checkout', '--repo', info.repo, 'main', path.join(work, 'dest')]), 'OBJECT_MALFORMED');
  });

  it('a ref holding garbage is refused with one line', () => {
    const work = tmpDir('strata-malformed-');
    const info = honestRepo(work);
    fs.writeFileSync(path.join(info.repo, 'refs/heads/main'), 'not a checksum\n');
    for (const cmd of ['log', 'ls', 'show']) expectRefusal(run([cmd, '--repo', info.repo, 'main']), 'INVALID_CHECKSUM');
  });

  it('a commit object that is a directory is refused with one line', () => {
    const work = tmpDir('strata-malformed-');
    const info = honestRepo(work);
    const f = objectFile(info, info.commit, 'commit');
    fs.rmSync(f);
    fs.mkdirSync(f);
    const before = snapshot(info.repo);
    for (const cmd of ['log', 'ls', 'show']) expectRefusal(run([cmd, '--repo', info.repo, 'main']), 'IO');
    expect(snapshot(info.repo)).toEqual(before);
    expect(ERROR_CODES.IO.exit).toBe(74);
  });

  it('a commit whose parent is garbage: log stops with one line', () => {
    const work = tmpDir('strata-malformed-');
    const info = honestRepo(work);
    const parent = putObject(info, 'commit', garbage(120, 13));
    const child = putObject(info, 'commit', serializeCommit({ metadata: [], parent, related: [], subject: 'child', body: '', timestamp: 1700000001, rootTree: info.rootTree, rootMeta: info.rootMeta }));
    setRef(info, 'main', child);
    expectRefusal(run(['log', '--repo', info.repo, 'main']), 'OBJECT_MALFORMED');
    expectRefusal(run(['show', '--repo', info.repo, 'main^']), 'OBJECT_MALFORMED');
  });
});
