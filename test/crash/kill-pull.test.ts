// SIGKILL `strata pull` in the middle of a slow download (many small objects
// plus a large one arriving over a throttled link), then run it again: the
// second run keeps every object the first one verified and continues the
// large object's partial download with a Range request, so it fetches fewer
// bytes than a whole pull; `strata fsck` and `ostree fsck` pass and the ref
// names the commit. Both local modes (bare-user is a device's sysroot repo).

import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '../../src/repo/repo.js';
import { commit } from '../../src/repo/commit.js';
import { listObjects } from '../../src/repo/reachable.js';
import { updateSummary } from '../../src/remote/summary.js';
import { addRemote } from '../../src/remote/remotes.js';
import { readRef } from '../../src/repo/refs.js';
import { pullStagingDir } from '../../src/remote/pull.js';
import { CLI, runAsync, strata, tmpDir } from '../helpers/fixtures.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';

process.env.STRATA_WORKERS ??= '1';
const hasOstree = spawnSync('ostree', ['--version']).status === 0;

interface PullJson {
  commit: string;
  objects: { fetched: number; resumed: number; stored: number };
  bytes: { fetched: number; resumedPartial: number };
}

describe('SIGKILL during pull', () => {
  let dir: string;
  let server: string;
  let head: string;
  let srv: TestServer;
  let bigName: string;
  let wholeBytes: number;

  beforeAll(async () => {
    dir = tmpDir('strata-kill-pull-');
    server = path.join(dir, 'server');
    Repo.init(server, 'archive');
    const tree = path.join(dir, 'tree');
    for (let d = 0; d < 20; d++) {
      fs.mkdirSync(path.join(tree, `d${d}`), { recursive: true });
      for (let f = 0; f < 30; f++) fs.writeFileSync(path.join(tree, `d${d}`, `f${f}`), `file ${d}/${f} `.repeat(50 + f * 20));
    }
    // 6 MiB that do not compress: the large object a cut leaves partial.
    let x = 12345;
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      big[i] = x >>> 24;
    }
    fs.writeFileSync(path.join(tree, 'big.bin'), big);
    head = (await commit({ repo: server, branch: 'os/stable', source: tree, timestamp: 1_700_000_000 })).commit;
    updateSummary({ repo: server });
    const objs = listObjects(Repo.open(server));
    const bigObj = objs.filter((o) => o.type === 'file').sort((a, b) => fs.statSync(b.file).size - fs.statSync(a.file).size)[0];
    bigName = `${bigObj.checksum}.filez`;
    wholeBytes = objs.filter((o) => o.type !== 'commit').reduce((n, o) => n + fs.statSync(o.file).size, 0);
    // Slow enough to be caught half-way: every request waits, every 64 KiB chunk too.
    srv = await serveRepo(server, { delayMs: 15, chunkDelayMs: 40 });
  });
  afterAll(async () => srv?.close());

  it.each(['bare-user', 'archive'] as const)('a killed pull into a %s repository resumes where it stopped', async (mode) => {
    const repo = path.join(dir, `local-${mode}`);
    Repo.init(repo, mode);
    addRemote({ repo, name: 'origin', url: srv.url });
    const staging = pullStagingDir(Repo.open(repo), 'origin');
    const child = spawn(process.execPath, [CLI, 'pull', 'origin', 'os/stable', '--repo', repo, '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Kill once some objects are verified and the large one is partly downloaded.
    const partial = path.join(staging, `${bigName}.partial`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Verified objects wait in objects/'s layout (XX/REST.EXT); downloads in progress beside them.
      const staged = fs.existsSync(staging) ? (fs.readdirSync(staging, { recursive: true }) as string[]).filter((n) => /^[0-9a-f]{2}\/[0-9a-f]{62}\.(file|filez|dirtree|dirmeta)$/.test(n)).length : 0;
      const partialSize = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
      if (staged >= 50 && partialSize > 512 * 1024) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`pull was not caught half-way (staged ${staged}, partial ${partialSize}, exit ${child.exitCode}): ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    expect(await exited).toBeNull();
    const keptPartial = fs.statSync(partial).size;
    // Killed: nothing in objects/, no ref.
    expect(listObjects(Repo.open(repo)).length).toBe(0);
    expect(readRef(Repo.open(repo), 'origin:os/stable')).toBeNull();

    const logStart = srv.log.length;
    // Asynchronously: the server runs in this process.
    const r = await runAsync(process.execPath, [CLI, 'pull', 'origin', 'os/stable', '--repo', repo, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const second = JSON.parse(r.stdout) as PullJson;
    expect(second.commit).toBe(head);
    expect(second.objects.resumed).toBeGreaterThanOrEqual(50);
    expect(second.bytes.resumedPartial).toBeGreaterThanOrEqual(keptPartial);
    expect(second.bytes.fetched).toBeLessThan(wholeBytes - keptPartial);
    const bigRequests = srv.log.slice(logStart).filter((l) => l.url.endsWith(`${bigName.slice(0, 2)}/${bigName.slice(2)}`));
    expect(bigRequests.map((l) => l.range)).toEqual([`bytes=${keptPartial}-`]);
    expect(readRef(Repo.open(repo), 'origin:os/stable')).toBe(head);
    expect(fs.existsSync(staging)).toBe(false);
    const f = strata(['fsck', '--repo', repo]);
    expect(f.status, f.stdout + f.stderr).toBe(0);
    if (hasOstree) {
      const o = spawnSync('ostree', ['fsck', `--repo=${repo}`], { encoding: 'utf8' });
      expect(o.status, o.stderr).toBe(0);
    }
  });
});
