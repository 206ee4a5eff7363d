// The tarball importer: the pure reader (core/tar.ts), path safety, and
// commits of real GNU tar archives and hand-made hostile ones.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sh, tmpDir } from '../helpers/fixtures.js';
import { StrataError } from '../../src/errors.js';
import { type Checksum, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../src/core/objects.js';
import { type TarEntry, type TarEvent, TarReader, parseNumeric, safeTarPath } from '../../src/core/tar.js';
import { commit, type CommitOptions, type CommitResult } from '../../src/repo/commit.js';
import { Repo } from '../../src/repo/repo.js';
import { readRef } from '../../src/repo/refs.js';
import { looksLikeTarball, readSourceTar } from '../../src/repo/source-tar.js';
import { newStats, type StageFn } from '../../src/repo/mtree.js';
import type { ContentJob } from '../../src/repo/stage-content.js';
import { codeOf } from '../helpers/errors.js';

// The trees here are tiny: one worker thread starts faster and hashes them as quickly.
process.env.STRATA_WORKERS ??= '1';

// ------------------------------------------------------------ hand-made tars

interface RawEntry {
  name: string | Buffer;
  type?: string;
  data?: Buffer | string;
  /** Size field when it must differ from data's length. */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  prefix?: string;
  /** Write this uid as base-256 (GNU) instead of octal. */
  base256Uid?: boolean;
  format?: 'posix' | 'gnu' | 'v7';
}

function octal(h: Buffer, value: number, at: number, len: number): void {
  h.write(value.toString(8).padStart(len - 1, '0') + '\0', at, len, 'latin1');
}

function rawHeader(e: RawEntry): Buffer {
  const h = Buffer.alloc(512);
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data ?? Buffer.alloc(0);
  (typeof e.name === 'string' ? Buffer.from(e.name) : e.name).copy(h, 0, 0, 100);
  octal(h, e.mode ?? 0o644, 100, 8);
  if (e.base256Uid) {
    h[108] = 0x80;
    h.writeUIntBE(e.uid ?? 0, 110, 6);
  } else {
    octal(h, e.uid ?? 0, 108, 8);
  }
  octal(h, e.gid ?? 0, 116, 8);
  octal(h, e.size ?? data.length, 124, 12);
  octal(h, 0, 136, 12);
  h.write(e.type ?? '0', 156, 1, 'latin1');
  if (e.linkname) h.write(e.linkname, 157, 100);
  const format = e.format ?? 'posix';
  if (format === 'posix') h.write('ustar\u000000', 257, 8, 'latin1');
  if (format === 'gnu') h.write('ustar  \u0000', 257, 8, 'latin1');
  if (e.prefix) h.write(e.prefix, 345, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

function entry(e: RawEntry): Buffer {
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data ?? Buffer.alloc(0);
  return Buffer.concat([rawHeader(e), pad(data)]);
}

/** A pax record: LEN counts the whole record's bytes, LEN's own digits included. */
function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function pax(records: [string, Buffer | string][], type: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return entry({ name: 'PaxHeader', type, data: body });
}

function tarOf(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

// ------------------------------------------------------------------ helpers

function parseAll(buf: Buffer, chunk = buf.length): { entries: TarEntry[]; data: Map<string, Buffer>; events: TarEvent['kind'][] } {
  const r = new TarReader();
  const entries: TarEntry[] = [];
  const data = new Map<string, Buffer>();
  const events: TarEvent['kind'][] = [];
  let current = '';
  for (let i = 0; i < buf.length; i += chunk) {
    for (const ev of r.push(buf.subarray(i, i + chunk))) {
      events.push(ev.kind);
      if (ev.kind === 'entry') {
        entries.push(ev.entry);
        current = ev.entry.path;
        data.set(current, Buffer.alloc(0));
      } else if (ev.kind === 'data') {
        data.set(current, Buffer.concat([data.get(current) as Buffer, ev.bytes]));
      }
    }
  }
  r.end();
  return { entries, data, events };
}

interface Node {
  kind: 'dir' | 'file' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  xattrs: Record<string, string>;
  content?: string;
  target?: string;
  checksum?: Checksum;
}

/** Every path of a commit ('' is the root) with its metadata and content. */
function readTree(repo: Repo, id: Checksum): Map<string, Node> {
  const out = new Map<string, Node>();
  const hexXattrs = (xs: { name: string; value: Buffer }[]) => Object.fromEntries(xs.map((x) => [x.name, x.value.toString('hex')]));
  const walk = (tree: Checksum, meta: Checksum, prefix: string) => {
    const m = repo.loadDirMeta(meta);
    out.set(prefix, { kind: 'dir', mode: m.mode, uid: m.uid, gid: m.gid, xattrs: hexXattrs(m.xattrs) });
    const t = repo.loadDirTree(tree);
    for (const f of t.files) {
      const { meta: fm, content } = repo.loadFile(f.checksum);
      const isLink = (fm.mode & S_IFMT) === S_IFLNK;
      out.set(prefix ? `${prefix}/${f.name}` : f.name, {
        kind: isLink ? 'symlink' : 'file',
        mode: fm.mode,
        uid: fm.uid,
        gid: fm.gid,
        xattrs: hexXattrs(fm.xattrs),
        content: isLink ? undefined : content?.toString('utf8'),
        target: isLink ? fm.symlinkTarget : undefined,
        checksum: f.checksum,
      });
    }
    for (const d of t.dirs) walk(d.tree, d.meta, prefix ? `${prefix}/${d.name}` : d.name);
  };
  const c = repo.loadCommit(id);
  walk(c.rootTree, c.rootMeta, '');
  return out;
}

async function commitTar(source: string, opts: Partial<CommitOptions> = {}): Promise<{ repo: Repo; result: CommitResult; tree: Map<string, Node> }> {
  const dir = tmpDir('tar-unit-repo-');
  Repo.init(dir, 'archive');
  const result = await commit({ repo: dir, branch: 'test', source, timestamp: 0, bindings: false, ...opts });
  const repo = Repo.open(dir);
  return { repo, result, tree: readTree(repo, result.commit) };
}

/** Commits and expects a StrataError; returns it, and checks nothing was left on the branch. */
async function commitFails(source: string, opts: Partial<CommitOptions> = {}): Promise<StrataError> {
  const dir = tmpDir('tar-unit-repo-');
  Repo.init(dir, 'archive');
  try {
    await commit({ repo: dir, branch: 'test', source, timestamp: 0, bindings: false, ...opts });
  } catch (err) {
    expect(err).toBeInstanceOf(StrataError);
    expect(readRef(Repo.open(dir), 'test')).toBeNull();
    expect((err as Error).message).not.toContain('\n');
    return err as StrataError;
  }
  throw new Error('commit succeeded; expected an error');
}

function writeTmp(name: string, data: Buffer): string {
  const f = path.join(tmpDir('tar-unit-'), name);
  fs.writeFileSync(f, data);
  return f;
}

/** Builds a source tree, then runs GNU tar in it: `tar ARGS -cpf OUT -C SRC MEMBERS`. */
function gnuTar(build: (src: string) => void, args: string[] = [], members: string[] = ['.'], name = 't.tar'): string {
  const dir = tmpDir('tar-unit-');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  build(src);
  const out = path.join(dir, name);
  sh('tar', ['--numeric-owner', ...args, '-cpf', out, '-C', src, ...members]);
  return out;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}


// --------------------------------------------------------------- path safety

describe('safeTarPath', () => {
  it('strips leading / and ./ (absolute paths become relative)', () => {
    expect(safeTarPath('/etc/passwd')).toEqual(['etc', 'passwd']);
    expect(safeTarPath('///etc/passwd')).toEqual(['etc', 'passwd']);
    expect(safeTarPath('./usr/bin/')).toEqual(['usr', 'bin']);
    expect(safeTarPath('/./././a')).toEqual(['a']);
  });

  it('maps ., ./ and / to the root', () => {
    for (const p of ['.', './', '/', '', './/']) expect(safeTarPath(p)).toEqual([]);
  });

  it('rejects ../ traversal in tar entry names', () => {
    for (const p of ['../x', 'a/../../x', '/../x', './..', '..', 'a/..', 'a/b/../../../etc/passwd']) {
      expect(codeOf(() => safeTarPath(p)), p).toBe('UNSAFE_PATH');
    }
  });

  it('rejects empty and . components after the leading ones are stripped', () => {
    for (const p of ['a//b', 'a/./b', 'a/.']) expect(codeOf(() => safeTarPath(p)), p).toBe('UNSAFE_PATH');
  });

  it('rejects NUL in entry names (truncation tricks)', () => {
    expect(codeOf(() => safeTarPath('safe\0/../../etc/passwd'))).toBe('UNSAFE_PATH');
    expect(codeOf(() => safeTarPath('a\0'))).toBe('UNSAFE_PATH');
  });
});

// ------------------------------------------------------------ the pure reader

describe('TarReader', () => {
  it('reads ustar entries, their data and the ustar prefix field', () => {
    const buf = tarOf(
      entry({ name: 'dir/', type: '5', mode: 0o755 }),
      entry({ name: 'file', data: 'hello', mode: 0o4755, uid: 12, gid: 34 }),
      entry({ name: 'name', prefix: 'some/long/prefix', data: 'p' }),
      entry({ name: 'link', type: '2', linkname: 'file', mode: 0o777 }),
    );
    const { entries, data } = parseAll(buf);
    expect(entries.map((e) => [e.path, e.type, e.mode, e.uid, e.gid, e.size, e.linkpath])).toEqual([
      ['dir/', 'directory', 0o755, 0, 0, 0, ''],
      ['file', 'file', 0o4755, 12, 34, 5, ''],
      ['some/long/prefix/name', 'file', 0o644, 0, 0, 1, ''],
      ['link', 'symlink', 0o777, 0, 0, 0, 'file'],
    ]);
    expect(data.get('file')?.toString()).toBe('hello');
  });

  it('keeps binary pax xattr values byte for byte (NUL, 0xff, newline, =)', () => {
    const value = Buffer.from([0x00, 0xff, 0x01, 0x0a, 0x3d, 0x00]);
    const buf = tarOf(pax([['SCHILY.xattr.user.bin', value], ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2])]]), entry({ name: 'f', data: 'x' }));
    const [e] = parseAll(buf).entries;
    expect(e.xattrs.map((x) => [x.name, x.value.toString('hex')])).toEqual([
      ['user.bin', value.toString('hex')],
      ['security.capability', '01000002'],
    ]);
  });

  it('applies pax path, linkpath, size, uid, gid and mode over the header', () => {
    const long = 'p/'.repeat(80) + 'file';
    const buf = tarOf(
      pax([['path', long], ['uid', '4000000000'], ['gid', '7'], ['mode', '4711'], ['size', '3']]),
      entry({ name: 'short', data: 'abc', size: 0 }),
      pax([['linkpath', 'l/'.repeat(70) + 'target']]),
      entry({ name: 'sym', type: '2', linkname: 'short' }),
    );
    const { entries, data } = parseAll(buf);
    expect(entries[0]).toMatchObject({ path: long, uid: 4000000000, gid: 7, mode: 0o4711, size: 3 });
    expect(data.get(long)?.toString()).toBe('abc');
    expect(entries[1].linkpath).toBe('l/'.repeat(70) + 'target');
  });

  it('applies pax globals to every later entry; x records win; an empty x value falls back to the header', () => {
    const buf = tarOf(
      pax([['uid', '5'], ['SCHILY.xattr.user.g', 'global']], 'g'),
      entry({ name: 'a', uid: 1 }),
      pax([['uid', '6'], ['SCHILY.xattr.user.g', 'own']]),
      entry({ name: 'b', uid: 1 }),
      pax([['uid', '']]),
      entry({ name: 'c', uid: 1 }),
    );
    const { entries } = parseAll(buf);
    expect(entries.map((e) => [e.path, e.uid, e.xattrs.map((x) => x.value.toString()).join()])).toEqual([
      ['a', 5, 'global'],
      ['b', 6, 'own'],
      ['c', 1, 'global'],
    ]);
  });

  it('reads GNU long names and long link targets (L, K)', () => {
    const longName = 'd/'.repeat(120) + 'name';
    const longLink = 't/'.repeat(90) + 'target';
    const buf = tarOf(
      entry({ name: '././@LongLink', type: 'L', data: longName + '\0', format: 'gnu' }),
      entry({ name: longName.slice(0, 100), data: 'x', format: 'gnu' }),
      entry({ name: '././@LongLink', type: 'K', data: longLink + '\0', format: 'gnu' }),
      entry({ name: 'sym', type: '2', linkname: longLink.slice(0, 100), format: 'gnu' }),
    );
    const { entries } = parseAll(buf);
    expect(entries.map((e) => [e.path, e.linkpath])).toEqual([[longName, ''], ['sym', longLink]]);
  });

  it('reads base-256 numbers', () => {
    expect(parseNumeric(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05]), 'size')).toBe(0x0102030405);
    const [e] = parseAll(tarOf(entry({ name: 'f', uid: 3_000_000_000, base256Uid: true, format: 'gnu' }))).entries;
    expect(e.uid).toBe(3_000_000_000);
    expect(codeOf(() => parseNumeric(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'uid'))).toBe('TAR_MALFORMED');
  });

  it('treats unknown types as regular files and v7 names ending in / as directories', () => {
    const { entries } = parseAll(tarOf(entry({ name: 'odd', type: 'Z', data: 'z' }), entry({ name: 'old/', type: '0', format: 'v7' })));
    expect(entries.map((e) => e.type)).toEqual(['file', 'directory']);
  });

  it('gives the same events when fed one byte at a time', () => {
    const buf = tarOf(pax([['SCHILY.xattr.user.a', Buffer.from([0, 1])]]), entry({ name: 'a', data: 'x'.repeat(700) }), entry({ name: 'b/', type: '5' }));
    const whole = parseAll(buf);
    const bytewise = parseAll(buf, 1);
    expect(bytewise.entries).toEqual(whole.entries);
    expect(bytewise.data).toEqual(whole.data);
    expect(bytewise.events.filter((k) => k !== 'data')).toEqual(whole.events.filter((k) => k !== 'data'));
  });

  it('refuses a bad header checksum', () => {
    const buf = tarOf(entry({ name: 'f', data: 'x' }));
    buf[0] ^= 0x01;
    expect(codeOf(() => parseAll(buf))).toBe('TAR_MALFORMED');
  });

  it('refuses archives cut short: inside a header, inside data, or with no end marker', () => {
    const buf = tarOf(entry({ name: 'f', data: 'x'.repeat(1000) }));
    expect(codeOf(() => parseAll(buf.subarray(0, 300)))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(buf.subarray(0, 900)))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(buf.subarray(0, 512 + 1024)))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(pax([['path', 'x']])))).toBe('TAR_MALFORMED');
  });

  it('refuses malformed pax records and oversized extended headers', () => {
    const bad = (body: string) => tarOf(entry({ name: 'PaxHeader', type: 'x', data: body }), entry({ name: 'f' }));
    expect(codeOf(() => parseAll(bad('99 path=x\n')))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(bad('abc path=x\n')))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(bad('9 pathx\n\n')))).toBe('TAR_MALFORMED');
    expect(codeOf(() => parseAll(bad('12 uid=-1\n\n'.slice(0, 11) + '\n')))).toBe('TAR_MALFORMED');
    const huge = tarOf(rawHeader({ name: 'PaxHeader', type: 'x', size: 1024 * 1024 * 1024 }));
    expect(codeOf(() => parseAll(huge))).toBe('TAR_MALFORMED');
  });

  it('never throws anything but a StrataError on corrupted input', () => {
    const good = tarOf(
      pax([['SCHILY.xattr.user.a', Buffer.from([0, 255])], ['path', 'p/q']]),
      entry({ name: 'x', data: 'data'.repeat(200) }),
      entry({ name: '././@LongLink', type: 'L', data: 'long\0', format: 'gnu' }),
      entry({ name: 'long', format: 'gnu' }),
      entry({ name: 'h', type: '1', linkname: 'x' }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(good.length), (edits, cut) => {
        const buf = Buffer.from(good);
        for (const [at, v] of edits) buf[at] = v;
        const code = codeOf(() => parseAll(buf.subarray(0, cut)));
        return code === undefined || code === 'TAR_MALFORMED' || code === 'UNSAFE_PATH' || code === 'UNSUPPORTED_FILE';
      }),
      { numRuns: 300 },
    );
  });
});

// ------------------------------------------------------- detecting a tarball

describe('looksLikeTarball', () => {
  it('decides by content: tar header checksum or compression magic; never a directory', () => {
    const plain = gnuTar((s) => fs.writeFileSync(path.join(s, 'f'), 'x'));
    const dir = path.dirname(plain);
    sh('gzip', ['-k', plain]);
    sh('xz', ['-k', plain]);
    sh('zstd', ['-q', '-k', plain]);
    for (const f of [plain, `${plain}.gz`, `${plain}.xz`, `${plain}.zst`]) expect(looksLikeTarball(f), f).toBe(true);
    const renamed = path.join(dir, 'archive.bin');
    fs.copyFileSync(plain, renamed);
    expect(looksLikeTarball(renamed)).toBe(true);
    expect(looksLikeTarball(writeTmp('empty.tar', Buffer.alloc(10240)))).toBe(true);
    expect(looksLikeTarball(writeTmp('notes.tar', Buffer.from('not a tarball at all\n'.repeat(50))))).toBe(false);
    expect(looksLikeTarball(writeTmp('zero', Buffer.alloc(0)))).toBe(false);
    expect(looksLikeTarball(path.join(dir, 'src'))).toBe(false);
    expect(looksLikeTarball(path.join(dir, 'missing.tar'))).toBe(false);
  });
});

// -------------------------------------------------- commits of GNU tar archives

describe('commit from a GNU tar archive', () => {
  it('records files, directories, symlinks, hard links, modes and owners', async () => {
    const file = gnuTar((s) => {
      fs.mkdirSync(path.join(s, 'usr/bin'), { recursive: true });
      fs.writeFileSync(path.join(s, 'usr/bin/tool'), '#!/bin/sh\n');
      fs.chmodSync(path.join(s, 'usr/bin/tool'), 0o4755);
      fs.linkSync(path.join(s, 'usr/bin/tool'), path.join(s, 'usr/bin/tool-again'));
      fs.symlinkSync('usr/bin', path.join(s, 'bin'));
      fs.writeFileSync(path.join(s, 'owned'), 'mine\n');
      fs.chownSync(path.join(s, 'owned'), 1000, 1001);
      fs.writeFileSync(path.join(s, 'empty'), '');
      fs.mkdirSync(path.join(s, 'tmp'));
      fs.chmodSync(path.join(s, 'tmp'), 0o1777);
      fs.mkdirSync(path.join(s, 'srv'));
      fs.chmodSync(path.join(s, 'srv'), 0o2750);
      fs.chownSync(path.join(s, 'srv'), 7, 8);
      fs.chmodSync(s, 0o750);
    });
    const { tree, result } = await commitTar(file);
    expect(tree.get('')).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o750, uid: 0, gid: 0 });
    expect(tree.get('usr/bin/tool')).toMatchObject({ kind: 'file', mode: S_IFREG | 0o4755, content: '#!/bin/sh\n' });
    expect(tree.get('usr/bin/tool-again')?.checksum).toBe(tree.get('usr/bin/tool')?.checksum);
    expect(tree.get('bin')).toMatchObject({ kind: 'symlink', mode: S_IFLNK | 0o777, target: 'usr/bin' });
    expect(tree.get('owned')).toMatchObject({ uid: 1000, gid: 1001, content: 'mine\n', mode: S_IFREG | 0o644 });
    expect(tree.get('empty')).toMatchObject({ kind: 'file', content: '' });
    expect(tree.get('tmp')).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o1777 });
    expect(tree.get('srv')).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o2750, uid: 7, gid: 8 });
    expect(result.stats).toMatchObject({ files: 4, dirs: 5, symlinks: 1, contentBytes: 25, skipped: [] });
  });

  it('keeps xattrs with binary values on files and directories', async () => {
    const file = gnuTar((s) => {
      fs.writeFileSync(path.join(s, 'f'), 'x');
      sh('setfattr', ['-n', 'user.bin', '-v', '0x00ff01', path.join(s, 'f')]);
      fs.mkdirSync(path.join(s, 'd'));
      sh('setfattr', ['-n', 'user.dir', '-v', '0x0a3d00', path.join(s, 'd')]);
    }, ['--format=posix', '--xattrs', '--xattrs-include=*']);
    const { tree } = await commitTar(file);
    expect(tree.get('f')?.xattrs).toEqual({ 'user.bin': '00ff01' });
    expect(tree.get('d')?.xattrs).toEqual({ 'user.dir': '0a3d00' });
    const bare = await commitTar(file, { noXattrs: true });
    expect(bare.tree.get('f')?.xattrs).toEqual({});
  });

  it('reads names and link targets longer than 100 bytes (GNU and pax formats)', async () => {
    const deep = 'very-long-directory-name-'.repeat(3);
    const longName = `${deep}/${'f'.repeat(120)}`;
    for (const format of ['gnu', 'posix']) {
      const file = gnuTar((s) => {
        fs.mkdirSync(path.join(s, deep));
        fs.writeFileSync(path.join(s, longName), 'long');
        fs.symlinkSync(longName, path.join(s, 'to-long'));
      }, [`--format=${format}`]);
      const { tree } = await commitTar(file);
      expect(tree.get(longName), format).toMatchObject({ kind: 'file', content: 'long' });
      expect(tree.get('to-long'), format).toMatchObject({ kind: 'symlink', target: longName });
    }
  });

  it('gives the same commit for plain, gzip, xz and zstd', async () => {
    const plain = gnuTar((s) => {
      fs.writeFileSync(path.join(s, 'a'), 'a'.repeat(100_000));
      fs.mkdirSync(path.join(s, 'd'));
      fs.writeFileSync(path.join(s, 'd/b'), 'b');
    });
    sh('gzip', ['-k', plain]);
    sh('xz', ['-k', plain]);
    sh('zstd', ['-q', '-k', plain]);
    const ids = new Set<string>();
    for (const f of [plain, `${plain}.gz`, `${plain}.xz`, `${plain}.zst`]) ids.add((await commitTar(f)).result.commit);
    expect(ids.size).toBe(1);
  });

  it('creates missing parents as 040755 root:root, and the root too when there is no . entry', async () => {
    const file = gnuTar((s) => {
      fs.mkdirSync(path.join(s, 'a/b'), { recursive: true });
      fs.writeFileSync(path.join(s, 'a/b/c'), 'c');
      fs.chownSync(path.join(s, 'a/b/c'), 5, 6);
      fs.chmodSync(path.join(s, 'a'), 0o700);
    }, ['--no-recursion'], ['a/b/c']);
    const { tree, result } = await commitTar(file);
    for (const p of ['', 'a', 'a/b']) expect(tree.get(p), p).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o755, uid: 0, gid: 0, xattrs: {} });
    expect(tree.get('a/b/c')).toMatchObject({ uid: 5, gid: 6, content: 'c' });
    expect(result.stats.dirs).toBe(3);
    const owned = await commitTar(file, { ownerUid: 1000, ownerGid: 1000 });
    for (const p of ['', 'a', 'a/b', 'a/b/c']) expect(owned.tree.get(p), p).toMatchObject({ uid: 1000, gid: 1000 });
  });

  it('strips leading / from absolute member names', async () => {
    const dir = tmpDir('tar-unit-');
    const f = path.join(dir, 'abs-file');
    fs.writeFileSync(f, 'abs');
    const out = path.join(dir, 'abs.tar');
    sh('tar', ['-P', '--no-recursion', '-cf', out, f]);
    const { tree } = await commitTar(out);
    expect(tree.get(f.slice(1))).toMatchObject({ kind: 'file', content: 'abs' });
  });

  it('reads base-256 owners (uid beyond 8^7)', async () => {
    const file = gnuTar((s) => fs.writeFileSync(path.join(s, 'f'), 'x'), ['--format=gnu', '--owner=3000000', '--group=4000000']);
    const { tree } = await commitTar(file);
    expect(tree.get('f')).toMatchObject({ uid: 3000000, gid: 4000000 });
  });

  it('refuses a fifo naming its path, or skips it with skipSpecial', async () => {
    const file = gnuTar((s) => {
      fs.writeFileSync(path.join(s, 'f'), 'x');
      sh('mkfifo', [path.join(s, 'pipe')]);
    });
    const err = await commitFails(file);
    expect(err.code).toBe('UNSUPPORTED_FILE');
    expect(err.message).toContain('pipe');
    const { tree, result } = await commitTar(file, { skipSpecial: true });
    expect(tree.has('pipe')).toBe(false);
    expect(result.stats.skipped).toEqual(['pipe']);
  });

  it('spills an entry over 16 MiB to a temp file and removes it afterwards', async () => {
    const big = Buffer.alloc(17 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const file = gnuTar((s) => {
      fs.writeFileSync(path.join(s, 'big'), big);
      fs.writeFileSync(path.join(s, 'small'), 'small');
    });
    // A private temp directory, so that other processes' temp files cannot confuse the check.
    const privateTmp = tmpDir('tar-unit-tmp-');
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    try {
      const { repo, tree, result } = await commitTar(file);
      const { content } = repo.loadFile(tree.get('big')?.checksum as Checksum);
      expect(content?.equals(big)).toBe(true);
      expect(result.stats.contentBytes).toBe(big.length + 5);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(fs.readdirSync(privateTmp).filter((n) => n.startsWith('strata-tar-'))).toEqual([]);
  });
});

// ----------------------------------------------------- hand-made archives

describe('commit from a hand-made archive', () => {
  it('rejects ../ traversal in tar entry names', async () => {
    for (const name of ['../x', 'a/../../x', './../../etc/passwd']) {
      const err = await commitFails(writeTmp('evil.tar', tarOf(entry({ name: 'a/', type: '5' }), entry({ name, data: 'pwned' }))));
      expect(err.code, name).toBe('UNSAFE_PATH');
      expect(err.message).toContain(name);
    }
  });

  it('rejects ../ traversal in hard link targets', async () => {
    const err = await commitFails(writeTmp('evil.tar', tarOf(entry({ name: 'h', type: '1', linkname: '../../etc/shadow' }))));
    expect(err.code).toBe('UNSAFE_PATH');
  });

  it('rejects a path through an earlier symlink (symlink escape)', async () => {
    const buf = tarOf(entry({ name: 'etc', type: '2', linkname: '/etc', mode: 0o777 }), entry({ name: 'etc/cron.d/evil', data: 'x' }));
    const err = await commitFails(writeTmp('evil.tar', buf));
    expect(err.code).toBe('UNSAFE_PATH');
    expect(err.message).toContain('etc/cron.d/evil');
  });

  it('rejects NUL smuggled into a pax path or a GNU long name', async () => {
    const viaPax = tarOf(pax([['path', 'ok\0/../../x']]), entry({ name: 'ok', data: 'x' }));
    expect((await commitFails(writeTmp('nul.tar', viaPax))).code).toBe('UNSAFE_PATH');
    const viaLong = tarOf(entry({ name: '././@LongLink', type: 'L', data: 'a\0b', format: 'gnu' }), entry({ name: 'a', format: 'gnu' }));
    expect((await commitFails(writeTmp('nul.tar', viaLong))).code).toBe('UNSAFE_PATH');
  });

  it('rejects names that are not UTF-8', async () => {
    const err = await commitFails(writeTmp('latin1.tar', tarOf(entry({ name: Buffer.from([0x63, 0x61, 0x66, 0xe9]), data: 'x' }))));
    expect(err.code).toBe('UNSAFE_PATH');
  });

  it('refuses a device node naming its path, or skips it with skipSpecial', async () => {
    const buf = tarOf(entry({ name: 'dev/', type: '5', mode: 0o755 }), entry({ name: 'dev/null', type: '3', mode: 0o666 }), entry({ name: 'dev/sda', type: '4' }), entry({ name: 'f', data: 'x' }));
    const file = writeTmp('dev.tar', buf);
    const err = await commitFails(file);
    expect(err.code).toBe('UNSUPPORTED_FILE');
    expect(err.message).toContain('dev/null');
    const { tree, result } = await commitTar(file, { skipSpecial: true });
    expect([...tree.keys()].sort()).toEqual(['', 'dev', 'f']);
    expect(result.stats.skipped).toEqual(['dev/null', 'dev/sda']);
  });

  it('fails on a hard link that names no earlier entry, or a directory', async () => {
    const later = tarOf(entry({ name: 'h', type: '1', linkname: 'f' }), entry({ name: 'f', data: 'x' }));
    expect((await commitFails(writeTmp('hl.tar', later))).code).toBe('TAR_MALFORMED');
    const toDir = tarOf(entry({ name: 'd', type: '5' }), entry({ name: 'h', type: '1', linkname: 'd' }));
    expect((await commitFails(writeTmp('hl.tar', toDir))).code).toBe('TAR_MALFORMED');
  });

  it('gives a hard link the content and metadata of the entry it names, as it was then', async () => {
    const buf = tarOf(
      entry({ name: 'f', data: 'one', mode: 0o640, uid: 3 }),
      entry({ name: 'h', type: '1', linkname: './f', mode: 0o777, uid: 9 }),
      entry({ name: 'f', data: 'two' }),
      entry({ name: 'l', type: '2', linkname: 'f' }),
      entry({ name: 'hl', type: '1', linkname: 'l' }),
    );
    const { tree, result } = await commitTar(writeTmp('hl.tar', buf));
    expect(tree.get('h')).toMatchObject({ kind: 'file', content: 'one', mode: S_IFREG | 0o640, uid: 3 });
    expect(tree.get('f')).toMatchObject({ content: 'two', mode: S_IFREG | 0o644, uid: 0 });
    expect(tree.get('hl')).toMatchObject({ kind: 'symlink', target: 'f' });
    expect(result.stats).toMatchObject({ files: 2, symlinks: 2, contentBytes: 6 });
  });

  it('lets a later entry replace an earlier one: file, directory, or either for the other', async () => {
    const buf = tarOf(
      entry({ name: 'f', data: 'old' }),
      entry({ name: 'f', data: 'new' }),
      entry({ name: 'd/', type: '5', mode: 0o700 }),
      entry({ name: 'd/keep', data: 'k' }),
      entry({ name: 'd/', type: '5', mode: 0o750, uid: 4 }),
      entry({ name: 'was-dir/', type: '5' }),
      entry({ name: 'was-dir/gone', data: 'gone' }),
      entry({ name: 'was-dir', data: 'now a file' }),
      entry({ name: 'was-file', data: 'gone too' }),
      entry({ name: 'was-file/', type: '5', mode: 0o711 }),
    );
    const { tree, result } = await commitTar(writeTmp('replace.tar', buf));
    expect(tree.get('f')?.content).toBe('new');
    expect(tree.get('d')).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o750, uid: 4 });
    expect(tree.get('d/keep')?.content).toBe('k');
    expect(tree.get('was-dir')).toMatchObject({ kind: 'file', content: 'now a file' });
    expect(tree.has('was-dir/gone')).toBe(false);
    expect(tree.get('was-file')).toMatchObject({ kind: 'dir', mode: S_IFDIR | 0o711 });
    expect(result.stats).toMatchObject({ files: 3, dirs: 3, contentBytes: 3 + 1 + 10 });
  });

  it('takes the root metadata and xattrs from a . entry', async () => {
    const buf = tarOf(pax([['SCHILY.xattr.user.root', Buffer.from([0, 1])]]), entry({ name: './', type: '5', mode: 0o711, uid: 2, gid: 3 }), entry({ name: 'f', data: 'x' }));
    const { tree } = await commitTar(writeTmp('root.tar', buf));
    expect(tree.get('')).toMatchObject({ mode: S_IFDIR | 0o711, uid: 2, gid: 3, xattrs: { 'user.root': '0001' } });
  });

  it('refuses a root entry that is not a directory', async () => {
    expect((await commitFails(writeTmp('root.tar', tarOf(entry({ name: './', data: 'x' }))))).code).toBe('TAR_MALFORMED');
  });

  it('refuses a path inside an earlier regular file', async () => {
    const err = await commitFails(writeTmp('nested.tar', tarOf(entry({ name: 'a', data: 'x' }), entry({ name: 'a/b', data: 'y' }))));
    expect(err.code).toBe('TAR_MALFORMED');
  });

  it('commits an empty archive as an empty root', async () => {
    const { tree } = await commitTar(writeTmp('empty.tar', Buffer.alloc(10240)));
    expect([...tree.entries()]).toEqual([['', { kind: 'dir', mode: S_IFDIR | 0o755, uid: 0, gid: 0, xattrs: {} }]]);
  });
});

// ------------------------------------------------------------ memory bounds

describe('readSourceTar backpressure', () => {
  it('hands each entry over in its own transferred buffer and stops reading while 64 MiB wait', async () => {
    const mib = 1024 * 1024;
    const parts: Buffer[] = [];
    for (let i = 0; i < 6; i++) parts.push(entry({ name: `f${i}`, data: Buffer.alloc(15 * mib, i) }));
    const file = writeTmp('many.tar', tarOf(...parts));
    const calls: { job: ContentJob; transfer?: ArrayBuffer[]; release: () => void }[] = [];
    const stage: StageFn = (job, transfer) =>
      new Promise<Checksum>((resolve) => calls.push({ job, transfer, release: () => resolve('0'.repeat(64) as Checksum) }));
    const stats = newStats();
    const done = readSourceTar(file, {}, stage, stats);
    await until(() => calls.length >= 4);
    await new Promise((r) => setTimeout(r, 100));
    // 4 x 15 MiB fit under 64 MiB; the fifth waits for room.
    expect(calls.length).toBe(4);
    for (const c of calls) {
      expect(c.transfer).toHaveLength(1);
      expect(c.job.data?.buffer).toBe(c.transfer?.[0]);
      expect(c.job.data?.byteLength).toBe(15 * mib);
    }
    calls[0].release();
    await until(() => calls.length === 5);
    for (let i = 1; i < 6; i++) {
      await until(() => calls.length > i);
      calls[i].release();
    }
    const root = await done;
    expect(calls.length).toBe(6);
    expect([...root.entries.keys()].sort()).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5']);
    expect(stats.bytes).toBe(6 * 15 * mib);
  });

  it('passes an entry over 16 MiB as a temp file and removes it once staged', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024 + 1, 7);
    const file = writeTmp('big.tar', tarOf(entry({ name: 'big', data: big }), entry({ name: 'small', data: 's' })));
    const seen: { source?: string; existed: boolean; size: number }[] = [];
    const stage: StageFn = async (job) => {
      seen.push({ source: job.source, existed: job.source ? fs.statSync(job.source).size === job.size : false, size: job.size });
      return '0'.repeat(64) as Checksum;
    };
    await readSourceTar(file, {}, stage, newStats());
    expect(seen.map((s) => [s.size, s.existed])).toEqual([[big.length, true], [1, false]]);
    const spilled = seen[0].source as string;
    expect(path.dirname(path.dirname(spilled))).toBe(os.tmpdir());
    expect(fs.existsSync(path.dirname(spilled))).toBe(false);
  });
});

// ------------------------------------------------------ broken archives

describe('commit from a broken archive', () => {
  const good = () => tarOf(entry({ name: 'a', data: 'a'.repeat(3000) }), entry({ name: 'b', data: 'b' }));

  it('fails with TAR_MALFORMED on a truncated archive, never a partial commit', async () => {
    // (Under 512 bytes nothing shows it was a tarball: commit calls it neither directory nor tarball.)
    expect((await commitFails(writeTmp('cut.tar', good().subarray(0, 100)))).code).toBe('SOURCE_NOT_FOUND');
    for (const cut of [512 + 1000, 512 * 8, 512 * 9 + 1]) {
      const err = await commitFails(writeTmp('cut.tar', good().subarray(0, cut)));
      expect(err.code, `cut at ${cut}`).toBe('TAR_MALFORMED');
    }
  });

  it('fails with TAR_MALFORMED on a corrupt header', async () => {
    const buf = good();
    buf[512 * 7 + 3] ^= 0x40; // the second header
    expect((await commitFails(writeTmp('bad.tar', buf))).code).toBe('TAR_MALFORMED');
  });

  it('fails with TAR_MALFORMED on truncated or corrupt gzip, xz and zstd', async () => {
    const gz = zlib.gzipSync(good());
    expect((await commitFails(writeTmp('cut.tar.gz', gz.subarray(0, gz.length - 20)))).code).toBe('TAR_MALFORMED');
    const corrupt = Buffer.from(gz);
    corrupt[gz.length - 6] ^= 0xff; // the CRC
    expect((await commitFails(writeTmp('crc.tar.gz', corrupt))).code).toBe('TAR_MALFORMED');
    const plain = writeTmp('t.tar', good());
    for (const [tool, ext] of [['xz', 'xz'], ['zstd', 'zst']]) {
      sh(tool, ['-q', '-k', plain]);
      const packed = fs.readFileSync(`${plain}.${ext}`);
      fs.writeFileSync(`${plain}.${ext}`, packed.subarray(0, packed.length >> 1));
      const err = await commitFails(`${plain}.${ext}`);
      expect(err.code, tool).toBe('TAR_MALFORMED');
      expect(err.message, tool).toContain(tool);
    }
  });

  it('names the Debian package when a decompressor is missing', async () => {
    const plain = writeTmp('t.tar', good());
    sh('xz', ['-k', plain]);
    const saved = process.env.PATH;
    process.env.PATH = tmpDir('tar-unit-empty-path-');
    try {
      const err = await commitFails(`${plain}.xz`);
      expect(err.code).toBe('TOOL_MISSING');
      expect(err.message).toContain('xz-utils');
    } finally {
      process.env.PATH = saved;
    }
  });
});
