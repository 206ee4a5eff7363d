// Bad input through the CLI as a user meets it: one line on stderr naming
// the problem (and for manifest problems the file, line and key), a non-zero
// exit with the registry's code, and the repository and its refs unchanged.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { sh, strata, tmpDir } from '../helpers/fixtures.js';
import { buildDeb, buildOciLayout, manifest, newRepo, snapshot, tarball, write } from './helpers.js';

/** A tarball with entries tar(1) will not write: made with Python's tarfile. */
function craftTar(out: string, entries: { name: string; type: 'file' | 'symlink' | 'hardlink' | 'chr' | 'dir'; data?: string; link?: string }[]): string {
  const spec = JSON.stringify(entries);
  sh('python3', ['-c', `
import io, json, sys, tarfile
spec = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    for e in spec:
        i = tarfile.TarInfo(e['name'])
        i.uid = i.gid = 0
        i.mode = 0o755 if e['type'] == 'dir' else 0o644
        data = None
        if e['type'] == 'file':
            data = e.get('data', '').encode()
            i.size = len(data)
        elif e['type'] == 'dir': i.type = tarfile.DIRTYPE
        elif e['type'] == 'symlink': i.type = tarfile.SYMTYPE; i.linkname = e['link']
        elif e['type'] == 'hardlink': i.type = tarfile.LNKTYPE; i.linkname = e['link']
        elif e['type'] == 'chr': i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3
        t.addfile(i, io.BytesIO(data) if data is not None else None)
`, out, spec]);
  return out;
}

describe('compose: bad input gets one clear error and leaves the repository as it was', () => {
  let repo: string;
  let dir: string;
  let before: string[];
  const outside = `/tmp/strata-compose-escape-${process.pid}`;

  beforeAll(() => {
    dir = tmpDir();
    repo = newRepo();
    write(dir, 'good/etc/os-release', 'ID=demo\n');
    write(dir, 'good/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
    write(dir, 'good/etc/group', 'root:x:0:\n');
    const ok = strata(['compose', manifest(dir, 'ref: demo/x86_64/os\nlayers:\n  - dir: good\n', 'good.yaml'), '--repo', repo]);
    expect(ok.status, ok.stderr).toBe(0);
    before = snapshot(repo);
  });

  function expectRefused(text: string, code: ErrorCode, pattern: RegExp, name = 'bad.yaml'): void {
    const r = strata(['compose', manifest(dir, text, name), '--repo', repo]);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^strata: /);
    expect(lines[0]).toMatch(pattern);
    expect(r.status).toBe(ERROR_CODES[code].exit);
    expect(r.stdout).toBe('');
    expect(snapshot(repo)).toEqual(before);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('strata-compose-'))).toEqual([]);
  }

  it('broken YAML', () => {
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\n - tar: x\n', 'MANIFEST_INVALID', /bad\.yaml:4:\d+: not valid YAML/);
  });

  it('an unknown key, with its line', () => {
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\n    options: {}\n', 'MANIFEST_INVALID', /bad\.yaml:4:5: layers\[0\]\.options: unknown key 'options'/);
  });

  it('a missing input file, with its line', () => {
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\n  - tar: missing.tar.gz\n', 'SOURCE_NOT_FOUND', /bad\.yaml:4:5: layers\[1\]\.tar: .*missing\.tar\.gz does not exist/);
  });

  it("a tarball with a '../' path", () => {
    craftTar(path.join(dir, 'dotdot.tar'), [{ name: 'etc/../../escape', type: 'file', data: 'x' }]);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - tar: dotdot.tar\n', 'UNSAFE_PATH', /bad\.yaml:3:5: layers\[0\]\.tar: unsafe tar entry "etc\/\.\.\/\.\.\/escape": '\.\.' would escape the tree/);
  });

  it('a tarball writing through a symlink that points out of the tree', () => {
    craftTar(path.join(dir, 'through.tar'), [
      { name: 'usr/', type: 'dir' },
      { name: 'usr/out', type: 'symlink', link: `../../../../../../../..${outside}` },
      { name: 'usr/out/owned', type: 'file', data: 'pwned' },
    ]);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - tar: through.tar\n', 'UNSAFE_PATH', /layers\[0\]\.tar: \/usr\/out\/owned goes through the symlink \/usr\/out, whose target leaves the tree/);
    expect(fs.existsSync(outside)).toBe(false);
  });

  it('a tarball with a hard link to a file outside the tree', () => {
    craftTar(path.join(dir, 'hardlink.tar'), [{ name: 'etc/shadow-copy', type: 'hardlink', link: '../../etc/shadow' }]);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - tar: hardlink.tar\n', 'UNSAFE_PATH', /layers\[0\]\.tar: unsafe tar entry "\.\.\/\.\.\/etc\/shadow"/);
  });

  it('a device node', () => {
    craftTar(path.join(dir, 'dev.tar'), [{ name: 'dev/', type: 'dir' }, { name: 'dev/null', type: 'chr' }]);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - tar: dev.tar\n', 'UNSUPPORTED_FILE', /layers\[0\]\.tar: character device \/dev\/null cannot go into an OS tree/);
  });

  it('a corrupt .deb', () => {
    const deb = buildDeb(dir, 'broken', '1', { 'usr/bin/broken': 'x\n' });
    const bytes = fs.readFileSync(deb);
    fs.writeFileSync(deb, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - deb: broken_1_all.deb\n', 'DEB_MALFORMED', /layers\[0\]\.deb: .*broken_1_all\.deb is not a valid Debian package: .*cut short/);
    fs.writeFileSync(path.join(dir, 'text.deb'), 'just text\n');
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - deb: text.deb\n', 'DEB_MALFORMED', /text\.deb is not a valid Debian package: not an ar archive/);
  });

  it('an OCI layout whose layer does not match its digest', () => {
    write(dir, 'ocil/usr/bin/tool', 'tool\n');
    const { layout, layerDigests } = buildOciLayout(dir, [path.join(dir, 'ocil')]);
    const blob = path.join(layout, 'blobs/sha256', layerDigests[0].slice(7));
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 10] ^= 0xff;
    fs.writeFileSync(blob, bytes);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - oci: oci-layout-dir\n', 'OCI_INVALID', /layers\[0\]\.oci: .*layer 1 blob sha256:[0-9a-f]{64} does not match its digest/);
  });

  it('conflicting layers: a file where an earlier layer made a directory', () => {
    write(dir, 'c1/usr/lib/thing/inside', 'x\n');
    write(dir, 'c2/usr/lib/thing', 'a file now\n');
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: c1\n  - dir: c2\n', 'COMPOSE_CONFLICT', /bad\.yaml:4:5: layers\[1\]\.dir: \/usr\/lib\/thing is a directory with contents/);
  });

  it('a user that exists, a unit that does not', () => {
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\nusers:\n  - {name: root, uid: 5}\n', 'COMPOSE_CONFLICT', /bad\.yaml:5:5: users\[0\]: user 'root' already exists/);
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\nunits:\n  enable: [nope.service]\n', 'COMPOSE_CONFLICT', /bad\.yaml:5:12: units\.enable\[0\]: cannot enable nope\.service: no unit file/);
  });

  it('a failing postprocess command', () => {
    expectRefused('ref: demo/x86_64/os\nlayers:\n  - dir: good\npostprocess:\n  - "exit 3"\n', process.getuid?.() === 0 ? 'COMMAND_FAILED' : 'NEEDS_ROOT', /bad\.yaml:5:\d+: postprocess/);
  });
});

describe('compose CLI', () => {
  it('prints the commit, --json data, and the dry-run diff', () => {
    const dir = tmpDir();
    const repo = newRepo();
    write(dir, 'tree/etc/hostname', 'one\n');
    tarball(path.join(dir, 'tree'), path.join(dir, 'tree.tar.gz'), 'z');
    const m = manifest(dir, 'ref: cli/x86_64/os\nversion: "1"\ntimestamp: 2024-01-01T00:00:00Z\nlayers:\n  - tar: tree.tar.gz\n');
    const r = strata(['compose', m, '--repo', repo, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = r.json<{ commit: string; ref: string; unchanged: boolean; version: string; stats: { files: number } }>();
    expect(j).toMatchObject({ ref: 'cli/x86_64/os', unchanged: false, version: '1' });
    expect(strata(['rev-parse', '--repo', repo, 'cli/x86_64/os']).stdout.trim()).toBe(j.commit);

    write(dir, 'tree/etc/hostname', 'two!\n');
    tarball(path.join(dir, 'tree'), path.join(dir, 'tree.tar.gz'), 'z');
    const dry = strata(['compose', m, '--repo', repo, '--dry-run']);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^M {2}\/usr\/etc\/hostname {2}\(4 B -> 5 B\)$/m);
    expect(dry.stdout).toMatch(/cli\/x86_64\/os would move to [0-9a-f]{64} \(dry run: nothing written\)/);
    expect(strata(['rev-parse', '--repo', repo, 'cli/x86_64/os']).stdout.trim()).toBe(j.commit);

    const again = strata(['compose', m, '--repo', repo]);
    expect(again.status).toBe(0);
    expect(again.stdout.trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(again.stdout.trim()).not.toBe(j.commit);
  });

  it('refuses a missing repository and a missing manifest', () => {
    const dir = tmpDir();
    const m = manifest(dir, 'ref: a\n');
    const r = strata(['compose', m, '--repo', path.join(dir, 'nope')]);
    expect(r.status).toBe(ERROR_CODES.REPO_NOT_FOUND.exit);
    const r2 = strata(['compose', path.join(dir, 'none.yaml'), '--repo', newRepo()]);
    expect(r2.status).toBe(ERROR_CODES.SOURCE_NOT_FOUND.exit);
    expect(r2.stderr).toMatch(/^strata: no manifest at .*none\.yaml\n$/);
  });
});
