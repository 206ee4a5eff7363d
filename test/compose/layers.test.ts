// Layers through the library: tarballs in every compression, .debs built by
// dpkg-deb (dpkg database records, conffiles, two packages claiming a path),
// OCI image layouts with whiteouts and opaque directories, docker save archives.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compose } from '../../src/compose/compose.js';
import { sh, tmpDir } from '../helpers/fixtures.js';
import { buildDeb, buildOciLayout, cat, entries, manifest, newRepo, tarball, write } from './helpers.js';

process.env.STRATA_WORKERS ??= '1';

describe('tar layers', () => {
  it.each([['', 'tar'], ['z', 'tar.gz'], ['J', 'tar.xz'], ['zstd', 'tar.zst']] as const)('reads %s (%s), later layers replacing earlier files', async (flag, ext) => {
    const dir = tmpDir();
    write(dir, 'a/etc/app.conf', 'one\n');
    write(dir, 'a/usr/bin/app', '#!/bin/sh\n', 0o4755);
    fs.symlinkSync('app', path.join(dir, 'a/usr/bin/app-link'));
    fs.linkSync(path.join(dir, 'a/usr/bin/app'), path.join(dir, 'a/usr/bin/app-hard'));
    write(dir, 'b/etc/app.conf', 'two\n');
    tarball(path.join(dir, 'a'), path.join(dir, `a.${ext}`), flag);
    tarball(path.join(dir, 'b'), path.join(dir, `b.${ext}`), flag);
    const repo = newRepo();
    await compose({ manifest: manifest(dir, `ref: t/tar\nlayers:\n  - tar: a.${ext}\n  - tar: b.${ext}\n`), repo, env: {} });
    const e = entries(repo, 't/tar');
    expect(cat(repo, 't/tar', '/usr/etc/app.conf')).toBe('two\n');
    expect(e.get('/usr/bin/app')).toMatchObject({ mode: 0o4755, uid: 0, gid: 0 });
    expect(e.get('/usr/bin/app-link')?.target).toBe('app');
    expect(cat(repo, 't/tar', '/usr/bin/app-hard')).toBe('#!/bin/sh\n');
  });

  it('writes through an absolute directory symlink of the tree, inside the tree', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'base/usr/lib'), { recursive: true });
    fs.symlinkSync('/usr/lib', path.join(dir, 'base/lib'));
    write(dir, 'layer/lib/mod/x.so', 'so\n');
    tarball(path.join(dir, 'layer'), path.join(dir, 'layer.tar'));
    const repo = newRepo();
    await compose({ manifest: manifest(dir, 'ref: t/abs\nbase: {dir: base}\nlayers:\n  - tar: layer.tar\n'), repo, env: {} });
    const e = entries(repo, 't/abs');
    expect(e.get('/lib')?.target).toBe('/usr/lib');
    expect(cat(repo, 't/abs', '/usr/lib/mod/x.so')).toBe('so\n');
  });
});

describe('deb layers', () => {
  it('unpacks data.tar without scripts and records status, file list, md5sums and conffiles', async () => {
    const dir = tmpDir();
    const deb = buildDeb(dir, 'tool', '1.2-3', { 'usr/bin/tool': '#!/bin/sh\necho tool\n', 'etc/tool/tool.conf': 'a=1\n' }, 'Depends: libc6\n');
    fs.writeFileSync(path.join(dir, 'tool-src/DEBIAN/postinst'), '#!/bin/sh\ntouch /postinst-ran\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'tool-src/DEBIAN/conffiles'), '/etc/tool/tool.conf\n');
    fs.writeFileSync(path.join(dir, 'tool-src/DEBIAN/md5sums'), sh('md5sum', ['usr/bin/tool', 'etc/tool/tool.conf'], { cwd: path.join(dir, 'tool-src') }));
    sh('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', path.join(dir, 'tool-src'), deb]);
    const repo = newRepo();
    const r = await compose({ manifest: manifest(dir, 'ref: t/deb\nlayers:\n  - deb: [tool_1.2-3_all.deb]\n'), repo, env: {} });
    expect(r.layers[0].packages).toEqual([{ package: 'tool', version: '1.2-3', architecture: 'all' }]);
    const e = entries(repo, 't/deb');
    expect(e.get('/usr/bin/tool')?.mode).toBe(0o755);
    expect(e.has('/postinst-ran')).toBe(false);
    const status = cat(repo, 't/deb', '/usr/share/factory/var/lib/dpkg/status') ?? '';
    const md5 = createHash('md5').update('a=1\n').digest('hex');
    expect(status).toBe(`Package: tool\nStatus: install ok unpacked\nVersion: 1.2-3\nArchitecture: all\nMaintainer: Test <t@example.com>\nDescription: test package tool\n a longer description line\nDepends: libc6\nConffiles:\n /etc/tool/tool.conf ${md5}\n`);
    // As dpkg writes it: '/.' then every path, no empty names.
    const list = cat(repo, 't/deb', '/usr/share/factory/var/lib/dpkg/info/tool.list');
    expect(list).toBe('/.\n/etc\n/etc/tool\n/etc/tool/tool.conf\n/usr\n/usr/bin\n/usr/bin/tool\n');
    expect(cat(repo, 't/deb', '/usr/share/factory/var/lib/dpkg/info/tool.md5sums')).toContain('usr/bin/tool');
  });

  it('leaves directories that exist as they are, as dpkg does (a tar layer sets them)', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'base/opt/site'), { recursive: true });
    fs.chmodSync(path.join(dir, 'base/opt'), 0o700);
    buildDeb(dir, 'siteapp', '1', { 'opt/site/app': 'app\n' });
    write(dir, 'layer/srv/x', 'x\n');
    fs.chmodSync(path.join(dir, 'layer/srv'), 0o750);
    fs.mkdirSync(path.join(dir, 'base/srv'));
    tarball(path.join(dir, 'layer'), path.join(dir, 'layer.tar'));
    const repo = newRepo();
    await compose({ manifest: manifest(dir, 'ref: t/dirs\nbase: {dir: base}\nlayers:\n  - deb: siteapp_1_all.deb\n  - tar: layer.tar\n'), repo, env: {} });
    const e = entries(repo, 't/dirs');
    expect(e.get('/opt')?.mode).toBe(0o700);
    expect(e.get('/opt/site/app')?.type).toBe('file');
    expect(e.get('/srv')?.mode).toBe(0o750);
  });

  it('refuses two packages that ship the same file', async () => {
    const dir = tmpDir();
    buildDeb(dir, 'one', '1', { 'usr/bin/same': 'one\n' });
    buildDeb(dir, 'two', '1', { 'usr/bin/same': 'two\n' });
    const repo = newRepo();
    const err = await compose({ manifest: manifest(dir, 'ref: t/deb\nlayers:\n  - deb: one_1_all.deb\n  - deb: two_1_all.deb\n'), repo, env: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'COMPOSE_CONFLICT' });
    expect((err as Error).message).toMatch(/manifest\.yaml:4:5: layers\[1\]\.deb: package two ships \/usr\/bin\/same, which package one put there already/);
  });
});

describe('oci layers', () => {
  function layers(dir: string): string[] {
    write(dir, 'l1/etc/a', 'a\n');
    write(dir, 'l1/etc/b', 'b\n');
    write(dir, 'l1/opt/dir/x', 'x\n');
    write(dir, 'l1/opt/dir/sub/y', 'y\n');
    write(dir, 'l1/usr/bin/tool', 'v1\n', 0o755);
    write(dir, 'l2/etc/.wh.a', '');
    write(dir, 'l2/opt/dir/.wh..wh..opq', '');
    write(dir, 'l2/opt/dir/z', 'z\n');
    write(dir, 'l2/usr/bin/tool', 'v2\n', 0o755);
    return [path.join(dir, 'l1'), path.join(dir, 'l2')];
  }

  it('applies an image layout in order, honouring whiteouts and opaque directories', async () => {
    const dir = tmpDir();
    const { layerDigests } = buildOciLayout(dir, layers(dir));
    const repo = newRepo();
    const r = await compose({ manifest: manifest(dir, 'ref: t/oci\nlayers:\n  - oci: oci-layout-dir\n'), repo, env: {} });
    expect(r.layers[0].manifest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const e = entries(repo, 't/oci');
    const paths = [...e.keys()].filter((p) => /^\/(usr\/etc|opt)\//.test(p)).sort();
    expect(paths).toEqual(['/opt/dir', '/opt/dir/z', '/usr/etc/b']);
    expect(cat(repo, 't/oci', '/usr/bin/tool')).toBe('v2\n');
    expect([...e.keys()].some((p) => p.includes('.wh.'))).toBe(false);
    expect(layerDigests).toHaveLength(2);
  });

  it('reads an archive holding an image layout (docker save since Docker 25), naming the archive in errors', async () => {
    const dir = tmpDir();
    const { layout, layerDigests } = buildOciLayout(dir, layers(dir));
    sh('tar', ['-cf', path.join(dir, 'image.tar'), '-C', layout, '.']);
    const repo = newRepo();
    await compose({ manifest: manifest(dir, 'ref: t/ocitar\nlayers:\n  - oci: image.tar\n'), repo, env: {} });
    expect(cat(repo, 't/ocitar', '/opt/dir/z')).toBe('z\n');
    fs.rmSync(path.join(layout, 'blobs/sha256', layerDigests[1].slice(7)));
    sh('tar', ['-cf', path.join(dir, 'broken.tar'), '-C', layout, '.']);
    const err = await compose({ manifest: manifest(dir, 'ref: t/ocitar\nlayers:\n  - oci: broken.tar\n', 'b.yaml'), repo, env: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OCI_INVALID' });
    expect((err as Error).message).toMatch(/b\.yaml:3:5: layers\[0\]\.oci: .*broken\.tar: layer 2 blob sha256:[0-9a-f]{64} is missing from blobs\/sha256$/);
  });

  it('reads a docker save archive (manifest.json, diff_ids checked)', async () => {
    const dir = tmpDir();
    const [l1, l2] = layers(dir);
    const save = path.join(dir, 'save');
    const diffIds: string[] = [];
    const names: string[] = [];
    for (const [i, l] of [l1, l2].entries()) {
      fs.mkdirSync(path.join(save, `layer${i}`), { recursive: true });
      const t = tarball(l, path.join(save, `layer${i}`, 'layer.tar'));
      diffIds.push(`sha256:${createHash('sha256').update(fs.readFileSync(t)).digest('hex')}`);
      names.push(`layer${i}/layer.tar`);
    }
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds } }));
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    fs.writeFileSync(path.join(save, configName), config);
    fs.writeFileSync(path.join(save, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: ['x:latest'], Layers: names }]));
    sh('tar', ['-cf', path.join(dir, 'image.tar'), '-C', save, '.']);
    const repo = newRepo();
    await compose({ manifest: manifest(dir, 'ref: t/docker\nlayers:\n  - oci: image.tar\n'), repo, env: {} });
    const e = entries(repo, 't/docker');
    expect([...e.keys()].filter((p) => /^\/(usr\/etc|opt)\//.test(p)).sort()).toEqual(['/opt/dir', '/opt/dir/z', '/usr/etc/b']);
  });
});
