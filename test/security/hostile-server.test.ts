// A hostile server on 127.0.0.1: a summary whose ref names climb out of
// refs/ or are absolute, a refs/heads file holding garbage, a summary that
// claims a commit of 2^40 bytes, a commit object that never ends, a tree with
// `..` and `a/b` entries (correctly hashed, so only the name is wrong), an
// unsigned commit where keys are required, and an older commit (downgrade).
// Each is refused with one clear error (or, for a lie the pull never relies
// on, ignored safely); nothing is stored, no ref moves, nothing is written
// outside the repository, and `strata fsck` stays clean.

import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { type Checksum, type Commit, serializeCommit } from '../../src/core/objects.js';
import { StrataError } from '../../src/errors.js';
import { Repo } from '../../src/repo/repo.js';
import { fsck } from '../../src/repo/fsck.js';
import { listRefs, readRef } from '../../src/repo/refs.js';
import { listObjects } from '../../src/repo/reachable.js';
import { serializeSummary, updateSummary } from '../../src/remote/summary.js';
import { generateKeyPair, writeKeyPair } from '../../src/remote/sign.js';
import { addRemote } from '../../src/remote/remotes.js';
import { pull, pullStagingDir } from '../../src/remote/pull.js';
import { CLI, runAsync, tmpDir } from '../helpers/fixtures.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';
import { type RepoInfo, dirtreeBytes, expectRefusal, honestRepo, putObject, raw, setRef, snapshot } from './hostile-repo.js';

process.env.STRATA_WORKERS ??= '1';

async function failure(p: Promise<unknown>): Promise<StrataError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError);
    expect((err as Error).message).not.toContain('\n');
    return err as StrataError;
  }
  throw new Error('expected the pull to be refused');
}

/** `strata pull` as a process (the server lives in this one: never block it). */
async function cliPull(repo: string, args: string[]): Promise<ReturnType<typeof import('../helpers/fixtures.js').strata>> {
  const r = await runAsync(process.execPath, [CLI, 'pull', '--repo', repo, ...args]);
  return { ...r, signal: null } as never;
}

function writeSummary(info: RepoInfo, refs: { name: string; checksum: string; size?: number | bigint }[]): void {
  const bytes = serializeSummary({ refs: refs.map((r) => ({ name: r.name, checksum: r.checksum as Checksum, size: Number(r.size ?? 300), metadata: [] })), metadata: [] });
  fs.writeFileSync(path.join(info.repo, 'summary'), bytes);
}

describe('pull from a hostile server', () => {
  let dir: string;
  let info: RepoInfo;
  let srv: TestServer;
  let local: string;

  beforeEach(async (ctx) => {
    dir = tmpDir('strata-hostile-server-');
    info = honestRepo(dir, 'archive');
    updateSummary({ repo: info.repo });
    srv = await serveRepo(info.repo);
    local = path.join(dir, 'local');
    Repo.init(local, 'bare-user');
    addRemote({ repo: local, name: 'origin', url: srv.url });
    ctx.onTestFinished(() => srv.close());
  });

  /** Nothing stored, no ref, fsck clean; the hostile object (if named) not even kept in the staging area for a later run. */
  async function untouched(hostile?: Checksum): Promise<void> {
    const repo = Repo.open(local);
    expect(listObjects(repo)).toEqual([]);
    expect(listRefs(repo)).toEqual([]);
    const staging = pullStagingDir(repo, 'origin');
    if (hostile && fs.existsSync(staging)) expect(fs.readdirSync(staging).filter((n) => n.startsWith(hostile))).toEqual([]);
    expect((await fsck({ repo: local })).problems).toEqual([]);
  }

  it('ref names that climb out of refs/ or are absolute: refused, nothing written outside refs/; the honest ref still pulls', async () => {
    const hostile = ['../../../../escaped', '/tmp/strata-absolute-ref', 'heads/../../../config', '..'];
    writeSummary(info, [...hostile.map((name) => ({ name, checksum: info.commit })), { name: 'main', checksum: info.commit }]);
    const outside = snapshot(dir).filter((l) => !l.startsWith('local'));
    for (const name of hostile) {
      expect((await failure(pull({ repo: local, remote: 'origin', rev: name }))).code, name).toBe('INVALID_REF');
      expectRefusal(await cliPull(local, ['origin', name]), 'INVALID_REF');
      expectRefusal(await cliPull(local, ['origin', name, '--mirror']), 'INVALID_REF');
    }
    await untouched();
    // Nothing was asked of the server for them beyond the summary, and nothing appeared anywhere.
    expect(srv.log.map((l) => l.url)).toEqual([]);
    expect(fs.existsSync('/tmp/strata-absolute-ref')).toBe(false);
    expect(snapshot(dir).filter((l) => !l.startsWith('local'))).toEqual(outside);
    // The same summary's honest ref pulls; its hostile neighbours leave no trace.
    const r = await pull({ repo: local, remote: 'origin', rev: 'main' });
    expect(r.commit).toBe(info.commit);
    expect(listRefs(Repo.open(local))).toEqual([{ name: 'origin:main', checksum: info.commit }]);
    expect(snapshot(path.join(local, 'refs')).filter((l) => !/\/$|\/ \d+$/.test(l) && !l.endsWith(' 755'))).toEqual([expect.stringMatching(/^remotes\/origin\/main /)]);
  });

  it('no summary, and refs/heads/REF holds garbage or is huge: a clear error, nothing stored', async () => {
    fs.rmSync(path.join(info.repo, 'summary'));
    setRef(info, 'main', '../../../../etc/passwd');
    expect((await failure(pull({ repo: local, remote: 'origin', rev: 'main' }))).code).toBe('INVALID_CHECKSUM');
    expectRefusal(await cliPull(local, ['origin', 'main']), 'INVALID_CHECKSUM');
    fs.writeFileSync(path.join(info.repo, 'refs/heads/main'), 'a'.repeat(1024 * 1024));
    const e = await failure(pull({ repo: local, remote: 'origin', rev: 'main' }));
    expect(e.code).toBe('HTTP_ERROR');
    expect(e.message).toMatch(/more than the 4096 bytes allowed/);
    await untouched();
  });

  it('a summary claiming a 2^40-byte commit: the size is never trusted (bounded read of the real object); 2^64-1 is refused as malformed', async () => {
    writeSummary(info, [{ name: 'main', checksum: info.commit, size: 2 ** 40 }]);
    const r = await pull({ repo: local, remote: 'origin', rev: 'main' });
    expect(r.commit).toBe(info.commit);
    expect((await fsck({ repo: local })).problems).toEqual([]);
    // A commit object that does not end: read up to the metadata limit, then refused.
    const endless = 'ab'.repeat(32);
    const file = path.join(info.repo, 'objects', 'ab', `${endless.slice(2)}.commit`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.alloc(11 * 1024 * 1024, 1));
    writeSummary(info, [{ name: 'main', checksum: info.commit }, { name: 'big', checksum: endless, size: 2 ** 40 }]);
    const before = process.memoryUsage().rss;
    const e = await failure(pull({ repo: local, remote: 'origin', rev: 'big' }));
    expect(e.code).toBe('HTTP_ERROR');
    expect(e.message).toMatch(/more than the 10485760 bytes allowed/);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    expect(Repo.open(local).hasObject(endless as Checksum, 'commit')).toBe(false);
    expect(readRef(Repo.open(local), 'origin:big')).toBeNull();
    const huge = serializeSummary({ refs: [{ name: 'main', checksum: info.commit, size: 0, metadata: [] }], metadata: [] });
    // The size is the first 8 bytes of the ref's value: set them to 2^64-1.
    const at = huge.indexOf(Buffer.from('main\0')) + 5 + ((8 - ((huge.indexOf(Buffer.from('main\0')) + 5) % 8)) % 8);
    huge.fill(0xff, at, at + 8);
    fs.writeFileSync(path.join(info.repo, 'summary'), huge);
    const m = await failure(pull({ repo: local, remote: 'origin', rev: 'main' }));
    expect(m.code).toBe('SUMMARY_MALFORMED');
    expect(m.message).toMatch(/claims a commit of 18446744073709551615 bytes/);
  });

  it.each([
    ['a file named ..', (f: Checksum) => dirtreeBytes([['..', raw(f)]], [])],
    ['a file named a/b', (f: Checksum) => dirtreeBytes([['a/b', raw(f)]], [])],
    ['a directory named ..', (_f: Checksum, t: Checksum, m: Checksum) => dirtreeBytes([], [['..', raw(t), raw(m)]])],
    ['a directory named ../../etc', (_f: Checksum, t: Checksum, m: Checksum) => dirtreeBytes([], [['../../etc', raw(t), raw(m)]])],
  ])('a tree with %s (correctly hashed): UNSAFE_PATH, nothing stored, the ref does not move', async (_what, make) => {
    // The hostile entry sits one level down, under an honest root: the walk meets it after fetching the root.
    const bad = putObject(info, 'dirtree', make(info.file, info.etcTree, info.rootMeta));
    const root = putObject(info, 'dirtree', dirtreeBytes([], [['usr', raw(bad), raw(info.rootMeta)]]));
    const c: Commit = { metadata: [], parent: null, related: [], subject: 'hostile', body: '', timestamp: 1_800_000_000, rootTree: root, rootMeta: info.rootMeta };
    const hostile = putObject(info, 'commit', serializeCommit(c));
    setRef(info, 'main', hostile);
    updateSummary({ repo: info.repo });
    const e = await failure(pull({ repo: local, remote: 'origin', rev: 'main' }));
    expect(e.code).toBe('UNSAFE_PATH');
    expect(e.message).toContain(bad.slice(2));
    expect(srv.log.some((l) => l.url.includes(bad.slice(2)))).toBe(true);
    await untouched(bad);
    expectRefusal(await cliPull(local, ['origin', 'main']), 'UNSAFE_PATH');
    await untouched(bad);
  });

  it('an unsigned commit where the remote requires signatures: SIGNATURE_MISSING before any tree is fetched', async () => {
    const key = generateKeyPair();
    const files = writeKeyPair(path.join(dir, 'key'), key);
    updateSummary({ repo: info.repo, signKeyFile: files.secretFile });
    const signedLocal = path.join(dir, 'signed-local');
    Repo.init(signedLocal, 'archive');
    addRemote({ repo: signedLocal, name: 'origin', url: srv.url, signVerify: files.publicFile });
    local = signedLocal;
    const e = await failure(pull({ repo: local, remote: 'origin', rev: 'main' }));
    expect(e.code).toBe('SIGNATURE_MISSING');
    expectRefusal(await cliPull(local, ['origin', 'main']), 'SIGNATURE_MISSING');
    expect(srv.log.filter((l) => /\.(dirtree|dirmeta|filez)$/.test(l.url))).toEqual([]);
    await untouched();
  });

  it('an older commit (downgrade): DOWNGRADE_REFUSED, the ref stays; --allow-downgrade moves it', async () => {
    await pull({ repo: local, remote: 'origin', rev: 'main' });
    const c: Commit = { metadata: [], parent: null, related: [], subject: 'old', body: '', timestamp: 1_600_000_000, rootTree: info.rootTree, rootMeta: info.rootMeta };
    const old = putObject(info, 'commit', serializeCommit(c));
    setRef(info, 'main', old);
    updateSummary({ repo: info.repo });
    const e = await failure(pull({ repo: local, remote: 'origin', rev: 'main' }));
    expect(e.code).toBe('DOWNGRADE_REFUSED');
    expectRefusal(await cliPull(local, ['origin', 'main']), 'DOWNGRADE_REFUSED');
    expect(readRef(Repo.open(local), 'origin:main')).toBe(info.commit);
    expect(Repo.open(local).hasObject(old, 'commit')).toBe(false);
    expect((await fsck({ repo: local })).problems).toEqual([]);
    const r = await pull({ repo: local, remote: 'origin', rev: 'main', allowDowngrade: true });
    expect(r.commit).toBe(old);
    expect(readRef(Repo.open(local), 'origin:main')).toBe(old);
  });
});
