// strata pull through static deltas, against strata serve's handler on
// 127.0.0.1 with its request log: FROM→TO when the local ref names FROM, from
// nothing into an empty repository, objects with --disable-static-deltas or
// when the server lacks the delta it lists, a corrupted part refused with
// nothing stored, and the commit signature checked before any delta file is
// requested.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { readRef, writeRef } from '../../src/repo/refs.js';
import { listObjects } from '../../src/repo/reachable.js';
import { type Checksum } from '../../src/core/objects.js';
import { staticDeltaDir } from '../../src/core/deltas.js';
import { resolveTreePath } from '../../src/repo/walk.js';
import { parseSuperblock } from '../../src/core/delta-format.js';
import { generateDelta } from '../../src/remote/delta-generate.js';
import { updateSummary } from '../../src/remote/summary.js';
import { generateKeyPair, signCommit, writeKeyPair } from '../../src/remote/sign.js';
import { addRemote } from '../../src/remote/remotes.js';
import { type PullOptions, pull } from '../../src/remote/pull.js';
import { makeTree, tmpDir } from '../helpers/fixtures.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';

process.env.STRATA_WORKERS ??= '1';

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; data?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; data?: Record<string, unknown> };
  }
  return {};
}

const objectKeys = (repo: string): Set<string> => new Set(listObjects(Repo.open(repo)).map((o) => `${o.checksum}.${o.type}`));
const deltaRequests = (s: TestServer): string[] => s.log.filter((l) => l.url.startsWith('/deltas/')).map((l) => l.url);
const objectRequests = (s: TestServer): string[] => s.log.filter((l) => /\.(filez|dirtree|dirmeta)$/.test(l.url)).map((l) => l.url);

describe('pull with static deltas', () => {
  let dir: string;
  let server: string;
  let srv: TestServer;
  let A: Checksum;
  let B: Checksum;
  let parts: number;

  beforeAll(async () => {
    dir = tmpDir('strata-pull-delta-');
    server = path.join(dir, 'server');
    Repo.init(server, 'archive');
    const tree = makeTree(path.join(dir, 'tree'), 0);
    A = (await commit({ repo: server, branch: 'main', source: tree, timestamp: 1_700_000_000, subject: 'A' })).commit as Checksum;
    fs.writeFileSync(path.join(tree, 'etc/hostname'), 'changed\n');
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(tree, `usr/share/new-${i}`), `file ${i} only in B\n`.repeat(4000));
    const big = fs.readFileSync(path.join(tree, 'usr/share/big.bin'));
    big.fill(0x42, 1000, 2000);
    fs.writeFileSync(path.join(tree, 'usr/share/big.bin'), big);
    B = (await commit({ repo: server, branch: 'main', source: tree, timestamp: 1_700_000_100, subject: 'B' })).commit as Checksum;
    // Small parts, so that a delta has several.
    const ab = await generateDelta({ repo: server, from: A, to: B, maxPartBytes: 32 * 1024, xzPreset: 0 });
    await generateDelta({ repo: server, from: null, to: B, maxPartBytes: 32 * 1024, xzPreset: 0 });
    parts = parseSuperblock(fs.readFileSync(path.join(ab.path, 'superblock'))).parts.length;
    expect(parts).toBeGreaterThan(1);
    updateSummary({ repo: server });
    srv = await serveRepo(server);
  });
  afterAll(async () => srv?.close());

  /** A local repository whose `origin:main` names A (as after an earlier pull), with A's objects fetched from `seedUrl`. */
  async function repoHoldingA(name: string, mode: 'archive' | 'bare-user', url: string, signVerify?: string): Promise<string> {
    const repo = path.join(dir, name);
    Repo.init(repo, mode);
    addRemote({ repo, name: 'seed', url: srv.url });
    await pull({ repo, remote: 'seed', rev: A, disableStaticDeltas: true });
    writeRef(Repo.open(repo), 'origin:main', A);
    addRemote({ repo, name: 'origin', url, signVerify });
    return repo;
  }

  const run = (o: Omit<PullOptions, 'remote'>) => pull({ remote: 'origin', ...o });

  it.each(['bare-user', 'archive'] as const)('pulls B into a %s repository holding A through the delta A→B: parts fetched, no objects', async (mode) => {
    const s = await serveRepo(server);
    try {
      const repo = await repoHoldingA(`ab-${mode}`, mode, s.url);
      const before = objectKeys(repo);
      const progress: boolean[] = [];
      const r = await run({ repo, rev: 'main', onProgress: (p) => progress.push(p.delta) });
      expect(r.delta).toEqual({ name: `${A}-${B}`, parts, bytes: expect.any(Number) });
      expect(r.delta!.bytes).toBeGreaterThan(0);
      expect(progress).toContain(true);
      const dirUrl = `/${staticDeltaDir({ from: A, to: B })}`;
      expect(deltaRequests(s).sort()).toEqual([`${dirUrl}/superblock`, ...Array.from({ length: parts }, (_, i) => `${dirUrl}/${i}`)].sort());
      expect(objectRequests(s)).toEqual([]);
      expect(s.log.filter((l) => l.url === '/summary').length).toBe(1);
      expect(r.objects.fetched).toBe(0);
      expect(r.changed).toBe(true);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(B);
      const added = [...objectKeys(repo)].filter((k) => !before.has(k));
      expect(r.objects.stored).toBe(added.length);
      expect(added).toContain(`${B}.commit`);
      expect((await fsck({ repo })).problems).toEqual([]);
      // Already there: nothing more is fetched, no delta either.
      const again = await run({ repo, rev: 'main' });
      expect(again.delta).toBeNull();
      expect(again.objects.fetched).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('fetches objects with --disable-static-deltas', async () => {
    const s = await serveRepo(server);
    try {
      const repo = await repoHoldingA('no-deltas', 'bare-user', s.url);
      const r = await run({ repo, rev: 'main', disableStaticDeltas: true });
      expect(r.delta).toBeNull();
      expect(deltaRequests(s)).toEqual([]);
      expect(objectRequests(s).some((u) => u.endsWith('.filez'))).toBe(true);
      // hostname, big.bin and six new files.
      expect(r.objects.content).toBe(8);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(B);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('uses the delta from nothing in an empty repository, and fetches parents for --depth as objects', async () => {
    const s = await serveRepo(server);
    try {
      const repo = path.join(dir, 'scratch');
      Repo.init(repo, 'bare-user');
      addRemote({ repo, name: 'origin', url: s.url });
      const r = await run({ repo, rev: 'main', mirror: true, depth: 1 });
      expect(r.delta?.name).toBe(B);
      expect(deltaRequests(s).some((u) => u.endsWith('/superblock'))).toBe(true);
      expect(deltaRequests(s).some((u) => u.includes(staticDeltaDir({ from: A, to: B })))).toBe(false);
      // B's tree came in the delta; only A's (the parent's) metadata was requested.
      expect(s.log.some((l) => l.url.endsWith(`${A.slice(2)}.commit`))).toBe(true);
      expect(r.commits).toBe(2);
      expect(readRef(Repo.open(repo), 'main')).toBe(B);
      expect(Repo.open(repo).hasObject(A, 'commit')).toBe(true);
      expect(r.objects.stored).toBe(listObjects(Repo.open(repo)).length);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('falls back to objects when the summary lists a delta the server does not have', async () => {
    const stale = path.join(dir, 'stale-server');
    fs.cpSync(server, stale, { recursive: true });
    fs.rmSync(path.join(stale, staticDeltaDir({ from: A, to: B })), { recursive: true });
    const s = await serveRepo(stale);
    try {
      const repo = await repoHoldingA('stale', 'archive', s.url);
      const r = await run({ repo, rev: 'main' });
      expect(r.delta).toBeNull();
      expect(s.log.find((l) => l.url.endsWith('/superblock'))?.status).toBe(404);
      expect(objectRequests(s).length).toBeGreaterThan(0);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(B);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('refuses a corrupted delta part with DELTA_CORRUPT and stores nothing (as ostree, no fallback)', async () => {
    const bad = path.join(dir, 'bad-server');
    fs.cpSync(server, bad, { recursive: true });
    const part = path.join(bad, staticDeltaDir({ from: A, to: B }), '1');
    const bytes = fs.readFileSync(part);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(part, bytes);
    const s = await serveRepo(bad);
    try {
      const repo = await repoHoldingA('bad', 'bare-user', s.url);
      const before = objectKeys(repo);
      const e = await errorOf(run({ repo, rev: 'main' }));
      expect(e.code).toBe('DELTA_CORRUPT');
      expect(e.data?.part).toBe(1);
      expect(objectKeys(repo)).toEqual(before);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(A);
      expect(objectRequests(s)).toEqual([]);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it.each(['bare-user', 'archive'] as const)('a %s repository that lost the file a patch applies to: OBJECT_MISSING naming it, nothing stored', async (mode) => {
    const s = await serveRepo(server);
    try {
      const repo = await repoHoldingA(`lost-${mode}`, mode, s.url);
      const r = Repo.open(repo);
      const node = resolveTreePath(r, A, '/usr/share/big.bin');
      if (node.kind !== 'file') throw new Error('big.bin is not a file in A');
      fs.rmSync(r.objectFile(node.checksum, 'file'));
      const before = objectKeys(repo);
      const e = await errorOf(run({ repo, rev: 'main' }));
      expect(e.code).toBe('OBJECT_MISSING');
      expect(e.data?.checksum).toBe(node.checksum);
      expect(objectKeys(repo)).toEqual(before);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(A);
    } finally {
      await s.close();
    }
  });

  it('checks the commit signature before requesting the delta; stores the verified detached metadata', async () => {
    const signed = path.join(dir, 'signed-server');
    fs.cpSync(server, signed, { recursive: true });
    const key = generateKeyPair();
    const keyFile = path.join(dir, 'key');
    const publicFile = writeKeyPair(keyFile, key).publicFile;
    const other = writeKeyPair(path.join(dir, 'other'), generateKeyPair()).secretFile;
    signCommit({ repo: signed, rev: 'main', keyFile: other });
    updateSummary({ repo: signed, signKeyFile: keyFile });
    const s = await serveRepo(signed);
    try {
      const repo = await repoHoldingA('signed', 'bare-user', s.url, publicFile);
      const e = await errorOf(run({ repo, rev: 'main' }));
      expect(e.code).toBe('SIGNATURE_INVALID');
      expect(deltaRequests(s)).toEqual([]);
      expect(objectRequests(s)).toEqual([]);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(A);
      expect(Repo.open(repo).hasObject(B, 'commit')).toBe(false);

      // Signed after the delta was made: the superblock carries no signature; the pull stores the one it verified.
      signCommit({ repo: signed, rev: 'main', keyFile });
      const r = await run({ repo, rev: 'main' });
      expect(r.verifiedBy).toBe(key.publicKey);
      expect(r.delta?.name).toBe(`${A}-${B}`);
      const served = fs.readFileSync(Repo.open(signed).objectFile(B, 'commitmeta'));
      expect(fs.readFileSync(Repo.open(repo).objectFile(B, 'commitmeta')).equals(served)).toBe(true);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
