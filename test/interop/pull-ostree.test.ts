// strata pulls what the real ostree made: an `ostree`-made archive
// repository (with a summary, and without one) served over HTTP on
// 127.0.0.1, into archive and bare-user repositories; `ostree fsck` passes on
// the result and the commit is the one ostree names. Then the real Debian
// rootfs pair: the second pull fetches exactly the objects that changed.

import type { Checksum } from '../../src/core/objects.js';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { readRef } from '../../src/repo/refs.js';
import { type ObjectKey, markTrees } from '../../src/repo/reachable.js';
import { updateSummary } from '../../src/remote/summary.js';
import { addRemote } from '../../src/remote/remotes.js';
import { pull } from '../../src/remote/pull.js';
import { makeTree, ostree, rootfsPair, tmpDir } from '../helpers/fixtures.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';

process.env.STRATA_WORKERS ??= '2';
const hasOstree = spawnSync('ostree', ['--version']).status === 0;

function ok(r: { status: number | null; stderr: string; stdout: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function local(dir: string, name: string, mode: 'archive' | 'bare-user', url: string): string {
  const repo = path.join(dir, name);
  Repo.init(repo, mode);
  addRemote({ repo, name: 'up', url });
  return repo;
}

describe.skipIf(!hasOstree)('strata pulls from an ostree-made repository', () => {
  let dir: string;
  let upstream: string;
  let head: string;
  let srv: TestServer;

  beforeAll(async () => {
    dir = tmpDir('strata-pull-ostree-');
    upstream = path.join(dir, 'upstream');
    ok(ostree(['init', `--repo=${upstream}`, '--mode=archive']), 'ostree init');
    const tree = makeTree(path.join(dir, 'tree'), 3);
    ok(ostree(['commit', `--repo=${upstream}`, '--branch=os/stable', '--subject=by ostree', tree]), 'ostree commit');
    ok(ostree(['summary', '-u', `--repo=${upstream}`]), 'ostree summary');
    head = ok(ostree(['rev-parse', `--repo=${upstream}`, 'os/stable']), 'rev-parse').trim();
    srv = await serveRepo(upstream);
  });
  afterAll(async () => srv?.close());

  it.each(['archive', 'bare-user'] as const)('into a %s repository; ostree fsck passes', async (mode) => {
    const repo = local(dir, mode, mode, srv.url);
    const r = await pull({ repo, remote: 'up', rev: 'os/stable' });
    expect(r.commit).toBe(head);
    expect(readRef(Repo.open(repo), 'up:os/stable')).toBe(head);
    ok(ostree(['fsck', `--repo=${repo}`]), 'ostree fsck');
    expect((await fsck({ repo })).problems).toEqual([]);
    // ostree reads what strata stored: the same file, byte for byte.
    const cat = ok(ostree(['cat', `--repo=${repo}`, head, '/etc/hostname']), 'ostree cat');
    expect(cat).toBe('host-3\n');
  });

  it('without a summary, through refs/heads', async () => {
    const copy = path.join(dir, 'nosummary');
    fs.cpSync(upstream, copy, { recursive: true });
    fs.rmSync(path.join(copy, 'summary'));
    const s = await serveRepo(copy);
    try {
      const repo = local(dir, 'nosummary-local', 'bare-user', s.url);
      const r = await pull({ repo, remote: 'up', rev: 'os/stable' });
      expect(r.commit).toBe(head);
      expect(s.log.some((l) => l.url === '/refs/heads/os/stable')).toBe(true);
      ok(ostree(['fsck', `--repo=${repo}`]), 'ostree fsck');
    } finally {
      await s.close();
    }
  });
});

const pair = rootfsPair();

describe.skipIf(!pair)('the Debian rootfs pair over HTTP', () => {
  let dir: string;
  let server: string;
  let a: Checksum;
  let b: Checksum;
  let srv: TestServer;

  beforeAll(async () => {
    dir = tmpDir('strata-pull-rootfs-');
    server = path.join(dir, 'server');
    Repo.init(server, 'archive');
    a = (await commit({ repo: server, branch: 'debian/stable', source: pair!.a, timestamp: 1_700_000_000, subject: 'a' })).commit;
    b = (await commit({ repo: server, branch: 'debian/stable', source: pair!.b, timestamp: 1_700_000_100, subject: 'b' })).commit;
    updateSummary({ repo: server });
    srv = await serveRepo(server);
  }, 600_000);
  afterAll(async () => srv?.close());

  it('pulls rootfs-a, then rootfs-b fetching only the changed objects', async () => {
    const repo = local(dir, 'device', 'bare-user', srv.url);
    const first = await pull({ repo, remote: 'up', rev: a });
    const second = await pull({ repo, remote: 'up', rev: 'debian/stable' });
    const sv = Repo.open(server);
    const inA = new Set<ObjectKey>();
    markTrees(sv, [a], inA);
    const inB = new Set<ObjectKey>();
    markTrees(sv, [b], inB);
    const changed = [...inB].filter((k) => !inA.has(k) && !k.endsWith('.commit') && !k.endsWith('.commitmeta'));
    const changedFiles = changed.filter((k) => k.endsWith('.file'));
    expect(second.objects.content).toBe(changedFiles.length);
    expect(second.objects.metadata).toBe(changed.length - changedFiles.length);
    expect(second.objects.fetched).toBeLessThan(first.objects.fetched);
    expect(second.commit).toBe(b);
    expect(readRef(Repo.open(repo), 'up:debian/stable')).toBe(b);
    console.info(JSON.stringify({
      rootfsA: { objects: first.objects.fetched, bytes: first.bytes.fetched, ms: first.elapsedMs },
      rootfsB: { objects: second.objects.fetched, content: second.objects.content, bytes: second.bytes.fetched, ms: second.elapsedMs },
    }));
    expect((await fsck({ repo })).problems).toEqual([]);
    if (hasOstree) ok(ostree(['fsck', `--repo=${repo}`]), 'ostree fsck');
  }, 300_000);
});
