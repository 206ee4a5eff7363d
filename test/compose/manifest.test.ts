// The manifest parser: every key read, every problem reported as
// FILE:LINE:COL, the key path and what is expected; unknown keys are errors.

import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/compose/manifest.js';
import { StrataError } from '../../src/errors.js';

const FILE = '/srv/images/m.yaml';

function problem(text: string, env: NodeJS.ProcessEnv = {}): StrataError {
  try {
    parseManifest(text, FILE, env, 'm.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError);
    return err as StrataError;
  }
  throw new Error('the manifest was accepted');
}

describe('manifest: valid', () => {
  it('reads every key, resolving relative inputs from the manifest directory', () => {
    const m = parseManifest(`
ref: os/x86_64/server
version: "2.1"
subject: Server 2.1
body: longer text
timestamp: 2024-05-01T00:00:00Z
metadata:
  org.example.channel: stable
base:
  ref: os/x86_64/base
layers:
  - dir: overlay
  - tar: extra.tar.zst
  - deb: [pkgs/tool.deb, openssh-server, curl=8.0.1-1]
  - oci: image
    platform: linux/arm64
remove: [usr/share/doc/**]
files:
  - path: /etc/motd
    content: "hi\\n"
    mode: "0600"
    owner: root:adm
  - path: /usr/bin/run
    source: files/run.sh
symlinks:
  - { path: /usr/bin/vi, target: vim.tiny }
groups:
  - { name: ops, gid: 1500, members: [root] }
users:
  - { name: alice, uid: 1000, groups: [ops] }
units:
  enable: [ssh.service]
  mask: [debug-shell.service]
kargs: [quiet, console=ttyS0]
postprocess: ["true"]
`, FILE, {});
    expect(m.ref).toBe('os/x86_64/server');
    expect(m.timestamp).toBe(1714521600);
    expect(m.timestampSource).toBe('manifest');
    expect(m.metadata).toEqual({ 'org.example.channel': 'stable', version: '2.1' });
    expect(m.base).toEqual({ kind: 'ref', rev: 'os/x86_64/base' });
    expect(m.layers.map((l) => l.kind)).toEqual(['dir', 'tar', 'deb', 'oci']);
    expect(m.layers[0]).toMatchObject({ path: '/srv/images/overlay' });
    expect(m.layers[2]).toMatchObject({ items: [{ file: '/srv/images/pkgs/tool.deb' }, { name: 'openssh-server' }, { name: 'curl=8.0.1-1' }] });
    expect(m.layers[3]).toMatchObject({ platform: 'linux/arm64' });
    expect(m.files[0]).toMatchObject({ mode: 0o600, owner: 'root:adm', content: 'hi\n' });
    expect(m.files[1].source).toBe('/srv/images/files/run.sh');
    expect(m.users[0]).toMatchObject({ name: 'alice', uid: 1000, home: '/home/alice', shell: '/usr/sbin/nologin', groups: ['ops'] });
    expect(m.units).toEqual({ enable: ['ssh.service'], mask: ['debug-shell.service'] });
    expect(m.kargs).toEqual(['quiet', 'console=ttyS0']);
    expect(m.where(['layers', 1, 'tar'])).toBe('m.yaml:13:5: layers[1].tar'.replace('m.yaml', FILE));
  });

  it('takes the timestamp from the manifest, else SOURCE_DATE_EPOCH, else 0', () => {
    expect(parseManifest('ref: a\ntimestamp: 1700000000\n', FILE, { SOURCE_DATE_EPOCH: '5' }).timestamp).toBe(1700000000);
    const sde = parseManifest('ref: a\n', FILE, { SOURCE_DATE_EPOCH: '1234' });
    expect([sde.timestamp, sde.timestampSource]).toEqual([1234, 'SOURCE_DATE_EPOCH']);
    const none = parseManifest('ref: a\n', FILE, {});
    expect([none.timestamp, none.timestampSource]).toEqual([0, 'default']);
    expect(() => parseManifest('ref: a\n', FILE, { SOURCE_DATE_EPOCH: 'yesterday' })).toThrow(/SOURCE_DATE_EPOCH/);
  });
});

describe('manifest: errors name the file, line, key and what is expected', () => {
  it('broken YAML', () => {
    const e = problem('ref: a\nlayers:\n  - dir: x\n   - tar: y\n');
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toMatch(/^m\.yaml:4:\d+: not valid YAML: /);
  });

  it('duplicate keys', () => {
    const e = problem('ref: a\nref: b\n');
    expect(e.message).toMatch(/^m\.yaml:2:1: not valid YAML: .*unique/i);
  });

  it('an unknown top-level key, with the keys allowed there', () => {
    const e = problem('ref: a\nlayer:\n  - dir: x\n');
    expect(e.message).toBe("m.yaml:2:1: layer: unknown key 'layer'; expected one of: ref, version, subject, body, timestamp, metadata, base, layers, remove, files, symlinks, groups, users, units, kargs, postprocess");
  });

  it('an unknown key deep inside a list item', () => {
    const e = problem('ref: a\nfiles:\n  - path: /x\n    content: y\n  - path: /z\n    contents: w\n');
    expect(e.message).toBe("m.yaml:6:5: files[1].contents: unknown key 'contents'; expected one of: path, content, source, mode, owner");
  });

  it('a missing required key', () => {
    const e = problem('version: "1"\n');
    expect(e.message).toBe('m.yaml:1:1: ref: missing; expected a string');
  });

  it('a wrong type names what it got', () => {
    expect(problem('ref: a\nlayers: {dir: x}\n').message).toBe('m.yaml:2:1: layers: expected a list, got a mapping');
    expect(problem('ref: a\nversion: 1.5\n').message).toBe('m.yaml:2:1: version: expected a string, got number 1.5');
  });

  it('an unquoted mode, which YAML would read as a decimal number', () => {
    const e = problem('ref: a\nfiles:\n  - path: /x\n    content: y\n    mode: 0644\n');
    expect(e.message).toMatch(/^m\.yaml:5:5: files\[0\]\.mode: expected an octal mode in quotes/);
  });

  it('a layer with no kind or two kinds', () => {
    expect(problem('ref: a\nlayers:\n  - platform: linux/amd64\n').message).toMatch(/^m\.yaml:3:5: layers\[0\]: a layer needs one of: dir, tar, deb, oci/);
    expect(problem('ref: a\nlayers:\n  - dir: x\n    tar: y\n').message).toBe('m.yaml:3:5: layers[0]: a layer takes one of dir, tar, deb, oci, not several (dir and tar)');
  });

  it('a base with two sources', () => {
    expect(problem('ref: a\nbase:\n  ref: b\n  dir: c\n').message).toBe('m.yaml:2:1: base: base takes one of ref, commit, dir, tar, debootstrap, not several (ref and dir)');
  });

  it('a bad ref name, timestamp, karg, unit, user name and debootstrap variant', () => {
    expect(problem('ref: "a b"\n').message).toMatch(/^m\.yaml:1:1: ref: invalid ref name/);
    expect(problem('ref: a\ntimestamp: next tuesday\n').message).toMatch(/^m\.yaml:2:1: timestamp: cannot read timestamp/);
    expect(problem('ref: a\nkargs: ["ostree=/x"]\n').message).toMatch(/^m\.yaml:2:9: kargs\[0\]: kernel argument 'ostree=\/x' sets ostree=/);
    expect(problem('ref: a\nunits:\n  enable: [sshd]\n').message).toMatch(/^m\.yaml:3:12: units\.enable\[0\]: expected a systemd unit name/);
    expect(problem('ref: a\nusers:\n  - {name: Alice, uid: 1000}\n').message).toMatch(/^m\.yaml:3:\d+: users\[0\]\.name: expected a user or group name/);
    expect(problem('ref: a\nbase:\n  debootstrap: {suite: bookworm, variant: tiny}\n').message).toMatch(/base\.debootstrap\.variant: expected one of: minbase, buildd, fakechroot/);
  });

  it('conflicting inputs: one path twice, version twice, a unit enabled and masked, a uid twice', () => {
    expect(problem('ref: a\nfiles:\n  - {path: /etc/x, content: a}\nsymlinks:\n  - {path: etc/x, target: y}\n').message).toBe('m.yaml:5:6: symlinks[0].path: /etc/x is also set by files[0].path; give each path once');
    expect(problem('ref: a\nversion: "1"\nmetadata:\n  version: "2"\n').message).toMatch(/^m\.yaml:4:3: metadata\.version: conflicts with the top-level 'version'/);
    expect(problem('ref: a\nunits:\n  enable: [a.service]\n  mask: [a.service]\n').message).toMatch(/^m\.yaml:4:\d+: units\.mask\[0\]: a\.service is also in units\.enable/);
    expect(problem('ref: a\nusers:\n  - {name: a, uid: 5}\n  - {name: b, uid: 5}\n').message).toMatch(/^m\.yaml:4:\d+: users\[1\]\.uid: uid 5 is also given by users\[0\]/);
  });

  it("a file with both content and source, or neither; a path with '..'", () => {
    expect(problem('ref: a\nfiles:\n  - {path: /x, content: a, source: b}\n').message).toMatch(/files\[0\]: a file takes 'content' or 'source', not both/);
    expect(problem('ref: a\nfiles:\n  - {path: /x}\n').message).toMatch(/files\[0\]: a file needs 'content'/);
    expect(problem('ref: a\nremove: [../etc]\n').message).toMatch(/^m\.yaml:2:10: remove\[0\]: expected a path inside the tree/);
  });

  it('a manifest that is not a mapping', () => {
    expect(problem('- a\n- b\n').message).toBe('m.yaml:1:1: (top level): expected a mapping of keys (ref, base, layers, ...), got a list');
  });
});
