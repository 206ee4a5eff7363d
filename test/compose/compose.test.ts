// compose end to end through the library: each manifest key lands in the
// commit as documented; /etc and /var take the OSTree layout; the same
// manifest gives the same checksum in fresh repositories; --dry-run and an
// unchanged recompose write nothing; a composed commit works as a base.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/compose/compose.js';
import { Repo } from '../../src/repo/repo.js';
import { isRoot, rootfsPair, sh, tmpDir } from '../helpers/fixtures.js';
import { buildDeb, buildOciLayout, cat, entries, head, manifest, newRepo, snapshot, tarball, write } from './helpers.js';

process.env.STRATA_WORKERS ??= '1';

/** A small OS-like directory: passwd/group/shadow, a unit with [Install], /var content. */
function overlay(root: string): string {
  write(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nadm:x:3:4:adm:/var/adm:/usr/sbin/nologin\n');
  write(root, 'etc/group', 'root:x:0:\nadm:x:4:\n');
  write(root, 'etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640);
  write(root, 'etc/gshadow', 'root:*::\nadm:*::\n', 0o640);
  write(root, 'usr/lib/systemd/system/web.service', '[Unit]\nDescription=web\n[Service]\nExecStart=/usr/bin/web\n[Install]\nWantedBy=multi-user.target\nAlias=www.service\nAlso=web.socket\n');
  write(root, 'usr/lib/systemd/system/web.socket', '[Socket]\nListenStream=80\n[Install]\nWantedBy=sockets.target\n');
  write(root, 'usr/lib/systemd/system/static.service', '[Service]\nExecStart=/bin/true\n');
  write(root, 'usr/bin/web', '#!/bin/sh\n', 0o755);
  write(root, 'usr/share/doc/web/README', 'docs\n');
  write(root, 'usr/share/doc/web/changelog.gz', 'gz\n');
  write(root, 'usr/share/man/man1/web.1', 'man\n');
  write(root, 'var/lib/web/state', 'initial\n', 0o600);
  fs.mkdirSync(path.join(root, 'var/cache/web'), { recursive: true });
  fs.chmodSync(path.join(root, 'var/cache/web'), 0o750);
  fs.symlinkSync('/run', path.join(root, 'var/run'));
  return root;
}

describe('compose: every key', () => {
  let repo: string;
  let dir: string;
  beforeAll(async () => {
    dir = tmpDir();
    overlay(path.join(dir, 'overlay'));
    write(dir, 'files/banner', 'Welcome\n', 0o755);
    repo = newRepo();
    const m = manifest(dir, `
ref: demo/x86_64/web
version: "1.2"
subject: Web image 1.2
body: built by a test
timestamp: 2024-05-01T12:00:00Z
metadata:
  org.example.channel: stable
  a.first: one
layers:
  - dir: overlay
remove:
  - usr/share/doc/**
  - usr/share/man
files:
  - path: /etc/motd
    content: "hello\\n"
  - path: /usr/libexec/banner
    source: files/banner
  - path: /etc/web.conf
    content: "port=80\\n"
    mode: "0640"
    owner: root:adm
symlinks:
  - path: /usr/bin/www
    target: web
groups:
  - name: web
    gid: 1500
users:
  - name: alice
    uid: 1000
    gecos: Alice
    shell: /bin/sh
    groups: [web, adm]
  - name: svc
    uid: 999
    gid: 1500
units:
  enable: [web.service]
  mask: [static.service]
kargs: [quiet, console=ttyS0]
`);
    await compose({ manifest: m, repo });
  });

  it('records ref, subject, body, timestamp, version and sorted metadata with kargs', () => {
    const r = Repo.open(repo);
    const c = r.loadCommit(head(repo, 'demo/x86_64/web'));
    expect(c.subject).toBe('Web image 1.2');
    expect(c.body).toBe('built by a test');
    expect(c.timestamp).toBe(1714564800);
    expect(c.metadata.map(([k]) => k)).toEqual(['a.first', 'org.example.channel', 'strata.kargs', 'version', 'ostree.ref-binding']);
    expect(Object.fromEntries(c.metadata.map(([k, v]) => [k, v.value]))).toMatchObject({ version: '1.2', 'strata.kargs': 'quiet console=ttyS0', 'org.example.channel': 'stable' });
  });

  it('moves /etc to /usr/etc and writes files with their mode and owner', () => {
    const e = entries(repo, 'demo/x86_64/web');
    expect(e.has('/etc')).toBe(false);
    expect(cat(repo, 'demo/x86_64/web', '/usr/etc/motd')).toBe('hello\n');
    expect(e.get('/usr/etc/web.conf')).toMatchObject({ type: 'file', mode: 0o640, uid: 0, gid: 4 });
    expect(e.get('/usr/etc/motd')).toMatchObject({ mode: 0o644, uid: 0, gid: 0 });
    expect(cat(repo, 'demo/x86_64/web', '/usr/libexec/banner')).toBe('Welcome\n');
    expect(e.get('/usr/libexec/banner')?.mode).toBe(0o755);
    expect(e.get('/usr/bin/www')).toMatchObject({ type: 'symlink', target: 'web' });
  });

  it('removes what the globs match', () => {
    const e = entries(repo, 'demo/x86_64/web');
    expect(e.has('/usr/share/man')).toBe(false);
    expect(e.has('/usr/share/doc/web/README')).toBe(false);
    expect(e.has('/usr/share/doc/web')).toBe(false);
    expect(e.has('/usr/bin/web')).toBe(true);
  });

  it('adds groups and users to passwd, group, shadow and gshadow', () => {
    const ref = 'demo/x86_64/web';
    expect(cat(repo, ref, '/usr/etc/passwd')).toBe('root:x:0:0:root:/root:/bin/sh\nadm:x:3:4:adm:/var/adm:/usr/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nsvc:x:999:1500::/home/svc:/usr/sbin/nologin\n');
    expect(cat(repo, ref, '/usr/etc/group')).toBe('root:x:0:\nadm:x:4:alice\nweb:x:1500:alice\nalice:x:1000:\n');
    // The last-change day comes from the timestamp: 2024-05-01 is day 19844.
    expect(cat(repo, ref, '/usr/etc/shadow')).toBe('root:*:19000:0:99999:7:::\nalice:!:19844:0:99999:7:::\nsvc:!:19844:0:99999:7:::\n');
    expect(cat(repo, ref, '/usr/etc/gshadow')).toBe('root:*::\nadm:*::alice\nweb:!::alice\nalice:!::\n');
    expect(entries(repo, ref).get('/usr/etc/shadow')?.mode).toBe(0o640);
  });

  it('enables units as systemctl would (WantedBy, Alias, Also) and masks to /dev/null', () => {
    const e = entries(repo, 'demo/x86_64/web');
    expect(e.get('/usr/etc/systemd/system/multi-user.target.wants/web.service')).toMatchObject({ type: 'symlink', target: '/usr/lib/systemd/system/web.service' });
    expect(e.get('/usr/etc/systemd/system/www.service')?.target).toBe('/usr/lib/systemd/system/web.service');
    expect(e.get('/usr/etc/systemd/system/sockets.target.wants/web.socket')?.target).toBe('/usr/lib/systemd/system/web.socket');
    expect(e.get('/usr/etc/systemd/system/static.service')?.target).toBe('/dev/null');
  });

  it('empties /var into a tmpfiles.d snippet and the factory', () => {
    const e = entries(repo, 'demo/x86_64/web');
    expect([...e.keys()].filter((p) => p.startsWith('/var/'))).toEqual([]);
    expect(e.get('/var')?.type).toBe('dir');
    expect(cat(repo, 'demo/x86_64/web', '/usr/lib/tmpfiles.d/strata-var.conf')?.split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      'd /var/cache 0755 0 0 -',
      'd /var/cache/web 0750 0 0 -',
      'd /var/lib 0755 0 0 -',
      'd /var/lib/web 0755 0 0 -',
      'C /var/lib/web/state - - - - /usr/share/factory/var/lib/web/state',
      'L /var/run - 0 0 - /run',
      '',
    ]);
    expect(cat(repo, 'demo/x86_64/web', '/usr/share/factory/var/lib/web/state')).toBe('initial\n');
    expect(e.get('/usr/share/factory/var/lib/web/state')?.mode).toBe(0o600);
  });
});

describe('compose: reproducible, dry-run, unchanged, derived', () => {
  let dir: string;
  let m: string;
  beforeAll(() => {
    dir = tmpDir();
    overlay(path.join(dir, 'overlay'));
    write(dir, 'extra/opt/extra/data.txt', 'extra\n');
    tarball(path.join(dir, 'extra'), path.join(dir, 'extra.tar.zst'), 'zstd');
    buildDeb(dir, 'hello-strata', '1.0-1', { 'usr/bin/hello-strata': '#!/bin/sh\necho hello\n', 'etc/hello-strata.conf': 'greeting=hi\n' });
    write(dir, 'l1/opt/oci/one', '1\n');
    buildOciLayout(dir, [path.join(dir, 'l1')]);
    m = manifest(dir, `
ref: demo/x86_64/all
version: "3"
layers:
  - dir: overlay
  - tar: extra.tar.zst
  - deb: hello-strata_1.0-1_all.deb
  - oci: oci-layout-dir
files:
  - { path: /etc/hostname, content: "demo\\n" }
users:
  - { name: alice, uid: 1000 }
units:
  enable: [web.service]
`);
  });

  it('gives the same checksum from scratch in two fresh repositories (and the one dry-run predicts)', async () => {
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await compose({ manifest: m, repo: newRepo(), env, workdir: tmpDir() });
    const b = await compose({ manifest: m, repo: newRepo('archive'), env, workdir: tmpDir() });
    const predicted = await compose({ manifest: m, repo: newRepo(), env, dryRun: true });
    expect(a.commit).toMatch(/^[0-9a-f]{64}$/);
    expect(b.commit).toBe(a.commit);
    expect(predicted.commit).toBe(a.commit);
    expect(a.timestamp).toBe(1700000000);
    // Another timestamp is another commit (same tree).
    const c = await compose({ manifest: m, repo: newRepo(), env: { SOURCE_DATE_EPOCH: '1700000001' } });
    expect(c.commit).not.toBe(a.commit);
  });

  it('--dry-run writes nothing and diffs against the ref', async () => {
    const repo = newRepo();
    const first = await compose({ manifest: m, repo, dryRun: true, env: {} });
    expect(first.diff?.from).toBeNull();
    expect(first.diff?.entries.find((e) => e.path === '/usr/bin/hello-strata')?.change).toBe('added');
    expect(fs.existsSync(path.join(repo, 'refs/heads/demo'))).toBe(false);
    const real = await compose({ manifest: m, repo, env: {} });
    expect(real.commit).toBe(first.commit);

    fs.writeFileSync(path.join(dir, 'overlay/usr/bin/web'), '#!/bin/sh\necho changed\n');
    fs.rmSync(path.join(dir, 'overlay/usr/share/man'), { recursive: true });
    const before = snapshot(repo);
    const dry = await compose({ manifest: m, repo, dryRun: true, env: {} });
    expect(snapshot(repo)).toEqual(before);
    expect(dry.unchanged).toBe(false);
    expect(dry.diff?.from).toBe(real.commit);
    const changes = dry.diff?.entries.map((e) => `${e.change} ${e.path}`);
    expect(changes).toEqual(['modified /usr/bin/web', 'removed /usr/share/man', 'removed /usr/share/man/man1', 'removed /usr/share/man/man1/web.1']);
    const applied = await compose({ manifest: m, repo, env: {} });
    expect(applied.commit).toBe(dry.commit);
    expect(applied.parent).toBe(real.commit);
  });

  it('an unchanged manifest writes nothing and reports the current commit', async () => {
    const repo = newRepo();
    const one = await compose({ manifest: m, repo, env: {} });
    const before = snapshot(repo);
    const two = await compose({ manifest: m, repo, env: {} });
    expect(two.unchanged).toBe(true);
    expect(two.commit).toBe(one.commit);
    expect(snapshot(repo)).toEqual(before);
    const dry = await compose({ manifest: m, repo, env: {}, dryRun: true });
    expect(dry.unchanged).toBe(true);
    expect(dry.diff?.entries).toEqual([]);
  });

  it('a composed commit as base: /etc and /var come back for the layers, the result is assembled again', async () => {
    const repo = newRepo();
    await compose({ manifest: m, repo, env: {} });
    buildDeb(dir, 'edge-agent', '2.0', { 'usr/bin/edge-agent': '#!/bin/sh\n', 'etc/edge/agent.conf': 'x=1\n' });
    write(dir, 'edge-overlay/var/lib/edge/queue', 'q\n');
    const derived = manifest(dir, `
ref: demo/x86_64/edge
base: { ref: demo/x86_64/all }
layers:
  - deb: edge-agent_2.0_all.deb
  - dir: edge-overlay
remove: [var/lib/web]
files:
  - { path: /etc/hostname, content: "edge\\n" }
`, 'edge.yaml');
    const r = await compose({ manifest: derived, repo, env: {} });
    const base = head(repo, 'demo/x86_64/all');
    expect(r.base).toEqual({ kind: 'ref', commit: base });
    expect(r.metadata['strata.compose.base']).toBe(base);
    const e = entries(repo, 'demo/x86_64/edge');
    expect(cat(repo, 'demo/x86_64/edge', '/usr/etc/hostname')).toBe('edge\n');
    expect(cat(repo, 'demo/x86_64/edge', '/usr/etc/edge/agent.conf')).toBe('x=1\n');
    expect(e.has('/etc')).toBe(false);
    expect(e.has('/usr/etc/passwd')).toBe(true);
    expect(e.has('/usr/bin/hello-strata')).toBe(true);
    // Both packages in the dpkg database (kept in the factory), sorted by name.
    const status = cat(repo, 'demo/x86_64/edge', '/usr/share/factory/var/lib/dpkg/status') ?? '';
    expect([...status.matchAll(/^Package: (.+)$/gm)].map((x) => x[1])).toEqual(['edge-agent', 'hello-strata']);
    const conf = cat(repo, 'demo/x86_64/edge', '/usr/lib/tmpfiles.d/strata-var.conf') ?? '';
    expect(conf).toContain('C /var/lib/edge/queue - - - - /usr/share/factory/var/lib/edge/queue');
    expect(conf).toContain('L /var/run - 0 0 - /run');
    expect(conf).not.toContain('/var/lib/web');
    expect(e.has('/usr/share/factory/var/lib/web/state')).toBe(false);

    // The base recomposed from its own commit as base gives the same tree back.
    const again = manifest(dir, 'ref: demo/x86_64/copy\nversion: "3"\nbase: { ref: demo/x86_64/all }\n', 'copy.yaml');
    await compose({ manifest: again, repo, env: {} });
    const rr = Repo.open(repo);
    expect(rr.loadCommit(head(repo, 'demo/x86_64/copy')).rootTree).toBe(rr.loadCommit(base).rootTree);
  });
});

describe.runIf(isRoot)('compose on a real Debian tree (cached rootfs-a as the base)', () => {
  it('follows merged-/usr symlinks for package files and runs postprocess in a chroot', async () => {
    const pair = rootfsPair();
    if (!pair) throw new Error('rootfs-a could not be built');
    const dir = tmpDir();
    buildDeb(dir, 'usrmerge-probe', '1', { 'bin/probe-tool': '#!/bin/sh\necho probe\n', 'lib/probe/data': 'd\n' });
    buildDeb(dir, 'scripted', '2', { 'usr/share/scripted/x': 'x\n' });
    fs.writeFileSync(path.join(dir, 'scripted-src/DEBIAN/postinst'), '#!/bin/sh\nset -e\necho "postinst $1" > /etc/scripted-postinst\n', { mode: 0o755 });
    sh('dpkg-deb', ['--root-owner-group', '--build', path.join(dir, 'scripted-src'), path.join(dir, 'scripted_2_all.deb')]);
    const m = manifest(dir, `
ref: debian/x86_64/probe
timestamp: 2024-01-01T00:00:00Z
base: { dir: ${pair.a} }
layers:
  - deb: usrmerge-probe_1_all.deb
  - deb: scripted_2_all.deb
    scripts: true
users:
  - { name: alice, uid: 1000 }
postprocess:
  - "echo built-in-chroot > /etc/built && test -x /usr/bin/probe-tool"
`);
    const repo = newRepo();
    const r = await compose({ manifest: m, repo });
    const e = entries(repo, 'debian/x86_64/probe');
    expect(e.get('/bin')).toMatchObject({ type: 'symlink', target: 'usr/bin' });
    expect(e.get('/usr/bin/probe-tool')?.type).toBe('file');
    expect(e.get('/usr/lib/probe/data')?.type).toBe('file');
    expect(cat(repo, 'debian/x86_64/probe', '/usr/etc/built')).toBe('built-in-chroot\n');
    expect(cat(repo, 'debian/x86_64/probe', '/usr/etc/passwd')).toContain('\nalice:x:1000:1000::/home/alice:/usr/sbin/nologin\n');
    expect(cat(repo, 'debian/x86_64/probe', '/usr/share/factory/var/lib/dpkg/status')).toMatch(/Package: usrmerge-probe\nStatus: install ok unpacked\n/);
    expect(cat(repo, 'debian/x86_64/probe', '/usr/lib/tmpfiles.d/strata-var.conf')).toContain('C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status');
    expect(r.var.varFiles).toBeGreaterThan(10);
    // scripts: true ran the package's postinst with the tree's own dpkg, which recorded it as installed.
    expect(cat(repo, 'debian/x86_64/probe', '/usr/etc/scripted-postinst')).toBe('postinst configure\n');
    expect(cat(repo, 'debian/x86_64/probe', '/usr/share/factory/var/lib/dpkg/status')).toMatch(/Package: scripted\nStatus: install ok installed\n/);
    expect(e.has('/usr/share/factory/var/log/dpkg.log')).toBe(false);
    expect(r.layers[1].packages).toEqual([{ package: 'scripted', version: '2', architecture: 'all' }]);
  }, 180_000);
});
