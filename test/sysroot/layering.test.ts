// Client-side layering end to end on a directory sysroot: admin install of a
// real .deb (built here with dpkg-deb), its files and dpkg status entry in the
// new deployment, admin upgrade re-applying it on a new base, uninstall,
// override remove/reset, and bad input leaving the sysroot as it was.

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { strata, tmpDir } from '../helpers/fixtures.js';
import { REF, STATEROOT, bootSysroot, makeSysroot, snapshot } from '../helpers/sysroot.js';
import { installPackages, overrideRemove, overrideReset, uninstallPackages } from '../../src/sysroot/layer.js';
import { finalizeStaged } from '../../src/sysroot/manage.js';
import { status } from '../../src/sysroot/status.js';
import { upgrade } from '../../src/sysroot/upgrade.js';
import { deploy } from '../../src/sysroot/deploy.js';
import { Repo } from '../../src/repo/repo.js';
import { metadataLookup } from '../../src/core/objects.js';

const work = tmpDir('strata-layering-');
let nDeb = 0;

/** A real .deb: `files` (paths under /) with content, built by dpkg-deb. */
function makeDeb(name: string, version: string, files: Record<string, string>, conffiles: string[] = []): string {
  const dir = path.join(work, `deb-${nDeb++}`);
  fs.mkdirSync(path.join(dir, 'DEBIAN'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'DEBIAN/control'), `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Test <t@example.org>\nDescription: layering test package\n`);
  if (conffiles.length) fs.writeFileSync(path.join(dir, 'DEBIAN/conffiles'), conffiles.join('\n') + '\n');
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), c);
    if (/\/s?bin\//.test(p)) fs.chmodSync(path.join(dir, p), 0o755);
  }
  const out = path.join(work, `${name}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', dir, out], { stdio: 'pipe' });
  return out;
}

const factoryStatus = (dep: string) => fs.readFileSync(path.join(dep, 'usr/share/factory/var/lib/dpkg/status'), 'utf8');

async function deployedSysroot() {
  const s = makeSysroot();
  await s.commitVersion({ version: '1.0' });
  await deploy({ sysroot: s.dir, rev: REF });
  return { s, booted: bootSysroot(s.dir) };
}

describe('admin install / uninstall / upgrade', () => {
  it('layers a package, keeps it through an upgrade, and removes it again', async () => {
    const { s, booted } = await deployedSysroot();
    const base1 = status({ sysroot: s.dir, booted }).deployments[0].checksum;
    const deb = makeDeb('hello-layer', '1.0', { 'usr/bin/hello-layer': '#!/bin/sh\necho layered\n', 'etc/hello-layer.conf': 'x=1\n' }, ['/etc/hello-layer.conf']);

    const r = await installPackages({ sysroot: s.dir, booted, files: [deb], stage: false });
    expect(r.added).toEqual(['hello-layer']);
    expect(r.packages).toMatchObject([{ package: 'hello-layer', version: '1.0' }]);
    const st = status({ sysroot: s.dir, booted }).deployments;
    expect(st[0]).toMatchObject({ checksum: r.commit, pending: true, origin: REF, layered: { base: base1, packages: ['hello-layer'], removed: [] } });
    const dep = st[0].path;
    expect(fs.readFileSync(path.join(dep, 'usr/bin/hello-layer'), 'utf8')).toContain('layered');
    expect(fs.readFileSync(path.join(dep, 'usr/etc/hello-layer.conf'), 'utf8')).toBe('x=1\n');
    expect(fs.readFileSync(path.join(dep, 'etc/hello-layer.conf'), 'utf8')).toBe('x=1\n'); // merged into /etc
    expect(factoryStatus(dep)).toMatch(/Package: hello-layer\nStatus: install ok unpacked\n/);
    expect(fs.readFileSync(path.join(dep, 'usr/bin/hello'), 'utf8')).toContain('hello 1.0'); // the base is all there
    const commit = Repo.open(path.join(s.dir, 'ostree/repo')).loadCommit(r.commit as never);
    expect(metadataLookup(commit.metadata, 'strata.layer.base')).toBe(base1);
    expect(metadataLookup(commit.metadata, 'strata.layer.packages')).toBe('hello-layer=1.0');
    expect(metadataLookup(commit.metadata, 'version')).toBe('1.0');
    const origin = fs.readFileSync(`${dep}.origin`, 'utf8');
    expect(origin).toMatch(/\[packages\]\nrequested-local=[0-9a-f]{64}:hello-layer;\n/);
    const sha = /requested-local=([0-9a-f]{64})/.exec(origin)?.[1];
    expect(fs.existsSync(path.join(s.dir, `ostree/deploy/${STATEROOT}/var/lib/strata/layered/${sha}.deb`))).toBe(true);
    // The commit has no ref: only the deployment holds it.
    expect(fs.readdirSync(path.join(s.dir, 'ostree/repo/refs/heads'), { recursive: true }).map(String)).not.toContain('strata');

    // Boot it, then the base moves to 2.0: upgrade puts the package on top of 2.0.
    const booted2 = bootSysroot(s.dir);
    const base2 = await s.commitVersion({ version: '2.0', files: { 'usr/bin/new-tool': '#!/bin/sh\n' } });
    const up = await upgrade({ sysroot: s.dir, booted: booted2, stage: false });
    expect(up).toMatchObject({ available: true, from: { checksum: base1 }, to: { checksum: base2 }, layered: { packages: ['hello-layer'] } });
    const st2 = status({ sysroot: s.dir, booted: booted2 }).deployments[0];
    expect(st2).toMatchObject({ checksum: up.layered?.commit, layered: { base: base2, packages: ['hello-layer'] } });
    expect(fs.existsSync(path.join(st2.path, 'usr/bin/new-tool'))).toBe(true);
    expect(fs.existsSync(path.join(st2.path, 'usr/bin/hello-layer'))).toBe(true);
    expect(fs.readFileSync(path.join(st2.path, 'usr/lib/os-release'), 'utf8')).toContain('VERSION_ID=2.0');
    expect(factoryStatus(st2.path)).toContain('Package: hello-layer');
    // Nothing newer: no update (compared by the base, not the layered commit).
    const booted3 = bootSysroot(s.dir);
    expect((await upgrade({ sysroot: s.dir, booted: booted3, check: true })).available).toBe(false);

    // Uninstall: back to the plain base 2.0, the stored .deb goes once no deployment needs it.
    const un = await uninstallPackages({ sysroot: s.dir, booted: booted3, names: ['hello-layer'], stage: false });
    expect(un.commit).toBe(base2);
    const st3 = status({ sysroot: s.dir, booted: booted3 }).deployments[0];
    expect(st3).toMatchObject({ checksum: base2, layered: null });
    expect(fs.existsSync(path.join(st3.path, 'usr/bin/hello-layer'))).toBe(false);
    expect(fs.readFileSync(`${st3.path}.origin`, 'utf8')).not.toContain('[packages]');
  });

  it('stages by default, and a second install keeps the first package', async () => {
    const { s, booted } = await deployedSysroot();
    await installPackages({ sysroot: s.dir, booted, files: [makeDeb('one', '1', { 'usr/share/one/a': 'a\n' })] });
    await installPackages({ sysroot: s.dir, booted, files: [makeDeb('two', '1', { 'usr/share/two/b': 'b\n' })] });
    const st = status({ sysroot: s.dir, booted }).deployments;
    expect(st[0]).toMatchObject({ staged: true, layered: { packages: ['one', 'two'] } });
    await finalizeStaged({ sysroot: s.dir, booted });
    const dep = status({ sysroot: s.dir, booted }).deployments[0].path;
    expect(fs.existsSync(path.join(dep, 'usr/share/one/a'))).toBe(true);
    expect(fs.existsSync(path.join(dep, 'usr/share/two/b'))).toBe(true);
  });

  it('refuses a package that replaces a base file with other content, and changes nothing', async () => {
    const { s, booted } = await deployedSysroot();
    const before = snapshot(s.dir);
    const bad = makeDeb('clobber', '1', { 'usr/bin/hello': '#!/bin/sh\necho other\n' });
    await expect(installPackages({ sysroot: s.dir, booted, files: [bad], stage: false })).rejects.toMatchObject({ code: 'PACKAGE_CONFLICT' });
    expect(snapshot(s.dir)).toEqual(before);
    expect(fs.readdirSync(path.join(s.dir, 'ostree/repo/tmp')).filter((n) => n.startsWith('strata-derive-'))).toEqual([]);
    const r = strata(['admin', 'install', bad, '--sysroot', s.dir, '--booted', booted, '--apply-now']);
    expect(r.status).toBe(65);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/clobber ships \/usr\/bin\/hello, which the base image/);
    expect(snapshot(s.dir)).toEqual(before);
    // The same bytes and mode as the base's file are no conflict.
    const same = makeDeb('same', '1', { 'usr/bin/hello': '#!/bin/sh\necho hello 1.0\n' });
    const ok = await installPackages({ sysroot: s.dir, booted, files: [same], stage: false });
    expect(ok.packages).toMatchObject([{ package: 'same' }]);
  });

  it('refuses bad input on one line with a code, and changes nothing', async () => {
    const { s, booted } = await deployedSysroot();
    const before = snapshot(s.dir);
    const corrupt = path.join(work, 'corrupt.deb');
    fs.writeFileSync(corrupt, '!<arch>\ngarbage');
    const dev = ['--sysroot', s.dir, '--booted', booted];
    const cases: [string[], number, RegExp][] = [
      [['admin', 'install', corrupt, ...dev], 65, /not a valid Debian package/],
      [['admin', 'install', path.join(work, 'missing.deb'), ...dev], 66, /does not exist/],
      [['admin', 'uninstall', 'nosuch', ...dev], 66, /not layered/],
      [['admin', 'override', 'remove', '/usr/nosuch', ...dev], 66, /not in the base/],
      [['admin', 'override', 'remove', '../etc', ...dev], 65, /'\.\.'/],
    ];
    for (const [args, code, msg] of cases) {
      const r = strata(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(snapshot(s.dir)).toEqual(before);
    }
  });
});

describe('admin override', () => {
  it('hides base paths, keeps them hidden through an upgrade, and resets', async () => {
    const { s, booted } = await deployedSysroot();
    const r = await overrideRemove({ sysroot: s.dir, booted, paths: ['/usr/bin/hi', '/etc/motd'], stage: false });
    expect(r.after.removals).toEqual(['/usr/bin/hi', '/usr/etc/motd']);
    let d = status({ sysroot: s.dir, booted }).deployments[0];
    expect(d.layered).toMatchObject({ removed: ['/usr/bin/hi', '/usr/etc/motd'], packages: [] });
    expect(fs.existsSync(path.join(d.path, 'usr/bin/hi'))).toBe(false);
    expect(fs.existsSync(path.join(d.path, 'usr/etc/motd'))).toBe(false);
    expect(fs.existsSync(path.join(d.path, 'usr/bin/hello'))).toBe(true);

    const b2 = bootSysroot(s.dir);
    await s.commitVersion({ version: '2.0' });
    await upgrade({ sysroot: s.dir, booted: b2, stage: false });
    d = status({ sysroot: s.dir, booted: b2 }).deployments[0];
    expect(fs.readFileSync(path.join(d.path, 'usr/lib/os-release'), 'utf8')).toContain('2.0');
    expect(fs.existsSync(path.join(d.path, 'usr/bin/hi'))).toBe(false);

    const b3 = bootSysroot(s.dir);
    const reset = await overrideReset({ sysroot: s.dir, booted: b3, stage: false });
    expect(reset.removed).toEqual(['/usr/bin/hi', '/usr/etc/motd']);
    d = status({ sysroot: s.dir, booted: b3 }).deployments[0];
    expect(d.layered).toBeNull();
    expect(fs.lstatSync(path.join(d.path, 'usr/bin/hi')).isSymbolicLink()).toBe(true);
  });
});
