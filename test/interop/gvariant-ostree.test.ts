// The GVariant codec and the object models against real GLib, by way of the
// `ostree` command: values go in as GVariant text (--add-metadata), GLib
// serializes them into a commit, and we must read every object ostree wrote
// and write it back to the same bytes and the same checksum.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { getAttributeSync } from '@napi-rs/xattr';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, serialize } from '../../src/core/gvariant.js';
import {
  type Checksum, S_IFLNK, S_IFMT, S_IFREG, archiveHeader, fileChecksum, metadataLookup, parseArchiveHeader, parseBareUserMeta,
  parseCommit, parseDirMeta, parseDirTree, serializeBareUserMeta, serializeCommit, serializeDirMeta, serializeDirTree, sha256,
} from '../../src/core/objects.js';
import { SPEC_VECTORS, type Typed, toGVariantText, typedArb } from '../helpers/gvariant-arbitrary.js';
import { makeTree, ostree, tmpDir } from '../helpers/fixtures.js';

const hasOstree = spawnSync('ostree', ['--version']).status === 0;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function run(args: string[]): string {
  const r = ostree(args);
  if (r.status !== 0) throw new Error(`ostree ${args.join(' ').slice(0, 300)} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Every loose object of a repo: checksum, extension and bytes. */
function objects(repo: string): { checksum: Checksum; ext: string; file: string }[] {
  const out: { checksum: Checksum; ext: string; file: string }[] = [];
  const dir = path.join(repo, 'objects');
  for (const xx of fs.readdirSync(dir)) {
    for (const name of fs.readdirSync(path.join(dir, xx))) {
      const [rest, ext] = name.split('.');
      out.push({ checksum: (xx + rest) as Checksum, ext, file: path.join(dir, xx, name) });
    }
  }
  return out;
}

const RANDOM = fc.sample(typedArb(3, { glibText: true }), { numRuns: 80, seed: 20240501 });
const BIG = ['x'.repeat(70_000), 'y'];

describe.skipIf(!hasOstree)('GVariant and objects against the real ostree', () => {
  let work: string;
  let tree: string;
  let archive: string;
  let bareUser: string;
  let commitArchive: Checksum;
  let commitBareUser: Checksum;

  beforeAll(() => {
    work = tmpDir('strata-gv-ostree-');
    tree = makeTree(path.join(work, 'tree'));
    // Names whose byte order differs from UTF-16 order, and a lone symlink to a long target.
    for (const name of ['Z', 'a', '！', '😀', '_']) fs.writeFileSync(path.join(tree, name), name);
    fs.symlinkSync('t'.repeat(300), path.join(tree, 'long-link'));
    archive = path.join(work, 'archive');
    bareUser = path.join(work, 'bare-user');
    run(['init', `--repo=${archive}`, '--mode=archive']);
    run(['init', `--repo=${bareUser}`, '--mode=bare-user']);
    const metadata = [
      '--add-metadata-string=version=1.0',
      '--add-metadata=n=@t 12',
      "--add-metadata=arr=['a','b']",
      "--add-metadata=m=@a{sv} {'k': <1>}",
      `--add-metadata=big=${toGVariantText('as', BIG)}`,
      ...SPEC_VECTORS.map((v, i) => `--add-metadata=spec${i}=${toGVariantText(v.type, v.value)}`),
      ...RANDOM.map((r, i) => `--add-metadata=rand${i}=${toGVariantText(r.type, r.value)}`),
    ];
    const common = ['commit', '--orphan', '--owner-uid=0', '--owner-gid=0', '--timestamp=2024-05-01T12:00:00Z', '-s', 'subject ü', '-m', 'body\nline 2', `--tree=dir=${tree}`, ...metadata];
    commitArchive = run([...common, `--repo=${archive}`]) as Checksum;
    commitBareUser = run([...common, `--repo=${bareUser}`]) as Checksum;
  });

  it('both repositories hold the same commit', () => {
    expect(commitBareUser).toBe(commitArchive);
  });

  it('reads the metadata GLib wrote as the values it was given', () => {
    const bytes = fs.readFileSync(path.join(archive, 'objects', commitArchive.slice(0, 2), `${commitArchive.slice(2)}.commit`));
    const c = parseCommit(bytes);
    expect(c.subject).toBe('subject ü');
    expect(c.body).toBe('body\nline 2');
    expect(c.timestamp).toBe(Date.parse('2024-05-01T12:00:00Z') / 1000);
    expect(c.parent).toBeNull();
    expect(metadataLookup(c.metadata, 'version')).toBe('1.0');
    expect(metadataLookup(c.metadata, 'n')).toBe(12n);
    expect(metadataLookup(c.metadata, 'arr')).toEqual(['a', 'b']);
    expect(metadataLookup(c.metadata, 'm')).toEqual([['k', { type: 'i', value: 1 }]]);
    expect(metadataLookup(c.metadata, 'big')).toEqual(BIG);
    SPEC_VECTORS.forEach((v, i) => expect(metadataLookup(c.metadata, `spec${i}`), v.name).toEqual(v.value));
    RANDOM.forEach((r: Typed, i) => {
      const entry = c.metadata.find(([k]) => k === `rand${i}`);
      expect(entry?.[1].type, r.type).toBe(r.type);
      expect(entry?.[1].value, `${r.type} ${toGVariantText(r.type, r.value)}`).toEqual(r.value);
    });
    // The commit is large enough for 4-byte framing offsets.
    expect(bytes.length).toBeGreaterThan(0xffff);
    expect(hex(serializeCommit(c))).toBe(hex(bytes));
  });

  it('GLib serializes the specification examples byte for byte as we do', () => {
    const bytes = fs.readFileSync(path.join(archive, 'objects', commitArchive.slice(0, 2), `${commitArchive.slice(2)}.commit`));
    for (const v of SPEC_VECTORS) {
      // Inside the a{sv}, each value is a variant: its bytes, a zero byte, its type.
      const variant = Buffer.concat([Buffer.from(v.bytes), Buffer.from([0]), Buffer.from(v.type)]);
      expect(bytes.includes(variant), v.name).toBe(true);
      expect(hex(serialize('v', { type: v.type, value: v.value }))).toBe(hex(variant));
    }
  });

  it('every archive-mode object parses and serializes back to its bytes and its name', () => {
    const all = objects(archive);
    const seen = new Set<string>();
    for (const { checksum, ext, file } of all) {
      const bytes = fs.readFileSync(file);
      seen.add(ext);
      switch (ext) {
        case 'commit':
          expect(hex(serializeCommit(parseCommit(bytes)))).toBe(hex(bytes));
          expect(hex(serialize('(a{sv}aya(say)sstayay)', parse('(a{sv}aya(say)sstayay)', bytes)))).toBe(hex(bytes));
          expect(sha256(bytes)).toBe(checksum);
          break;
        case 'dirtree':
          expect(hex(serializeDirTree(parseDirTree(bytes)))).toBe(hex(bytes));
          expect(sha256(bytes)).toBe(checksum);
          break;
        case 'dirmeta':
          expect(hex(serializeDirMeta(parseDirMeta(bytes)))).toBe(hex(bytes));
          expect(sha256(bytes)).toBe(checksum);
          break;
        case 'filez': {
          const { meta, size, bodyOffset } = parseArchiveHeader(bytes);
          expect(hex(archiveHeader(meta, size))).toBe(hex(bytes.subarray(0, bodyOffset)));
          // Symlinks and empty files have no deflate stream at all.
          const body = bytes.subarray(bodyOffset);
          const content = body.length ? zlib.inflateRawSync(body) : Buffer.alloc(0);
          expect(content.length).toBe(size);
          const isLink = (meta.mode & S_IFMT) === S_IFLNK;
          expect(fileChecksum(meta, isLink ? undefined : content), file).toBe(checksum);
          break;
        }
        default:
          throw new Error(`unexpected object ${file}`);
      }
    }
    expect([...seen].sort()).toEqual(['commit', 'dirmeta', 'dirtree', 'filez']);
    expect(all.length).toBeGreaterThan(20);
  });

  it('bare-user objects: user.ostreemeta round-trips and file checksums match their names', () => {
    let files = 0;
    for (const { checksum, ext, file } of objects(bareUser)) {
      if (ext !== 'file') continue;
      files++;
      const raw = getAttributeSync(file, 'user.ostreemeta');
      expect(raw, file).not.toBeNull();
      const meta = parseBareUserMeta(raw as Buffer);
      const content = fs.readFileSync(file);
      // bare-user stores a symlink as a regular file holding its target and a NUL.
      const isLink = (meta.mode & S_IFMT) === S_IFLNK;
      expect([S_IFREG, S_IFLNK]).toContain(meta.mode & S_IFMT);
      if (isLink) expect(content[content.length - 1]).toBe(0);
      const full = { ...meta, symlinkTarget: isLink ? content.toString('utf8', 0, content.length - 1) : '' };
      expect(hex(serializeBareUserMeta(full))).toBe(hex(raw as Buffer));
      expect(fileChecksum(full, isLink ? undefined : content)).toBe(checksum);
    }
    expect(files).toBeGreaterThan(10);
  });

  it('fileChecksum of a regular file and a symlink equals what ostree computes', () => {
    const dir = path.join(work, 'small');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
    fs.chmodSync(path.join(dir, 'hello.txt'), 0o640);
    fs.symlinkSync('hello.txt', path.join(dir, 'link'));
    const repo = path.join(work, 'small-repo');
    run(['init', `--repo=${repo}`, '--mode=archive']);
    const c = run(['commit', `--repo=${repo}`, '--orphan', '--owner-uid=1000', '--owner-gid=100', '--no-xattrs', `--tree=dir=${dir}`]);
    const listing = run(['ls', `--repo=${repo}`, '-C', c, '/hello.txt', '/link']).split('\n');
    const sumOf = (p: string) => listing.find((l) => l.includes(` ${p}`))?.split(/\s+/)[4];
    expect(fileChecksum({ uid: 1000, gid: 100, mode: S_IFREG | 0o640, symlinkTarget: '', xattrs: [] }, Buffer.from('hello\n'))).toBe(sumOf('/hello.txt'));
    expect(fileChecksum({ uid: 1000, gid: 100, mode: S_IFLNK | 0o777, symlinkTarget: 'hello.txt', xattrs: [] })).toBe(sumOf('/link'));
  });
});
