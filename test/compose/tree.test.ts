// The staging tree's resolver and the small parsers compose relies on, with
// tests named after what they defend against.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StagingTree, treeParts } from '../../src/compose/tree.js';
import { globToRegExp } from '../../src/compose/customize.js';
import { formatTmpfiles, parseTmpfiles } from '../../src/compose/assemble.js';
import { readAr } from '../../src/core/ar.js';
import { tmpDir } from '../helpers/fixtures.js';

const META = { mode: 0o644, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, xattrs: [] };

function newTree(): { tree: StagingTree; outside: string } {
  const base = tmpDir();
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  return { tree: StagingTree.create(path.join(base, 'root')), outside };
}

describe('staging tree: writes stay inside', () => {
  it('an absolute symlink on the way resolves inside the tree, as in a chroot', () => {
    const { tree } = newTree();
    tree.mkdir(['usr', 'lib'], { ...META, mode: 0o755 });
    tree.symlink(['lib'], '/usr/lib', META.uid, META.gid);
    tree.writeFile(['lib', 'x.so'], Buffer.from('so'), META);
    expect(fs.readFileSync(path.join(tree.root, 'usr/lib/x.so'), 'utf8')).toBe('so');
  });

  it('symlink-escape: a relative symlink climbing above the root is refused, nothing written outside', () => {
    const { tree, outside } = newTree();
    tree.symlink(['evil'], '../outside', META.uid, META.gid);
    expect(() => tree.writeFile(['evil', 'pwned'], Buffer.from('x'), META)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('symlink-escape: an absolute symlink to / followed by .. stays refused at the root', () => {
    const { tree } = newTree();
    tree.symlink(['up'], '/..', META.uid, META.gid);
    expect(() => tree.writeFile(['up', 'x'], Buffer.from('x'), META)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
  });

  it('symlink-loop: refused after 40 links', () => {
    const { tree } = newTree();
    tree.symlink(['a'], 'b', META.uid, META.gid);
    tree.symlink(['b'], 'a', META.uid, META.gid);
    expect(() => tree.writeFile(['a', 'x'], Buffer.from('x'), META)).toThrow(/too many levels of symlinks/);
  });

  it('final-symlink: a file replaces a symlink at its path and never writes through it', () => {
    const { tree, outside } = newTree();
    const victim = path.join(outside, 'victim');
    fs.writeFileSync(victim, 'original');
    tree.symlink(['etc-passwd'], victim, META.uid, META.gid);
    tree.writeFile(['etc-passwd'], Buffer.from('new'), META);
    expect(fs.readFileSync(victim, 'utf8')).toBe('original');
    expect(fs.lstatSync(path.join(tree.root, 'etc-passwd')).isFile()).toBe(true);
  });

  it("dotdot: '..' in a tree path is refused before anything is resolved", () => {
    expect(() => treeParts('etc/../../x')).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(treeParts('/etc//./x/')).toEqual(['etc', 'x']);
  });

  it('hardlink-outside: a hard link may only name an entry of the tree', () => {
    const { tree } = newTree();
    expect(() => tree.hardlink(['x'], ['missing'])).toThrow(expect.objectContaining({ code: 'COMPOSE_CONFLICT' }));
  });

  it('replacing a directory: an empty one gives way, one with contents is a conflict', () => {
    const { tree } = newTree();
    tree.mkdir(['empty'], { ...META, mode: 0o755 });
    tree.writeFile(['empty'], Buffer.from('f'), META);
    expect(fs.lstatSync(path.join(tree.root, 'empty')).isFile()).toBe(true);
    tree.writeFile(['full', 'child'], Buffer.from('c'), META);
    expect(() => tree.writeFile(['full'], Buffer.from('f'), META)).toThrow(expect.objectContaining({ code: 'COMPOSE_CONFLICT' }));
  });

  it('a directory entry over a directory symlink keeps the symlink (merged /usr)', () => {
    const { tree } = newTree();
    tree.mkdir(['usr', 'bin'], { ...META, mode: 0o755 });
    tree.symlink(['bin'], 'usr/bin', META.uid, META.gid);
    tree.mkdir(['bin'], { ...META, mode: 0o700 });
    expect(fs.readlinkSync(path.join(tree.root, 'bin'))).toBe('usr/bin');
  });
});

describe('globs', () => {
  it.each([
    ['usr/share/doc/*', 'usr/share/doc/x', true],
    ['usr/share/doc/*', 'usr/share/doc/x/y', false],
    ['usr/share/doc/**', 'usr/share/doc/x/y', true],
    ['usr/**/*.a', 'usr/lib/x/libz.a', true],
    ['usr/**/*.a', 'usr/libz.a', true],
    ['/etc/ssh/ssh_host_*', 'etc/ssh/ssh_host_rsa_key', true],
    ['usr/share/locale/[!e]*', 'usr/share/locale/de', true],
    ['usr/share/locale/[!e]*', 'usr/share/locale/en', false],
    ['a?c', 'abc', true],
    ['a.c', 'abc', false],
  ])('%s against %s: %s', (glob, p, match) => {
    expect(globToRegExp(glob).test(p)).toBe(match);
  });
});

describe('tmpfiles.d lines', () => {
  it('escape whitespace and backslashes and read back what they wrote', () => {
    const lines = [
      { type: 'd' as const, path: '/var/lib/with space', mode: 0o750, uid: 0, gid: 4 },
      { type: 'L' as const, path: '/var/run', uid: 0, gid: 0, arg: '/run' },
      { type: 'C' as const, path: '/var/lib/a\\b', arg: '/usr/share/factory/var/lib/a\\b' },
    ];
    const text = formatTmpfiles(lines);
    expect(text).toContain('d /var/lib/with\\x20space 0750 0 4 -\n');
    expect(parseTmpfiles(text)).toEqual(lines.sort((a, b) => (a.path < b.path ? -1 : 1)));
  });
});

describe('ar reader', () => {
  const member = (name: string, data: string) => {
    const h = Buffer.alloc(60, 0x20);
    h.write(name, 0, 'latin1');
    h.write(String(data.length), 48, 'latin1');
    h.write('`\n', 58, 'latin1');
    return Buffer.concat([h, Buffer.from(data), data.length % 2 ? Buffer.from('\n') : Buffer.alloc(0)]);
  };
  it('reads members with odd sizes padded to even', () => {
    const buf = Buffer.concat([Buffer.from('!<arch>\n'), member('debian-binary', '2.0\n'), member('odd', 'abc'), member('data.tar', 'xy')]);
    expect(readAr(buf).map((m) => [m.name, m.data.toString()])).toEqual([['debian-binary', '2.0\n'], ['odd', 'abc'], ['data.tar', 'xy']]);
  });
  it('refuses a missing magic, a bad header and a cut-short member', () => {
    expect(() => readAr(Buffer.from('not an archive'))).toThrow(expect.objectContaining({ code: 'DEB_MALFORMED' }));
    const good = Buffer.concat([Buffer.from('!<arch>\n'), member('x', 'hello')]);
    expect(() => readAr(good.subarray(0, good.length - 3))).toThrow(/cut short/);
    const bad = Buffer.from(good);
    bad[8 + 58] = 0x41;
    expect(() => readAr(bad)).toThrow(/bad member header magic/);
  });
});
