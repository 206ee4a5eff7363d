// strata pull against a server on 127.0.0.1 (strata serve's handler, made to
// misbehave where a test needs it): both local modes, incremental pulls,
// signatures checked before any tree is fetched, downgrade protection, wrong
// bytes, a connection cut mid-file continued with Range, transient 503s.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { readRef, writeRef } from '../../src/repo/refs.js';
import { listObjects } from '../../src/repo/reachable.js';
import { updateSummary } from '../../src/remote/summary.js';
import { generateKeyPair, signCommit, writeKeyPair } from '../../src/remote/sign.js';
import { addRemote } from '../../src/remote/remotes.js';
import { type PullOptions, pull, pullStagingDir } from '../../src/remote/pull.js';
import { makeTree, tmpDir } from '../helpers/fixtures.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';

process.env.STRATA_WORKERS ??= '1';

async function codeOfAsync(p: Promise<unknown>): Promise<{ code?: string; data?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; data?: Record<string, unknown> };
  }
  return {};
}

function localRepo(dir: string, name: string, mode: 'archive' | 'bare-user', url: string, signVerify?: string): string {
  const repo = path.join(dir, name);
  Repo.init(repo, mode);
  addRemote({ repo, name: 'origin', url, signVerify });
  return repo;
}

function objectCount(repo: string): number {
  return listObjects(Repo.open(repo)).length;
}

describe('pull', () => {
  let dir: string;
  let server: string;
  let srv: TestServer;
  let c1: string;
  let c2: string;
  const key = generateKeyPair();
  let keyFile: string;

  beforeAll(async () => {
    dir = tmpDir('strata-pull-');
    server = path.join(dir, 'server');
    Repo.init(server, 'archive');
    const tree = makeTree(path.join(dir, 'tree'), 0);
    // A large incompressible file: its .filez is well above the in-memory limit.
    fs.writeFileSync(path.join(tree, 'usr/share/random.bin'), Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 2654435761) >>> 24 ^ (i & 0xff))));
    c1 = (await commit({ repo: server, branch: 'main', source: tree, timestamp: 1_700_000_000, subject: "one" })).commit;
    fs.writeFileSync(path.join(tree, 'etc/hostname'), 'changed\n');
    fs.writeFileSync(path.join(tree, 'usr/share/new-file'), 'new\n');
    c2 = (await commit({ repo: server, branch: 'main', source: tree, timestamp: 1_700_000_100, subject: "two" })).commit;
    keyFile = writeKeyPair(path.join(dir, 'key'), key).publicFile;
    updateSummary({ repo: server });
    srv = await serveRepo(server);
  });
  afterAll(async () => srv?.close());

  const run = (o: Omit<PullOptions, 'remote'> & { remote?: string }) => pull({ remote: 'origin', ...o });

  it.each(['archive', 'bare-user'] as const)('pulls a ref into a %s repository; fsck passes; a second pull fetches nothing', async (mode) => {
    const repo = localRepo(dir, `full-${mode}`, mode, srv.url);
    const r = await run({ repo, rev: 'main' });
    expect(r.commit).toBe(c2);
    expect(r.localRef).toBe('origin:main');
    expect(readRef(Repo.open(repo), 'origin:main')).toBe(c2);
    expect(r.objects.stored).toBe(objectCount(repo));
    expect(r.objects.fetched).toBe(r.objects.stored - 1); // the commit itself is counted apart
    const f = await fsck({ repo });
    expect(f.problems).toEqual([]);
    expect(fs.existsSync(pullStagingDir(Repo.open(repo), 'origin'))).toBe(false);
    const again = await run({ repo, rev: 'main' });
    expect(again.objects.fetched).toBe(0);
    expect(again.changed).toBe(false);
  });

  it('fetches only the objects that changed between two commits, and follows --depth', async () => {
    const repo = localRepo(dir, 'incremental', 'archive', srv.url);
    const first = await run({ repo, rev: c1 });
    expect(first.localRef).toBeNull();
    const before = new Set(listObjects(Repo.open(repo)).map((o) => `${o.checksum}.${o.type}`));
    const second = await run({ repo, rev: 'main', mirror: true });
    expect(readRef(Repo.open(repo), 'main')).toBe(c2);
    const added = listObjects(Repo.open(repo)).filter((o) => !before.has(`${o.checksum}.${o.type}`));
    // Two changed files (one new), the dirtrees up to the root, and the commit.
    expect(second.objects.content).toBe(2);
    expect(added.length).toBe(second.objects.stored);
    expect(second.objects.fetched).toBe(added.length - 1);
    const deep = localRepo(dir, 'deep', 'bare-user', srv.url);
    const d = await run({ repo: deep, rev: 'main', depth: 1 });
    expect(d.commits).toBe(2);
    expect(Repo.open(deep).hasObject(c1 as never, 'commit')).toBe(true);
    expect((await fsck({ repo: deep })).problems).toEqual([]);
  });

  it('verifies the commit signature before fetching any tree; unsigned or wrongly signed stores nothing', async () => {
    const signedServer = path.join(dir, 'signed-server');
    fs.cpSync(server, signedServer, { recursive: true });
    const other = generateKeyPair();
    const otherFile = writeKeyPair(path.join(dir, 'other'), other).secretFile;
    const s = await serveRepo(signedServer);
    try {
      const unsigned = localRepo(dir, 'unsigned', 'archive', s.url, keyFile);
      updateSummary({ repo: signedServer, signKeyFile: path.join(dir, 'key') });
      const e1 = await codeOfAsync(run({ repo: unsigned, rev: 'main' }));
      expect(e1.code).toBe('SIGNATURE_MISSING');
      signCommit({ repo: signedServer, rev: 'main', keyFile: otherFile });
      const e2 = await codeOfAsync(run({ repo: unsigned, rev: 'main' }));
      expect(e2.code).toBe('SIGNATURE_INVALID');
      expect(objectCount(unsigned)).toBe(0);
      expect(readRef(Repo.open(unsigned), 'origin:main')).toBeNull();
      expect(fs.existsSync(pullStagingDir(Repo.open(unsigned), 'origin'))).toBe(false);
      // Nothing but the summary, its signature, the commit and its detached metadata was asked for.
      expect(s.log.filter((l) => /\.(dirtree|dirmeta|filez)$/.test(l.url))).toEqual([]);
      signCommit({ repo: signedServer, rev: 'main', keyFile: path.join(dir, 'key') });
      const r = await run({ repo: unsigned, rev: 'main' });
      expect(r.verifiedBy).toBe(key.publicKey);
      expect((await fsck({ repo: unsigned })).problems).toEqual([]);
      // The detached metadata (the signatures) came along.
      expect(Repo.open(unsigned).loadCommitMeta(c2 as never)).not.toBeNull();
    } finally {
      await s.close();
    }
  });

  it('refuses to move a ref to an older commit unless allowed', async () => {
    const downServer = path.join(dir, 'down-server');
    fs.cpSync(server, downServer, { recursive: true });
    const s = await serveRepo(downServer);
    try {
      const repo = localRepo(dir, 'downgrade', 'archive', s.url);
      await run({ repo, rev: 'main' });
      writeRef(Repo.open(downServer), 'main', c1 as never);
      updateSummary({ repo: downServer });
      const e = await codeOfAsync(run({ repo, rev: 'main' }));
      expect(e.code).toBe('DOWNGRADE_REFUSED');
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(c2);
      const r = await run({ repo, rev: 'main', allowDowngrade: true });
      expect(r.commit).toBe(c1);
      expect(r.previous).toBe(c2);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(c1);
    } finally {
      await s.close();
    }
  });

  it('reports a server that sends wrong bytes by URL and checksums, after asking twice; stores nothing', async () => {
    const target = listObjects(Repo.open(server)).find((o) => o.type === 'file')!;
    const name = `${target.checksum.slice(0, 2)}/${target.checksum.slice(2)}.filez`;
    const s = await serveRepo(server, { corrupt: (u) => u.endsWith(name) });
    try {
      const repo = localRepo(dir, 'corrupt', 'bare-user', s.url);
      const e = await codeOfAsync(run({ repo, rev: 'main' }));
      expect(e.code).toBe('OBJECT_CORRUPT');
      expect(e.data?.expected).toBe(target.checksum);
      expect(String(e.data?.url)).toContain(name);
      expect(s.log.filter((l) => l.url.endsWith(name)).length).toBe(2);
      expect(objectCount(repo)).toBe(0);
      expect(readRef(Repo.open(repo), 'origin:main')).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('continues a large object cut mid-transfer with a Range request', async () => {
    const s = await serveRepo(server);
    // The largest .filez is the random 3 MiB file.
    const big = listObjects(Repo.open(server)).filter((o) => o.type === 'file').sort((a, b) => fs.statSync(b.file).size - fs.statSync(a.file).size)[0];
    const name = `${big.checksum.slice(0, 2)}/${big.checksum.slice(2)}.filez`;
    const K = 1_500_000;
    s.behaviour.cutAfter = (u) => (u.endsWith(name) ? K : null);
    try {
      const repo = localRepo(dir, 'cut', 'bare-user', s.url);
      const r = await run({ repo, rev: 'main' });
      const requests = s.log.filter((l) => l.url.endsWith(name));
      expect(requests.length).toBe(2);
      expect(requests[0].range).toBeUndefined();
      expect(requests[1].range).toBe(`bytes=${K}-`);
      expect(requests[1].status).toBe(206);
      expect(r.bytes.resumedPartial).toBe(K);
      expect(r.retries).toBeGreaterThanOrEqual(1);
      expect((await fsck({ repo })).problems).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('retries transient 503s with backoff and gives up on 404 at once', async () => {
    const s = await serveRepo(server, { fail503: (u) => (u.includes('.dirtree') ? 2 : 0) });
    try {
      const repo = localRepo(dir, 'flaky', 'archive', s.url);
      const r = await run({ repo, rev: 'main' });
      expect(r.retries).toBeGreaterThanOrEqual(2);
      expect((await fsck({ repo })).problems).toEqual([]);
      const missing = '0'.repeat(64);
      const e = await codeOfAsync(run({ repo, rev: missing }));
      expect(e.code).toBe('HTTP_ERROR');
      expect(e.data?.status).toBe(404);
      expect(s.log.filter((l) => l.url.includes('00/0000')).length).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('reads the summary with the same retries and idle timeout as objects: a 500, a cut and a stall on it cost a retry, not the pull', async () => {
    // The nth request for the summary (the log holds the current one already).
    const nth = (u: string, k: number): boolean => u === '/summary' && s.log.filter((l) => l.url === '/summary').length === k;
    const s: TestServer = await serveRepo(server, {
      status500: (u) => nth(u, 1),
      cutAfter: (u) => (nth(u, 2) ? 10 : null),
      stall: (u) => (nth(u, 3) ? 0 : null),
    });
    try {
      const repo = localRepo(dir, 'summary-faults', 'archive', s.url);
      const started = Date.now();
      const r = await run({ repo, rev: 'main', timeoutMs: 300 });
      expect(r.commit).toBe(c2);
      expect(s.log.filter((l) => l.url === '/summary').map((l) => l.fault)).toEqual(['500', 'cut', 'stall', undefined]);
      expect(r.retries).toBeGreaterThanOrEqual(3);
      // The stall cost the pull's 300 ms idle timeout, not the default 30 s.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await s.close();
    }
  });

  it('asks once more for a summary, summary.sig or commitmeta whose bytes were damaged on the way; refuses when they stay wrong', async () => {
    const signed = path.join(dir, 'signed-wire');
    fs.cpSync(server, signed, { recursive: true });
    signCommit({ repo: signed, rev: 'main', keyFile: path.join(dir, 'key') });
    updateSummary({ repo: signed, signKeyFile: path.join(dir, 'key') });
    const meta = `${c2.slice(2)}.commitmeta`;
    const damaged = (u: string): boolean => u === '/summary' || u === '/summary.sig' || u.endsWith(meta);
    // Each file's first answer has a flipped byte.
    const s: TestServer = await serveRepo(signed, { corrupt: (u) => damaged(u) && s.log.filter((l) => l.url === u).length === 1 });
    try {
      const repo = localRepo(dir, 'wire-damage', 'archive', s.url, keyFile);
      const r = await run({ repo, rev: 'main' });
      expect(r.verifiedBy).toBe(key.publicKey);
      expect(s.log.filter((l) => l.fault === 'corrupt').map((l) => l.url.replace(/.*\//, ''))).toEqual(['summary', 'summary.sig', meta]);
      expect(readRef(Repo.open(repo), 'origin:main')).toBe(c2);
      expect(Repo.open(repo).loadCommitMeta(c2 as never)).not.toBeNull();
      expect((await fsck({ repo })).problems).toEqual([]);
      // Damaged every time: refused after the second answer, nothing stored.
      s.behaviour.corrupt = (u) => u.endsWith(meta);
      const again = localRepo(dir, 'wire-damage-2', 'archive', s.url, keyFile);
      const e = await codeOfAsync(run({ repo: again, rev: 'main' }));
      expect(['OBJECT_MALFORMED', 'SIGNATURE_INVALID', 'SIGNATURE_MISSING']).toContain(e.code);
      expect(s.log.filter((l) => l.url.endsWith(meta) && l.fault === 'corrupt').length).toBe(3);
      expect(objectCount(again)).toBe(0);
      expect(readRef(Repo.open(again), 'origin:main')).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('names the problem in one error: unknown remote, ref not offered, bad ref name', async () => {
    const repo = localRepo(dir, 'errors', 'archive', srv.url);
    expect((await codeOfAsync(run({ repo, remote: 'nope', rev: 'main' }))).code).toBe('REMOTE_NOT_FOUND');
    expect((await codeOfAsync(run({ repo, rev: 'no/such/ref' }))).code).toBe('REF_NOT_FOUND');
    expect((await codeOfAsync(run({ repo, rev: '../x' }))).code).toBe('INVALID_REF');
    expect((await codeOfAsync(run({ repo, rev: 'main', jobs: 0 }))).code).toBe('USAGE');
  });

  it('pulls from a file:// remote and from refs/heads when there is no summary', async () => {
    const bare = path.join(dir, 'nosummary');
    fs.cpSync(server, bare, { recursive: true });
    fs.rmSync(path.join(bare, 'summary'));
    const repo = localRepo(dir, 'fileurl', 'bare-user', pathToFileURL(bare).href);
    const r = await run({ repo, rev: 'main' });
    expect(r.commit).toBe(c2);
    expect((await fsck({ repo })).problems).toEqual([]);
  });
});
