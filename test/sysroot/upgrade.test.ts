// admin upgrade / switch end to end: an update server (an archive repo behind
// `strata serve`'s handler on 127.0.0.1), a device sysroot following
// origin:testos/stable, and the CLI as an admin or a timer would run it.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runAsync, tmpDir } from '../helpers/fixtures.js';
import { type OsVersion, REF, bootSysroot, makeSysroot, writeOsTree } from '../helpers/sysroot.js';
import { type TestServer, serveRepo } from '../helpers/pull-server.js';
import { commit } from '../../src/repo/commit.js';
import { Repo } from '../../src/repo/repo.js';
import { addRemote } from '../../src/remote/remotes.js';
import { status } from '../../src/sysroot/status.js';

const strataAsync = (args: string[]) => runAsync(process.execPath, [CLI, ...args]);

describe('admin upgrade and admin switch', () => {
  const work = tmpDir('strata-upgrade-');
  const server = path.join(work, 'server');
  let srv: TestServer;
  let n = 0;
  const publish = async (v: OsVersion, ref = REF) => {
    const src = path.join(work, `src-${n++}`);
    writeOsTree(src, v);
    return (await commit({ repo: server, branch: ref, source: src, metadata: [['version', v.version]], timestamp: 1_700_000_000 + n * 1000 })).commit;
  };

  beforeAll(async () => {
    Repo.init(server, 'archive');
    srv = await serveRepo(server);
  });
  afterAll(async () => srv?.close());

  it('checks, downloads, stages, finalizes, refuses a downgrade, and switches branches', async () => {
    const c1 = await publish({ version: '1.0' });
    const s = makeSysroot();
    addRemote({ repo: path.join(s.dir, 'ostree/repo'), name: 'origin', url: srv.url });
    // The first deployment: switch to the branch (pull + deploy now).
    let r = await strataAsync(['admin', 'switch', 'origin:testos/stable', '--no-stage', '--sysroot', s.dir]);
    expect(r.status, r.stderr).toBe(0);
    const booted = bootSysroot(s.dir);
    const dev = ['--sysroot', s.dir, '--booted', booted];
    expect(status({ sysroot: s.dir, booted }).deployments[0]).toMatchObject({ checksum: c1, origin: 'origin:testos/stable', booted: true });

    r = await strataAsync(['admin', 'upgrade', '--check', ...dev]);
    expect(r.status).toBe(77);
    expect(r.stdout).toContain('No update');

    const c2 = await publish({ version: '2.0', files: { 'usr/bin/new-tool': '#!/bin/sh\n' }, etc: { motd: 'v2\n' } });
    r = await strataAsync(['admin', 'upgrade', '--check', ...dev]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('Update available');
    expect(Repo.open(path.join(s.dir, 'ostree/repo')).hasObject(c2 as never, 'commit')).toBe(false); // --check fetched no commit

    r = await strataAsync(['admin', 'upgrade', '--download-only', '--json', ...dev]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ available: true, downloaded: true, deployed: null, to: { checksum: c2, version: '2.0' } });
    expect(status({ sysroot: s.dir, booted }).deployments).toHaveLength(1);

    r = await strataAsync(['admin', 'upgrade', '--json', ...dev]);
    expect(r.status, r.stderr).toBe(0);
    const up = JSON.parse(r.stdout);
    expect(up).toMatchObject({ from: { checksum: c1, version: '1.0' }, to: { checksum: c2, version: '2.0' }, deployed: { checksum: c2, staged: true } });
    expect(up.changes.added).toBeGreaterThanOrEqual(1); // /usr/bin/new-tool
    expect(up.changes.modified).toBeGreaterThanOrEqual(2); // os-release, motd, hello
    expect(status({ sysroot: s.dir, booted }).deployments.map((d) => [d.checksum, d.staged])).toEqual([[c2, true], [c1, false]]);
    expect((await strataAsync(['admin', 'finalize-staged', ...dev])).status).toBe(0);
    const v2 = bootSysroot(s.dir);
    expect(fs.existsSync(path.join(v2, 'usr/bin/new-tool'))).toBe(true);

    // The server moves the branch back to 1.0: a downgrade, refused unless asked for.
    fs.writeFileSync(path.join(server, 'refs/heads', REF), c1 + '\n');
    const dev2 = ['--sysroot', s.dir, '--booted', v2];
    r = await strataAsync(['admin', 'upgrade', ...dev2]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/older/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(status({ sysroot: s.dir, booted: v2 }).deployments.map((d) => d.checksum)).toEqual([c2, c1]);

    // Another branch.
    const beta = await publish({ version: '3.0-beta' }, 'testos/beta');
    r = await strataAsync(['admin', 'switch', 'origin:testos/beta', '--no-stage', ...dev2]);
    expect(r.status, r.stderr).toBe(0);
    const st = status({ sysroot: s.dir, booted: v2 });
    expect(st.deployments[0]).toMatchObject({ checksum: beta, origin: 'origin:testos/beta', pending: true });

    // The branch still names the older 1.0: not an update.
    r = await strataAsync(['admin', 'upgrade', '--sysroot', s.dir, '--booted', v2, '--check']);
    expect(r.status).toBe(77);
    expect((await strataAsync(['admin', 'switch', 'nosuch:ref', ...dev2])).status).toBe(66);
  });
});
