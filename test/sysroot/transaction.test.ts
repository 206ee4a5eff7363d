// admin transaction on a directory sysroot whose OS tree holds a real shell
// (the host's sh and the libraries ldd names): a command that succeeds is
// committed and deployed; one that fails leaves nothing behind.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { strata } from '../helpers/fixtures.js';
import { REF, bootSysroot, makeSysroot, snapshot, writeOsTree } from '../helpers/sysroot.js';
import { commit } from '../../src/repo/commit.js';
import { deploy } from '../../src/sysroot/deploy.js';
import { status } from '../../src/sysroot/status.js';
import { upgrade } from '../../src/sysroot/upgrade.js';
import { runTransaction } from '../../src/sysroot/transaction.js';

/** The host's /bin/sh and its shared libraries, at the same paths, in a merged-/usr tree. */
function addShell(dir: string): void {
  const sh = fs.realpathSync('/bin/sh');
  const libs = execFileSync('ldd', [sh], { encoding: 'utf8' }).split('\n').map((l) => /(\/\S+) \(0x/.exec(l)?.[1]).filter((x): x is string => !!x);
  const put = (from: string, to: string, mode: number) => {
    const dest = path.join(dir, 'usr', to.replace(/^\/(usr\/)?/, ''));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), dest);
    fs.chmodSync(dest, mode);
  };
  put(sh, '/usr/bin/sh', 0o755);
  fs.mkdirSync(path.join(dir, 'usr/share'), { recursive: true });
  for (const l of libs) put(l, l, 0o755);
  for (const top of ['bin', 'lib', 'lib64']) if (fs.existsSync(path.join(dir, 'usr', top))) fs.symlinkSync(`usr/${top}`, path.join(dir, top));
}

async function shellSysroot() {
  const s = makeSysroot();
  const src = path.join(path.dirname(s.dir), 'tree-shell');
  writeOsTree(src, { version: '1.0' });
  addShell(src);
  await commit({ repo: path.join(s.dir, 'ostree/repo'), branch: REF, source: src, metadata: [['version', '1.0']], timestamp: 1_700_000_000 });
  await deploy({ sysroot: s.dir, rev: REF });
  return { s, booted: bootSysroot(s.dir) };
}

describe('admin transaction', () => {
  it('commits what the command wrote and deploys it as the default', async () => {
    const { s, booted } = await shellSysroot();
    const r = await runTransaction({
      sysroot: s.dir, booted, stdio: 'pipe',
      command: ['sh', '-c', 'echo x > /usr/share/foo && echo y > /etc/new.conf && test -d /proc/self && echo s > /var/app.state && echo done'],
    });
    expect(r.stdout).toBe('done\n');
    const d = status({ sysroot: s.dir, booted }).deployments[0];
    expect(d).toMatchObject({ checksum: r.commit, pending: true, layered: { transaction: '["sh","-c","echo x > /usr/share/foo && echo y > /etc/new.conf && test -d /proc/self && echo s > /var/app.state && echo done"]' } });
    expect(fs.readFileSync(path.join(d.path, 'usr/share/foo'), 'utf8')).toBe('x\n');
    // /etc changes are the new default config, merged into /etc by the deploy.
    expect(fs.readFileSync(path.join(d.path, 'usr/etc/new.conf'), 'utf8')).toBe('y\n');
    expect(fs.readFileSync(path.join(d.path, 'etc/new.conf'), 'utf8')).toBe('y\n');
    // No mount point the transaction made is left in the tree; /var went to tmpfiles.d, with a warning.
    for (const p of ['proc', 'dev', 'run', 'tmp']) expect(fs.existsSync(path.join(d.path, p))).toBe(false);
    expect(r.varChanges).toEqual(['/var/app.state']);
    expect(r.warnings.join()).toMatch(/under \/var/);
    expect(fs.readFileSync(path.join(d.path, 'usr/lib/tmpfiles.d/strata-var.conf'), 'utf8')).toMatch(/^C \/var\/app.state - - - - \/usr\/share\/factory\/var\/app.state$/m);
    expect(fs.readdirSync(path.join(s.dir, 'ostree/repo/tmp')).filter((n) => n.startsWith('strata-derive-'))).toEqual([]);

    // An upgrade rebuilds from the new base and says the transaction is not carried over.
    const b2 = bootSysroot(s.dir);
    await s.commitVersion({ version: '2.0' });
    const up = await upgrade({ sysroot: s.dir, booted: b2, stage: false });
    expect(up.warnings.join()).toMatch(/transaction/);
    expect(fs.existsSync(path.join(status({ sysroot: s.dir, booted: b2 }).deployments[0].path, 'usr/share/foo'))).toBe(false);
  });

  it('a failing command leaves no deployment, commit or directory behind', async () => {
    const { s, booted } = await shellSysroot();
    const before = snapshot(s.dir);
    await expect(runTransaction({ sysroot: s.dir, booted, stdio: 'pipe', command: ['sh', '-c', 'echo x > /usr/share/foo; exit 3'] }))
      .rejects.toMatchObject({ code: 'TRANSACTION_FAILED', data: { exitCode: 3 } });
    expect(snapshot(s.dir)).toEqual(before);
    expect(fs.readdirSync(path.join(s.dir, 'ostree/repo/tmp')).filter((n) => n.startsWith('strata-derive-'))).toEqual([]);

    // The CLI: one line, non-zero; a command that does not exist fails the same way.
    const r = strata(['admin', 'transaction', '--sysroot', s.dir, '--booted', booted, '--', 'sh', '-c', 'exit 5']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/exited with status 5; nothing was deployed/);
    const r2 = strata(['admin', 'transaction', '--sysroot', s.dir, '--booted', booted, '--', '/no/such/program']);
    expect(r2.status).toBe(1);
    expect(snapshot(s.dir)).toEqual(before);

    const ok = strata(['admin', 'transaction', '--sysroot', s.dir, '--booted', booted, '--', 'sh', '-c', 'echo hi > /usr/share/hi']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Transaction exited 0; deployed/);
    expect(strata(['admin', 'status', '--sysroot', s.dir, '--booted', booted]).stdout).toMatch(/Transaction:\s+\["sh","-c","echo hi > \/usr\/share\/hi"\]/);
  });
});
