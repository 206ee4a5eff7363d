import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deploy } from '../../src/sysroot/deploy.js';
import { changeKargs, cleanup, finalizeStaged, pin, rollback, setDefault, undeploy } from '../../src/sysroot/manage.js';
import { status } from '../../src/sysroot/status.js';
import { Sysroot } from '../../src/sysroot/sysroot.js';
import { Repo } from '../../src/repo/repo.js';
import { symlinkCachePath } from '../../src/repo/place-files.js';
import { readRef } from '../../src/repo/refs.js';
import { resolveTreePath } from '../../src/repo/walk.js';
import { commit } from '../../src/repo/commit.js';
import type { Checksum } from '../../src/core/objects.js';
import { KVER, REF, STATEROOT, bootSysroot, makeSysroot, snapshot } from '../helpers/sysroot.js';
import { ostree, strata } from '../helpers/fixtures.js';
import { codeOfAsync } from '../helpers/errors.js';


const v1 = { version: '1.0' };
const v2 = { version: '2.0', etc: { hostname: 'device-v2\n', 'app/app.conf': 'level=2\n', 'new.conf': 'new\n' }, kernel: 'kernel image 2\n' };

describe('admin deploy', () => {
  it('checks the commit out by hardlinks, gives it a copied /etc, an origin, its kernel and a BLS entry', async () => {
    const s = makeSysroot();
    const c1 = await s.commitVersion(v1);
    const r = await deploy({ sysroot: s.dir, rev: REF, kargs: { set: ['root=LABEL=root', 'quiet'] } });
    expect(r.deployment).toMatchObject({ stateroot: STATEROOT, checksum: c1, serial: 0, index: 0, version: '1.0' });
    const sysroot = Sysroot.open(s.dir);
    const dir = sysroot.deploymentDir(r.deployment);
    const repo = Repo.open(sysroot.repoPath);
    // usr is hardlinked to the repo's objects; etc is a real copy.
    const obj = (rel: string) => fs.statSync(repo.objectFile(fileChecksum(repo, c1, rel), 'file')).ino;
    expect(fs.statSync(path.join(dir, 'usr/bin/hello')).ino).toBe(obj('usr/bin/hello'));
    expect(fs.statSync(path.join(dir, 'etc/hostname')).ino).not.toBe(obj('usr/etc/hostname'));
    // Symlinks are hardlinks of one real symlink kept in the repo's cache (a bare-user object is a plain file).
    const link = fs.lstatSync(path.join(dir, 'usr/bin/hi'));
    expect(link.isSymbolicLink() && fs.readlinkSync(path.join(dir, 'usr/bin/hi'))).toBe('hello');
    expect(link.ino).toBe(fs.lstatSync(symlinkCachePath(repo, fileChecksum(repo, c1, 'usr/bin/hi'))).ino);
    expect(fs.readFileSync(path.join(dir, 'etc/hostname'), 'utf8')).toBe('device\n');
    expect(fs.readFileSync(sysroot.originFile(r.deployment), 'utf8')).toBe(`[origin]\nrefspec=${REF}\n`);

    const [d] = sysroot.deployments();
    expect(d.kargs).toEqual(['root=LABEL=root', 'quiet']);
    const entryText = fs.readFileSync(path.join(s.dir, 'boot/loader/entries', d.entryFile), 'utf8');
    expect(entryText).toContain('title Strata Test OS 1.0 (strata:testos:0)\n');
    expect(entryText).toContain(`options root=LABEL=root quiet ostree=/ostree/boot.1/${STATEROOT}/${d.bootcsum}/0\n`);
    expect(fs.readFileSync(path.join(s.dir, 'boot', d.linux), 'utf8')).toBe('kernel image 1\n');
    expect(d.linux).toBe(`/ostree/${STATEROOT}-${d.bootcsum}/vmlinuz-${KVER}`);
    expect(fs.readFileSync(path.join(s.dir, 'boot', d.initrd as string), 'utf8')).toBe('initramfs\n');
    // The ostree= path leads to the deployment, as an initramfs follows it.
    expect(fs.realpathSync(path.join(s.dir, `ostree/boot.1/${STATEROOT}/${d.bootcsum}/0`))).toBe(fs.realpathSync(dir));
  });

  it('merges /etc three ways, keeps /var out of deployments, and puts the new deployment first', async () => {
    const s = makeSysroot();
    await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const booted = bootSysroot(s.dir);
    fs.writeFileSync(path.join(booted, 'etc/hostname'), 'my-host\n'); // conflicts with v2's change
    fs.writeFileSync(path.join(booted, 'etc/motd'), 'local motd\n'); // v2 changes motd too: conflict
    fs.rmSync(path.join(booted, 'etc/app/app.conf')); // deleted locally, changed upstream: conflict, stays deleted
    fs.writeFileSync(path.join(booted, 'etc/local.conf'), 'mine\n'); // added locally
    const varFile = path.join(s.dir, 'ostree/deploy', STATEROOT, 'var/lib/data');
    fs.writeFileSync(varFile, 'state\n');

    const c2 = await s.commitVersion({ ...v2, etc: { ...v2.etc, motd: 'v2 motd\n' } });
    const r = await deploy({ sysroot: s.dir, rev: REF, booted });
    const dir = Sysroot.open(s.dir).deploymentDir(r.deployment);
    const read = (p: string) => fs.readFileSync(path.join(dir, 'etc', p), 'utf8');
    expect(read('hostname')).toBe('my-host\n');
    expect(read('motd')).toBe('local motd\n');
    expect(fs.existsSync(path.join(dir, 'etc/app/app.conf'))).toBe(false);
    expect(read('local.conf')).toBe('mine\n');
    expect(read('new.conf')).toBe('new\n'); // untouched by the admin: follows the new default
    expect(r.etc?.conflicts.map((c) => c.path).sort()).toEqual(['/etc/app/app.conf', '/etc/hostname', '/etc/motd']);
    expect(fs.readdirSync(path.join(dir, 'var'))).toEqual([]);
    expect(fs.readFileSync(varFile, 'utf8')).toBe('state\n');

    const st = status({ sysroot: s.dir, booted });
    expect(st.deployments.map((d) => [d.index, d.checksum, d.booted, d.pending, d.rollback])).toEqual([
      [0, c2, false, true, false],
      [1, st.deployments[1].checksum, true, false, true],
    ]);
    expect(st.deployments[0].etcConflicts.map((c) => c.path)).toContain('/etc/hostname');
    // The real ostree reads our sysroot the same way.
    const os = ostree(['admin', 'status', '--sysroot', s.dir]);
    expect(os.status, os.stderr).toBe(0);
    const order = [...os.stdout.matchAll(/^\s*\*?\s*testos ([0-9a-f]{64})\.(\d+)/gm)].map((m) => m[1]);
    expect(order).toEqual(st.deployments.map((d) => d.checksum));
  });

  it('rolls back to the previous deployment or to any kept one, and sets the default', async () => {
    const s = makeSysroot();
    const c1 = await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const booted = bootSysroot(s.dir);
    const c2 = await s.commitVersion(v2);
    await deploy({ sysroot: s.dir, rev: REF, booted });
    const c3 = await s.commitVersion({ version: '3.0' });
    await deploy({ sysroot: s.dir, rev: REF, booted, retain: 5 });
    const order = () => Sysroot.open(s.dir).deployments().map((d) => d.checksum);
    expect(order()).toEqual([c3, c2, c1]);
    // Pending update: rollback goes back to the booted deployment.
    expect(rollback({ sysroot: s.dir, booted }).default.checksum).toBe(c1);
    expect(order()).toEqual([c1, c3, c2]);
    expect(bootSysroot(s.dir)).toBe(booted);
    rollback({ sysroot: s.dir, booted, to: '2' });
    expect(order()).toEqual([c2, c1, c3]);
    setDefault({ sysroot: s.dir, which: c3.slice(0, 10) });
    expect(order()).toEqual([c3, c2, c1]);
    expect(await codeOfAsync(Promise.resolve().then(() => rollback({ sysroot: s.dir, to: '0' })))).toBe('NO_ROLLBACK');
    expect(await codeOfAsync(Promise.resolve().then(() => rollback({ sysroot: s.dir, to: '7' })))).toBe('DEPLOYMENT_NOT_FOUND');
  });

  it('keeps booted, default, rollback and pinned deployments; --retain keeps more; cleanup prunes what nothing needs', async () => {
    const s = makeSysroot();
    const sums: string[] = [];
    for (let i = 1; i <= 4; i++) {
      sums.push(await s.commitVersion({ version: `${i}.0`, files: { [`usr/share/v${i}`]: `only in ${i}\n` }, links: { 'usr/share/current': `v${i}` } }));
      await deploy({ sysroot: s.dir, rev: REF });
    }
    // Not booted (a fresh image): new default + rollback only.
    const sysroot = Sysroot.open(s.dir);
    expect(sysroot.deployments().map((d) => d.checksum)).toEqual([sums[3], sums[2]]);
    const dirs = () => fs.readdirSync(path.join(s.dir, 'ostree/deploy', STATEROOT, 'deploy')).filter((n) => !n.includes('.origin') && !n.includes('.state'));
    expect(dirs()).toHaveLength(2);
    const c5 = await s.commitVersion({ version: '5.0' });
    await deploy({ sysroot: s.dir, rev: REF, retain: 1 });
    expect(sysroot.deployments().map((d) => d.checksum)).toEqual([c5, sums[3], sums[2]]);
    pin({ sysroot: s.dir, which: '2' });
    const c6 = await s.commitVersion({ version: '6.0' });
    await deploy({ sysroot: s.dir, rev: REF });
    expect(sysroot.deployments().map((d) => d.checksum)).toEqual([c6, c5, sums[2]]);
    expect(status({ sysroot: s.dir }).deployments[2].pinned).toBe(true);
    // Only the ref's commit and the deployments' commits stay after cleanup's prune.
    const repo = Repo.open(sysroot.repoPath);
    const cacheDir = path.join(sysroot.repoPath, 'extensions/strata/symlinks');
    const cached = () => fs.readdirSync(cacheDir).flatMap((sub) => fs.readdirSync(path.join(cacheDir, sub)).map((n) => sub + n));
    const cachedBefore = cached();
    fs.writeFileSync(path.join(sysroot.repoPath, 'refs/heads', REF), c6 + '\n');
    const r = cleanup({ sysroot: s.dir });
    expect(r.prunedObjects).toBeGreaterThan(0);
    expect(repo.hasObject(sums[0] as never, 'commit')).toBe(false);
    // The symlink cache follows the objects: entries of pruned symlink objects go with them.
    expect(cached().length).toBeLessThan(cachedBefore.length);
    for (const c of cached()) expect(repo.hasObject(c as never, 'file')).toBe(true);
    expect(repo.hasObject(sums[2] as never, 'commit')).toBe(true);
    expect(readRef(repo, REF)).toBe(c6);
    pin({ sysroot: s.dir, which: '2', unpin: true });
    cleanup({ sysroot: s.dir });
    expect(sysroot.deployments().map((d) => d.checksum)).toEqual([c6, c5]);
    expect(dirs()).toHaveLength(2);
  });

  it('--not-as-default adds the deployment second; --dry-run changes nothing', async () => {
    const s = makeSysroot({ tries: 3 });
    const c1 = await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const c2 = await s.commitVersion(v2);
    const before = snapshot(s.dir);
    const plan = await deploy({ sysroot: s.dir, rev: REF, dryRun: true });
    expect(plan).toMatchObject({ dryRun: true, deployment: { checksum: c2, index: 0 } });
    expect(snapshot(s.dir)).toEqual(before);
    await deploy({ sysroot: s.dir, rev: REF, notAsDefault: true });
    const list = Sysroot.open(s.dir).deployments();
    expect(list.map((d) => [d.checksum, d.triesLeft])).toEqual([[c1, 3], [c2, undefined]]);
  });

  it('refuses to undeploy the booted, a pinned or the only deployment', async () => {
    const s = makeSysroot();
    await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const booted = bootSysroot(s.dir);
    const code = (f: () => unknown) => codeOfAsync(Promise.resolve().then(f));
    expect(await code(() => undeploy({ sysroot: s.dir, which: '0' }))).toBe('DEPLOYMENT_IN_USE');
    await s.commitVersion(v2);
    await deploy({ sysroot: s.dir, rev: REF, booted });
    expect(await code(() => undeploy({ sysroot: s.dir, which: '1', booted }))).toBe('DEPLOYMENT_IN_USE');
    pin({ sysroot: s.dir, which: '0' });
    expect(await code(() => undeploy({ sysroot: s.dir, which: '0', booted }))).toBe('DEPLOYMENT_IN_USE');
    pin({ sysroot: s.dir, which: '0', unpin: true });
    undeploy({ sysroot: s.dir, which: '0', booted });
    expect(Sysroot.open(s.dir).deployments()).toHaveLength(1);
  });

  it('edits kernel arguments as a new deployment of the same commit', async () => {
    const s = makeSysroot();
    const c1 = await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF, kargs: { set: ['root=LABEL=root', 'console=tty0'] } });
    const booted = bootSysroot(s.dir);
    const r = await changeKargs({ sysroot: s.dir, booted, edits: { append: ['console=ttyS0,115200'], replace: ['root=LABEL=root=LABEL=sysroot'] } });
    expect(r.kargs).toEqual(['root=LABEL=sysroot', 'console=tty0', 'console=ttyS0,115200']);
    const list = Sysroot.open(s.dir).deployments();
    expect(list.map((d) => [d.checksum, d.serial])).toEqual([[c1, 1], [c1, 0]]);
    expect(list[0].kargs).toEqual(r.kargs);
    expect(await codeOfAsync(changeKargs({ sysroot: s.dir, booted, edits: { delete: ['nosuch'] } }))).toBe('INVALID_KARG');
    const before = snapshot(s.dir);
    for (const bad of ['a"b', 'x\ny', '', 'ostree=/x', 'a b']) {
      expect(await codeOfAsync(deploy({ sysroot: s.dir, rev: REF, booted, kargs: { append: [bad] } }))).toBe('INVALID_KARG');
    }
    expect(snapshot(s.dir)).toEqual(before);
  });

  it('stages a deployment and finalizes it with the /etc of that moment', async () => {
    const s = makeSysroot();
    await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const booted = bootSysroot(s.dir);
    const c2 = await s.commitVersion(v2);
    const r = await deploy({ sysroot: s.dir, rev: REF, booted, stage: true });
    expect(r.staged).toBe(true);
    let st = status({ sysroot: s.dir, booted });
    expect(st.deployments.map((d) => [d.index, d.staged, d.booted])).toEqual([[null, true, false], [0, false, true]]);
    expect(bootSysroot(s.dir)).toBe(booted); // not switched yet; that boot also emptied /run, dropping the staging
    expect(status({ sysroot: s.dir, booted }).deployments).toHaveLength(1);
    expect((await finalizeStaged({ sysroot: s.dir, booted })).finalized).toBeNull();

    await deploy({ sysroot: s.dir, rev: REF, booted, stage: true });
    fs.writeFileSync(path.join(booted, 'etc/late.conf'), 'written after staging\n');
    const f = await finalizeStaged({ sysroot: s.dir, booted });
    expect(f.finalized).toContain(c2);
    st = status({ sysroot: s.dir, booted });
    expect(st.deployments.map((d) => [d.checksum, d.staged])).toEqual([[c2, false], [st.deployments[1].checksum, false]]);
    const next = bootSysroot(s.dir);
    expect(fs.readFileSync(path.join(next, 'etc/late.conf'), 'utf8')).toBe('written after staging\n');
    expect(fs.readFileSync(path.join(next, 'etc/new.conf'), 'utf8')).toBe('new\n');

    // A plain deploy after staging wins: the staged deployment is dropped.
    const c3 = await s.commitVersion({ version: '3.0' });
    const staged = await deploy({ sysroot: s.dir, rev: REF, booted: next, stage: true });
    const c4 = await s.commitVersion({ version: '4.0' });
    await deploy({ sysroot: s.dir, rev: REF, booted: next });
    st = status({ sysroot: s.dir, booted: next });
    expect(st.deployments.map((d) => [d.checksum, d.staged])).toEqual([[c4, false], [c2, false]]);
    expect(fs.existsSync(Sysroot.open(s.dir).deploymentDir(staged.deployment))).toBe(false);
    expect(staged.deployment.checksum).toBe(c3);
  });

  it('leaves the sysroot unchanged on a missing ref, a commit missing objects, a tree without a kernel or with two /etc', async () => {
    const s = makeSysroot();
    await s.commitVersion(v1);
    await deploy({ sysroot: s.dir, rev: REF });
    const sysroot = Sysroot.open(s.dir);
    const repo = Repo.open(sysroot.repoPath);
    let before = snapshot(s.dir);
    expect(await codeOfAsync(deploy({ sysroot: s.dir, rev: 'no/such/ref' }))).toBe('REF_NOT_FOUND');
    expect(snapshot(s.dir)).toEqual(before);

    const c2 = await s.commitVersion({ version: '2.0', files: { 'usr/share/big': 'x'.repeat(5000) } });
    fs.rmSync(repo.objectFile(fileChecksum(repo, c2, 'usr/share/big'), 'file'));
    before = snapshot(s.dir);
    expect(await codeOfAsync(deploy({ sysroot: s.dir, rev: c2 }))).toBe('OBJECT_MISSING');
    expect(snapshot(s.dir)).toEqual(before);

    const noKernel = await commitTree(s.dir, { 'usr/bin/x': 'x' });
    before = snapshot(s.dir);
    expect(await codeOfAsync(deploy({ sysroot: s.dir, rev: noKernel }))).toBe('NO_KERNEL');
    expect(snapshot(s.dir)).toEqual(before);

    const twoEtc = await commitTree(s.dir, { [`usr/lib/modules/${KVER}/vmlinuz`]: 'k', 'usr/etc/a': 'a', 'etc/a': 'a' });
    before = snapshot(s.dir);
    expect(await codeOfAsync(deploy({ sysroot: s.dir, rev: twoEtc }))).toBe('TREE_LAYOUT');
    expect(snapshot(s.dir)).toEqual(before);

    // Through the CLI: one line, the registry's exit code.
    const r = strata(['admin', 'deploy', 'no/such/ref', '--sysroot', s.dir]);
    expect(r.status).toBe(66);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(strata(['admin', 'status', '--sysroot', path.join(s.dir, 'nope')]).status).toBe(66);
  });

  it('deploys a tree that keeps its config in /etc, copying it rather than linking', async () => {
    const s = makeSysroot();
    const c = await commitTree(s.dir, { [`usr/lib/modules/${KVER}/vmlinuz`]: 'k', 'etc/hostname': 'plain\n', 'usr/bin/a': 'a' });
    const r = await deploy({ sysroot: s.dir, rev: c });
    const dir = Sysroot.open(s.dir).deploymentDir(r.deployment);
    const repo = Repo.open(path.join(s.dir, 'ostree/repo'));
    expect(fs.readFileSync(path.join(dir, 'etc/hostname'), 'utf8')).toBe('plain\n');
    expect(fs.statSync(path.join(dir, 'etc/hostname')).ino).not.toBe(fs.statSync(repo.objectFile(fileChecksum(repo, c, 'etc/hostname'), 'file')).ino);
    expect(fs.readFileSync(Sysroot.open(s.dir).originFile(r.deployment), 'utf8')).toBe(`[origin]\nrefspec=${c}\n`);
  });
});


function fileChecksum(repo: Repo, c: string, rel: string): Checksum {
  const n = resolveTreePath(repo, c as Checksum, rel);
  if (n.kind !== 'file') throw new Error(`${rel} is not a file`);
  return n.checksum;
}

let treeN = 0;
async function commitTree(sysroot: string, files: Record<string, string>): Promise<string> {
  const src = path.join(path.dirname(sysroot), `plain-${treeN++}`);
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, p)), { recursive: true });
    fs.writeFileSync(path.join(src, p), c);
  }
  return (await commit({ repo: path.join(sysroot, 'ostree/repo'), branch: 'plain/tree', source: src, timestamp: 1700000000 })).commit;
}
