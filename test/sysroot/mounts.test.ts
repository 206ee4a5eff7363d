// Tests that need root and real mounts: a read-only root from prepare-root
// (a real Debian tree, chrooted in a private mount namespace), and a deploy
// onto a full filesystem (a small tmpfs) that must leave the sysroot as it was.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, rootfsPair, strata, tmpDir } from '../helpers/fixtures.js';
import { KVER, STATEROOT, makeSysroot, snapshot, writeOsTree } from '../helpers/sysroot.js';
import { commit } from '../../src/repo/commit.js';
import { initFs, osInit } from '../../src/sysroot/init.js';

const mounted: string[] = [];
afterAll(() => {
  for (const m of mounted) execFileSync('umount', ['-l', m]);
});

describe.skipIf(!isRoot)('mounts (root)', () => {
  it('prepare-root: /usr is read-only (EROFS), /etc and the stateroot /var take writes', async () => {
    const pair = rootfsPair();
    if (!pair) throw new Error('the rootfs test data could not be built');
    const s = makeSysroot();
    // rootfs-a plus a kernel, linked (not copied) to stay cheap.
    const tree = path.join(tmpDir(), 'tree');
    execFileSync('cp', ['-al', pair.a, tree]);
    fs.mkdirSync(path.join(tree, 'usr/lib/modules', KVER), { recursive: true });
    fs.writeFileSync(path.join(tree, 'usr/lib/modules', KVER, 'vmlinuz'), 'kernel');
    const c = await commit({ repo: path.join(s.dir, 'ostree/repo'), branch: 'debian/test', source: tree, timestamp: 1700000000 });
    expect(strata(['admin', 'deploy', c.commit, '--sysroot', s.dir]).status).toBe(0);

    const run = (script: string) => strata(['admin', 'prepare-root', '--sysroot', s.dir, '--deployment', '0', '--', '/bin/sh', '-c', script]);
    const usr = run('echo x > /usr/bin/intruder');
    expect(usr.status).not.toBe(0);
    expect(usr.stderr).toMatch(/Read-only file system/);
    const etc = run('echo configured > /etc/strata-test && echo state > /var/strata-test && cat /etc/debian_version');
    expect(etc.status, etc.stderr).toBe(0);
    expect(etc.stdout).toMatch(/^\d+/);
    const dep = path.join(s.dir, 'ostree/deploy', STATEROOT, 'deploy', `${c.commit}.0`);
    expect(fs.readFileSync(path.join(dep, 'etc/strata-test'), 'utf8')).toBe('configured\n');
    expect(fs.readFileSync(path.join(s.dir, 'ostree/deploy', STATEROOT, 'var/strata-test'), 'utf8')).toBe('state\n');
    expect(fs.existsSync(path.join(dep, 'usr/bin/intruder'))).toBe(false);
    // The command's exit status is prepare-root's.
    expect(run('exit 7').status).toBe(7);
  });

  it('a deploy that runs out of space fails with one line and leaves the sysroot unchanged', async () => {
    const mnt = tmpDir('strata-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
    mounted.push(mnt);
    const dir = path.join(mnt, 'sysroot');
    initFs({ dir });
    osInit({ sysroot: dir, stateroot: STATEROOT });
    const src = path.join(tmpDir(), 'tree');
    // /boot shares the filesystem, so the kernel is linked; the /etc copy needs room.
    writeOsTree(src, { version: '1.0', etc: { 'big.conf': 'c'.repeat(1024 * 1024) } });
    await commit({ repo: path.join(dir, 'ostree/repo'), branch: 'os', source: src, timestamp: 1700000000 });
    // Fill the filesystem (outside the sysroot) so the /etc copy no longer fits.
    const st = fs.statfsSync(mnt);
    fs.writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(Math.max(0, st.bavail * st.bsize - 256 * 1024)));
    const before = snapshot(dir);
    const r = strata(['admin', 'deploy', 'os', '--sysroot', dir]);
    expect(r.status).toBe(74);
    expect(r.stderr).toMatch(/ENOSPC/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(snapshot(dir)).toEqual(before);
    expect(strata(['admin', 'status', '--sysroot', dir]).status).toBe(0);
  });
});
