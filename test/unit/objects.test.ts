import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseType, serialize } from '../../src/core/gvariant.js';
import {
  type Checksum, type Commit, type DirMeta, type FileMeta, type Xattr,
  S_IFDIR, S_IFLNK, S_IFREG, archiveHeader, canonicalXattrs, checksumFromBytes, checksumToBytes, compareNames, fileChecksum,
  fileHeader, isChecksum, metadataLookup, objectPath, parseArchiveHeader, parseBareUserMeta, parseCommit, parseDirMeta,
  parseDirTree, parseFileHeader, parseVardict, serializeBareUserMeta, serializeCommit, serializeDirMeta, serializeDirTree,
  serializeVardict, sha256, toChecksum, validateEntryName,
} from '../../src/core/objects.js';
import { typedArb } from '../helpers/gvariant-arbitrary.js';
import { codeOf } from '../helpers/errors.js';


/** Runs `fn`; it may return, or throw a StrataError with `code`; anything else fails the test. */
function returnsOr(code: string, fn: () => unknown): boolean {
  const got = codeOf(fn);
  if (got !== undefined) expect(got).toBe(code);
  return got === undefined;
}

const C = (c: string): Checksum => toChecksum(c);
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Objects and checksums made by the real `ostree` (2022.7): `ostree commit --owner-uid=0
// --owner-gid=0 --timestamp=2024-05-01T12:00:00Z -s subj` of a tree with hello.txt
// ("hello\n", 0644), link -> hello.txt, empty (0600), xa ("x", user.b=2 then user.a=one),
// and sub/run ("#!/bin/sh\n", 0755); directories 0755. test/interop re-checks these live.
const GOLDEN = {
  dirmeta0755: C('446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488'),
  hello: C('44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b'),
  link: C('f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35'),
  empty: C('d3fa9214de0816a2cf5475da17be2036ae0eda3df526eff7c1ddee082c6e5b58'),
  xa: C('e7500eb2417e2425eb001894f15de32ada73a4bbdb5ed0f4844e6037d0583bd5'),
  run: C('60599fdf7cf9cb8925354cd74476b5ded7850eca9b6a120998125a578b6a4d4c'),
  subTree: C('58677a49c6c23efad06bc218060de1dab14071d45534539088e58934e4e0e747'),
  rootTree: C('9dae553919c863e93fd9448f9e4a7e9ccf315013bb6a46320362bc7452041c8c'),
  commit: C('b8d74c6c368191bed8f4ef27e838dd285b1fe8eac53fec5abc899e871353f4a7'),
  commitBytes:
    '6f73747265652e7265662d62696e64696e67000000000000006173131c7375626a000000000000000000000066322ec0' +
    '9dae553919c863e93fd9448f9e4a7e9ccf315013bb6a46320362bc7452041c8c446a0ef11b7cc167f3b603e585c7ee' +
    'eeb675faa412d5ec73f62988eb0b6c54885023221d1d1d',
};

const reg = (mode: number, xattrs: Xattr[] = []): FileMeta => ({ uid: 0, gid: 0, mode: S_IFREG | mode, symlinkTarget: '', xattrs });

// ------------------------------------------------------------ arbitraries

const checksumArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex') as Checksum);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const xattrName = fc.stringMatching(/^(user|security|trusted)\.[a-z0-9._-]{1,10}$/);
const xattrsArb = fc
  .uniqueArray(fc.record({ name: xattrName, value: fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)) }), { selector: (x) => x.name, maxLength: 4 });
const safeName = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).filter((s) => !s.includes('/') && !s.includes('\0') && s !== '.' && s !== '..');
const fileMetaArb: fc.Arbitrary<FileMeta> = fc.oneof(
  fc.record({ uid: u32, gid: u32, mode: fc.integer({ min: 0, max: 0o7777 }).map((m) => S_IFREG | m), symlinkTarget: fc.constant(''), xattrs: xattrsArb }),
  fc.record({ uid: u32, gid: u32, mode: fc.constant(S_IFLNK | 0o777), symlinkTarget: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).map((s) => s.replace(/\0/g, 'x')), xattrs: xattrsArb }),
);
const metadataArb = fc.array(fc.tuple(fc.string({ maxLength: 10 }), typedArb(3)).map(([k, v]) => [k, v] as [string, { type: string; value: unknown }]), { maxLength: 4 });
const commitArb: fc.Arbitrary<Commit> = fc.record({
  metadata: metadataArb,
  parent: fc.option(checksumArb, { nil: null }),
  related: fc.array(fc.tuple(fc.string({ maxLength: 8 }), checksumArb), { maxLength: 3 }),
  subject: fc.string({ unit: 'binary', maxLength: 30 }).map((s) => s.replace(/\0/g, '')),
  body: fc.string({ unit: 'binary', maxLength: 60 }).map((s) => s.replace(/\0/g, '')),
  timestamp: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  rootTree: checksumArb,
  rootMeta: checksumArb,
});

// ------------------------------------------------------------ checksums

describe('checksums', () => {
  it('accept 64 lowercase hex digits only', () => {
    expect(isChecksum(GOLDEN.commit)).toBe(true);
    for (const bad of ['', 'abc', GOLDEN.commit.toUpperCase(), GOLDEN.commit + '0', GOLDEN.commit.slice(1) + 'g']) {
      expect(isChecksum(bad)).toBe(false);
      expect(codeOf(() => toChecksum(bad))).toBe('INVALID_CHECKSUM');
      // An unchecked string must not turn into a short checksum field.
      expect(codeOf(() => checksumToBytes(bad as Checksum))).toBe('INVALID_CHECKSUM');
    }
  });

  it('convert to and from 32 bytes', () => {
    fc.assert(fc.property(checksumArb, (c) => {
      expect(checksumFromBytes(checksumToBytes(c))).toBe(c);
    }), { numRuns: 50 });
    expect(codeOf(() => checksumFromBytes(Buffer.alloc(31)))).toBe('OBJECT_MALFORMED');
    expect(codeOf(() => checksumFromBytes(Buffer.alloc(33)))).toBe('OBJECT_MALFORMED');
  });

  it('name loose objects as OSTree does', () => {
    expect(objectPath(GOLDEN.commit, 'commit', true)).toBe(`objects/b8/${GOLDEN.commit.slice(2)}.commit`);
    expect(objectPath(GOLDEN.hello, 'file', true)).toBe(`objects/44/${GOLDEN.hello.slice(2)}.filez`);
    expect(objectPath(GOLDEN.hello, 'file', false)).toBe(`objects/44/${GOLDEN.hello.slice(2)}.file`);
    expect(objectPath(GOLDEN.subTree, 'dirtree', false)).toBe(`objects/58/${GOLDEN.subTree.slice(2)}.dirtree`);
  });
});

// ---------------------------------------------------------------- dirmeta

describe('dirmeta', () => {
  it('matches the checksum ostree gives a root-owned 0755 directory', () => {
    const bytes = serializeDirMeta({ uid: 0, gid: 0, mode: S_IFDIR | 0o755, xattrs: [] });
    expect(sha256(bytes)).toBe(GOLDEN.dirmeta0755);
    // uid, gid and mode are stored big-endian.
    expect(hexOf(bytes)).toBe('00000000' + '00000000' + '000041ed');
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(u32, u32, fc.integer({ min: 0, max: 0o7777 }), xattrsArb, (uid, gid, perm, xattrs) => {
        const m: DirMeta = { uid, gid, mode: S_IFDIR | perm, xattrs };
        const bytes = serializeDirMeta(m);
        const back = parseDirMeta(bytes);
        expect(back).toEqual({ ...m, xattrs: canonicalXattrs(xattrs) });
        expect(hexOf(serializeDirMeta(back))).toBe(hexOf(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a mode that is not a directory', () => {
    for (const mode of [S_IFREG | 0o755, S_IFLNK | 0o777, 0o755]) {
      expect(codeOf(() => parseDirMeta(serializeDirMeta({ uid: 0, gid: 0, mode, xattrs: [] })))).toBe('OBJECT_MALFORMED');
    }
  });

  it('refuses owners and modes that are not 32-bit unsigned integers', () => {
    for (const bad of [{ uid: -1 }, { gid: 2 ** 32 }, { uid: 1.5 }, { mode: NaN }]) {
      expect(codeOf(() => serializeDirMeta({ uid: 0, gid: 0, mode: S_IFDIR | 0o755, xattrs: [], ...bad }))).toBe('GVARIANT_VALUE');
    }
  });

  it('refuses garbage and truncations with OBJECT_MALFORMED', () => {
    const bytes = serializeDirMeta({ uid: 1, gid: 2, mode: S_IFDIR | 0o700, xattrs: [{ name: 'user.a', value: Buffer.from('v') }] });
    // Cut right after (uuu), what is left is a valid dirmeta without xattrs; every other cut fails.
    for (let n = 0; n < bytes.length; n++) expect(codeOf(() => parseDirMeta(bytes.subarray(0, n)))).toBe(n === 12 ? undefined : 'OBJECT_MALFORMED');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      let m: DirMeta | undefined;
      if (returnsOr('OBJECT_MALFORMED', () => (m = parseDirMeta(b)))) expect(hexOf(serializeDirMeta(m as DirMeta))).toBe(hexOf(b));
    }), { numRuns: 500 });
  });
});

// ------------------------------------------------------------------ xattrs

describe('xattrs', () => {
  it('are stored in canonical order (strcmp on the name bytes), whatever the input order', () => {
    const a = { name: 'user.a', value: Buffer.from('one') };
    const b = { name: 'user.b', value: Buffer.from('2') };
    const B = { name: 'user.B', value: Buffer.from('upper') };
    const sec = { name: 'security.selinux', value: Buffer.from('ctx\0') };
    const uml = { name: 'user.ü', value: Buffer.from('u') };
    const sorted = [sec, B, a, b, uml];
    expect(canonicalXattrs([uml, b, a, sec, B])).toEqual(sorted);
    const meta = (xattrs: Xattr[]) => serializeDirMeta({ uid: 0, gid: 0, mode: S_IFDIR | 0o755, xattrs });
    expect(hexOf(meta([b, uml, a, B, sec]))).toBe(hexOf(meta(sorted)));
    expect(parseDirMeta(meta([uml, b, a, B, sec])).xattrs).toEqual(sorted);
    expect(fileChecksum(reg(0o644, [b, a]), Buffer.from('x'))).toBe(fileChecksum(reg(0o644, [a, b]), Buffer.from('x')));
  });

  it('sort by UTF-8 bytes where UTF-16 order differs', () => {
    // U+FF01 (ef bc 81) sorts before U+1F600 (f0 9f 98 80) as bytes, after it as UTF-16 code units.
    const x = [{ name: 'user.😀', value: Buffer.alloc(0) }, { name: 'user.！', value: Buffer.alloc(0) }];
    expect(canonicalXattrs(x).map((e) => e.name)).toEqual(['user.！', 'user.😀']);
  });

  it('match what ostree computed for a file with user.b and user.a', () => {
    const xattrs = [{ name: 'user.b', value: Buffer.from('2') }, { name: 'user.a', value: Buffer.from('one') }];
    expect(fileChecksum(reg(0o644, xattrs), Buffer.from('x'))).toBe(GOLDEN.xa);
  });

  it('refuse names that cannot be stored faithfully', () => {
    for (const name of ['', 'user.a\0b', 'user.\ud800']) {
      expect(codeOf(() => fileHeader(reg(0o644, [{ name, value: Buffer.alloc(0) }])))).toBe('GVARIANT_VALUE');
    }
  });

  it('refuse stored names that are empty, unterminated, hold NUL or are not UTF-8', () => {
    const DIRMETA = parseType('(uuua(ayay))');
    const withName = (name: number[]) => serialize(DIRMETA, [0, 0, 0xed410000, [[Buffer.from(name), Buffer.from('v')]]]);
    for (const name of [[], [0], [0x61], [0x61, 0, 0x62, 0], [0xff, 0xfe, 0]]) {
      expect(codeOf(() => parseDirMeta(withName(name)))).toBe('OBJECT_MALFORMED');
    }
    expect(parseDirMeta(withName([0x61, 0])).xattrs).toEqual([{ name: 'a', value: Buffer.from('v') }]);
  });
});

// ---------------------------------------------------------------- dirtree

describe('dirtree', () => {
  const DIRTREE = parseType('(a(say)a(sayay))');
  const sum = checksumToBytes(GOLDEN.hello);
  const files = (...names: string[]) => serialize(DIRTREE, [names.map((n) => [n, sum]), []]);
  const dirs = (...names: string[]) => serialize(DIRTREE, [[], names.map((n) => [n, sum, sum])]);

  it('parses the root tree ostree wrote, and serializes it back to the same bytes', () => {
    const tree = {
      files: [
        { name: 'empty', checksum: GOLDEN.empty },
        { name: 'hello.txt', checksum: GOLDEN.hello },
        { name: 'link', checksum: GOLDEN.link },
        { name: 'xa', checksum: GOLDEN.xa },
      ],
      dirs: [{ name: 'sub', tree: GOLDEN.subTree, meta: GOLDEN.dirmeta0755 }],
    };
    // Given in another order: serialize sorts.
    const bytes = serializeDirTree({ files: [...tree.files].reverse(), dirs: tree.dirs });
    expect(sha256(bytes)).toBe(GOLDEN.rootTree);
    expect(parseDirTree(bytes)).toEqual(tree);
    const sub = serializeDirTree({ files: [{ name: 'run', checksum: GOLDEN.run }], dirs: [] });
    expect(sha256(sub)).toBe(GOLDEN.subTree);
  });

  it('round-trips', () => {
    const entries = fc.uniqueArray(safeName, { maxLength: 12 }).chain((names) =>
      fc.tuple(fc.constant(names), fc.array(fc.boolean(), { minLength: names.length, maxLength: names.length }), fc.array(checksumArb, { minLength: names.length * 2, maxLength: names.length * 2 })),
    );
    fc.assert(
      fc.property(entries, ([names, isDir, sums]) => {
        const t = {
          files: names.flatMap((name, i) => (isDir[i] ? [] : [{ name, checksum: sums[2 * i] }])),
          dirs: names.flatMap((name, i) => (isDir[i] ? [{ name, tree: sums[2 * i], meta: sums[2 * i + 1] }] : [])),
        };
        const bytes = serializeDirTree(t);
        const back = parseDirTree(bytes);
        const byName = (a: { name: string }, b: { name: string }) => compareNames(a.name, b.name);
        expect(back).toEqual({ files: [...t.files].sort(byName), dirs: [...t.dirs].sort(byName) });
        expect(hexOf(serializeDirTree(back))).toBe(hexOf(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it.each(['', '.', '..', 'a/b', '/', '/etc', '../x', 'x/..', 'a/'])('refuses the hostile name %j with UNSAFE_PATH', (name) => {
    expect(codeOf(() => parseDirTree(files(name)))).toBe('UNSAFE_PATH');
    expect(codeOf(() => parseDirTree(dirs(name)))).toBe('UNSAFE_PATH');
    expect(codeOf(() => validateEntryName(name))).toBe('UNSAFE_PATH');
  });

  it('serializeDirTree never writes a tree parseDirTree would refuse', () => {
    for (const name of ['', '.', '..', 'a/b', 'a\0b']) {
      expect(codeOf(() => serializeDirTree({ files: [{ name, checksum: GOLDEN.hello }], dirs: [] }))).toBe('UNSAFE_PATH');
      expect(codeOf(() => serializeDirTree({ files: [], dirs: [{ name, tree: GOLDEN.subTree, meta: GOLDEN.dirmeta0755 }] }))).toBe('UNSAFE_PATH');
    }
    const f = { name: 'a', checksum: GOLDEN.hello };
    const d = { name: 'a', tree: GOLDEN.subTree, meta: GOLDEN.dirmeta0755 };
    expect(codeOf(() => serializeDirTree({ files: [f, f], dirs: [] }))).toBe('GVARIANT_VALUE');
    expect(codeOf(() => serializeDirTree({ files: [], dirs: [d, d] }))).toBe('GVARIANT_VALUE');
    expect(codeOf(() => serializeDirTree({ files: [f], dirs: [d] }))).toBe('GVARIANT_VALUE');
    expect(codeOf(() => serializeDirTree({ files: [{ name: 'x', checksum: 'ABC' as Checksum }], dirs: [] }))).toBe('INVALID_CHECKSUM');
  });

  it('cannot even carry a name with NUL: the string itself is malformed', () => {
    expect(codeOf(() => validateEntryName('a\0b'))).toBe('UNSAFE_PATH');
    // 'a\0b\0' where a string is expected: built by hand, as serialize refuses it.
    const tree = (name: string) => {
      const files = Buffer.concat([Buffer.from(name), sum, Buffer.from([name.length]), Buffer.from([name.length + 33])]);
      return Buffer.concat([files, Buffer.from([files.length])]);
    };
    expect(hexOf(tree('abc\0'))).toBe(hexOf(files('abc')));
    expect(codeOf(() => parseDirTree(tree('a\0b\0')))).toBe('OBJECT_MALFORMED');
  });

  it.each([
    ['unsorted files', () => files('b', 'a')],
    ['duplicate files', () => files('a', 'a')],
    ['unsorted dirs', () => dirs('b', 'a')],
    ['duplicate dirs', () => dirs('a', 'a')],
    ['a name that is both a file and a dir', () => serialize(DIRTREE, [[['a', sum]], [['a', sum, sum]]])],
    // Sorted as UTF-16 (U+1F600 before U+FF01), not as bytes, the order ostree uses.
    ['names in UTF-16 order', () => files('😀', '！')],
    ['a short checksum', () => serialize(DIRTREE, [[['a', sum.subarray(1)]], []])],
    ['an empty meta checksum', () => serialize(DIRTREE, [[], [['a', sum, Buffer.alloc(0)]]])],
  ])('refuses %s with OBJECT_MALFORMED', (_what, make) => {
    expect(codeOf(() => parseDirTree(make()))).toBe('OBJECT_MALFORMED');
  });

  it('accepts names in byte order, including non-ASCII', () => {
    expect(parseDirTree(files('A', 'Z', '_', 'a', 'z', 'é', '！', '😀')).files.map((f) => f.name)).toEqual(['A', 'Z', '_', 'a', 'z', 'é', '！', '😀']);
  });

  it('refuses garbage and truncations with OBJECT_MALFORMED', () => {
    const bytes = files('a', 'b');
    for (let n = 0; n < bytes.length; n++) expect(codeOf(() => parseDirTree(bytes.subarray(0, n)))).toBe('OBJECT_MALFORMED');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      const got = codeOf(() => parseDirTree(b));
      expect([undefined, 'OBJECT_MALFORMED', 'UNSAFE_PATH']).toContain(got);
    }), { numRuns: 500 });
  });
});

// ----------------------------------------------------------------- commit

describe('commit', () => {
  const golden: Commit = {
    metadata: [['ostree.ref-binding', { type: 'as', value: [] }]],
    parent: null,
    related: [],
    subject: 'subj',
    body: '',
    timestamp: 1714564800,
    rootTree: GOLDEN.rootTree,
    rootMeta: GOLDEN.dirmeta0755,
  };

  it('parses the commit ostree wrote and serializes it back to the same bytes', () => {
    const bytes = Buffer.from(GOLDEN.commitBytes, 'hex');
    expect(sha256(bytes)).toBe(GOLDEN.commit);
    expect(parseCommit(bytes)).toEqual(golden);
    expect(hexOf(serializeCommit(golden))).toBe(GOLDEN.commitBytes);
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(commitArb, (c) => {
        const bytes = serializeCommit(c);
        const back = parseCommit(bytes);
        expect(back).toEqual(c);
        expect(hexOf(serializeCommit(back))).toBe(hexOf(bytes));
      }),
      { numRuns: 150 },
    );
  });

  it('stores the timestamp big-endian', () => {
    const bytes = serializeCommit({ ...golden, timestamp: 0x0102030405 });
    // Layout ends with: timestamp (8, aligned), root tree (32), root meta (32), then one
    // framing offset for each of a{sv}, ay, a(say), s, s and the root tree's ay.
    const ts = bytes.subarray(bytes.length - 6 - 64 - 8, bytes.length - 6 - 64);
    expect(hexOf(ts)).toBe('0000000102030405');
  });

  it('refuses timestamps that are not whole, non-negative, exact seconds', () => {
    for (const timestamp of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
      expect(codeOf(() => serializeCommit({ ...golden, timestamp }))).toBe('GVARIANT_VALUE');
    }
  });

  it('refuses a stored timestamp beyond exact JavaScript numbers', () => {
    const bytes = Buffer.from(serializeCommit(golden));
    const at = bytes.length - 6 - 64 - 8;
    bytes.writeBigUInt64BE(1n << 60n, at);
    expect(codeOf(() => parseCommit(bytes))).toBe('OBJECT_MALFORMED');
  });

  it('refuses every truncation of a valid commit with OBJECT_MALFORMED', () => {
    const bytes = serializeCommit({ ...golden, parent: GOLDEN.hello, related: [['r', GOLDEN.link]], body: 'body text' });
    for (let n = 0; n < bytes.length; n++) expect(codeOf(() => parseCommit(bytes.subarray(0, n)))).toBe('OBJECT_MALFORMED');
  });

  it('refuses garbage, and corrupted commits either parse to themselves or fail with OBJECT_MALFORMED', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => { returnsOr('OBJECT_MALFORMED', () => parseCommit(b)); }), { numRuns: 500 });
    const base = Buffer.from(GOLDEN.commitBytes, 'hex');
    fc.assert(
      fc.property(fc.nat({ max: base.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const b = Buffer.from(base);
        b[at] ^= xor;
        let parsed: Commit | undefined;
        if (returnsOr('OBJECT_MALFORMED', () => (parsed = parseCommit(b)))) expect(hexOf(serializeCommit(parsed as Commit))).toBe(hexOf(b));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses parent and root checksums of the wrong length', () => {
    const COMMIT = parseType('(a{sv}aya(say)sstayay)');
    const ok: unknown[] = [[], Buffer.alloc(0), [], 's', 'b', 0n, Buffer.alloc(32), Buffer.alloc(32)];
    expect(parseCommit(serialize(COMMIT, ok)).parent).toBeNull();
    for (const [i, len] of [[1, 31], [1, 33], [6, 0], [7, 64]] as const) {
      const v = [...ok];
      v[i] = Buffer.alloc(len);
      expect(codeOf(() => parseCommit(serialize(COMMIT, v)))).toBe('OBJECT_MALFORMED');
    }
    const related = [...ok];
    related[2] = [['r', Buffer.alloc(20)]];
    expect(codeOf(() => parseCommit(serialize(COMMIT, related)))).toBe('OBJECT_MALFORMED');
  });

  it('vardicts round-trip and metadataLookup finds keys', () => {
    fc.assert(fc.property(metadataArb, (m) => {
      const bytes = serializeVardict(m);
      expect(parseVardict(bytes)).toEqual(m);
    }), { numRuns: 100 });
    const m = parseVardict(serializeVardict([['version', { type: 's', value: '1.0' }], ['n', { type: 't', value: 12n }]]));
    expect(metadataLookup(m, 'version')).toBe('1.0');
    expect(metadataLookup(m, 'n')).toBe(12n);
    expect(metadataLookup(m, 'missing')).toBeUndefined();
    expect(codeOf(() => parseVardict(Buffer.from([0x6b, 0, 0xff])))).toBe('OBJECT_MALFORMED');
  });
});

// ------------------------------------------------------------ file objects

describe('file objects', () => {
  it('fileChecksum matches ostree for regular files and a symlink', () => {
    expect(fileChecksum(reg(0o644), Buffer.from('hello\n'))).toBe(GOLDEN.hello);
    expect(fileChecksum(reg(0o600), Buffer.alloc(0))).toBe(GOLDEN.empty);
    expect(fileChecksum(reg(0o755), Buffer.from('#!/bin/sh\n'))).toBe(GOLDEN.run);
    expect(fileChecksum({ uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 'hello.txt', xattrs: [] })).toBe(GOLDEN.link);
  });

  it('fileChecksum covers the header and then the content', () => {
    const m = reg(0o644);
    expect(fileChecksum(m, Buffer.from('abc'))).toBe(sha256(fileHeader(m), Buffer.from('abc')));
    const h = fileHeader(m);
    // 4-byte big-endian length, 4 bytes of padding, then the (uuuusa(ayay)) variant.
    expect(h.readUInt32BE(0)).toBe(h.length - 8);
    expect(h.readUInt32BE(4)).toBe(0);
  });

  it('content headers round-trip', () => {
    fc.assert(fc.property(fileMetaArb, fc.uint8Array({ maxLength: 8 }), (m, content) => {
      const h = fileHeader(m);
      const stream = Buffer.concat([h, content]);
      const { meta, bodyOffset } = parseFileHeader(stream);
      expect(meta).toEqual({ ...m, xattrs: canonicalXattrs(m.xattrs) });
      expect(bodyOffset).toBe(h.length);
      expect(hexOf(fileHeader(meta))).toBe(hexOf(h));
    }), { numRuns: 200 });
  });

  it('archive headers round-trip', () => {
    fc.assert(fc.property(fileMetaArb, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (m, size) => {
      const h = archiveHeader(m, size);
      const { meta, size: got, bodyOffset } = parseArchiveHeader(Buffer.concat([h, Buffer.from([0x78, 0x9c])]));
      expect(meta).toEqual({ ...m, xattrs: canonicalXattrs(m.xattrs) });
      expect(got).toBe(size);
      expect(bodyOffset).toBe(h.length);
      expect(hexOf(archiveHeader(meta, got))).toBe(hexOf(h));
    }), { numRuns: 200 });
    expect(codeOf(() => archiveHeader(reg(0o644), -1))).toBe('GVARIANT_VALUE');
    expect(codeOf(() => archiveHeader(reg(0o644), 0.5))).toBe('GVARIANT_VALUE');
  });

  it("the fixed layouts of files without xattrs are the generic serializer's bytes", () => {
    const be = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]).readUInt32LE(0);
    const be64 = (v: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(v));
      return b.readBigUInt64LE(0);
    };
    const ARCHIVE = parseType('(tuuuusa(ayay))');
    const BAREUSER = parseType('(uuua(ayay))');
    const plain = fc.record({ uid: fc.nat({ max: 0xffffffff }), gid: fc.nat({ max: 0xffffffff }), perm: fc.nat({ max: 0o7777 }) });
    fc.assert(fc.property(plain, fc.nat({ max: Number.MAX_SAFE_INTEGER }), ({ uid, gid, perm }, size) => {
      const m = { uid, gid, mode: S_IFREG | perm, symlinkTarget: '', xattrs: [] };
      expect(hexOf(serializeBareUserMeta(m))).toBe(hexOf(serialize(BAREUSER, [be(uid), be(gid), be(m.mode), []])));
      const v = serialize(ARCHIVE, [be64(size), be(uid), be(gid), be(m.mode), 0, '', []]);
      const h = Buffer.concat([Buffer.from([0, 0, 0, v.length, 0, 0, 0, 0]), v, Buffer.from([0x78])]);
      expect(parseArchiveHeader(h)).toEqual({ meta: m, size, bodyOffset: 8 + v.length });
      // rdev, and a mode that is not a regular file, are refused as the generic reader refuses them.
      const rdev = Buffer.from(h);
      rdev[8 + 23] = 1;
      expect(codeOf(() => parseArchiveHeader(rdev))).toBe('OBJECT_MALFORMED');
      const dir = Buffer.from(h);
      dir.writeUInt32BE(S_IFDIR | perm, 8 + 16);
      expect(codeOf(() => parseArchiveHeader(dir))).toBe('OBJECT_MALFORMED');
    }), { numRuns: 300 });
  });

  it('bare-user metadata round-trips', () => {
    fc.assert(fc.property(fileMetaArb, (m) => {
      const bytes = serializeBareUserMeta(m);
      const back = parseBareUserMeta(bytes);
      expect(back).toEqual({ uid: m.uid, gid: m.gid, mode: m.mode, xattrs: canonicalXattrs(m.xattrs) });
      expect(hexOf(serializeBareUserMeta({ ...back, symlinkTarget: m.symlinkTarget }))).toBe(hexOf(bytes));
    }), { numRuns: 200 });
    expect(codeOf(() => parseBareUserMeta(serializeBareUserMeta({ ...reg(0), mode: S_IFDIR | 0o755 })))).toBe('OBJECT_MALFORMED');
  });

  it('refuses file objects that are not regular files or symlinks, or are inconsistent', () => {
    const FILE_HEADER = parseType('(uuuusa(ayay))');
    const be = (v: number) => Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]).readUInt32LE(0);
    const header = (mode: number, rdev: number, target: string) => {
      const v = serialize(FILE_HEADER, [0, 0, be(mode), rdev, target, []]);
      const out = Buffer.alloc(8 + v.length);
      out.writeUInt32BE(v.length, 0);
      v.copy(out, 8);
      return out;
    };
    expect(parseFileHeader(header(S_IFREG | 0o644, 0, '')).meta.mode).toBe(S_IFREG | 0o644);
    for (const [mode, rdev, target] of [
      [S_IFDIR | 0o755, 0, ''], [0o020644, 0, ''], [0o010644, 0, ''], [0o140644, 0, ''], [S_IFREG | 0o644, 5, ''],
      [S_IFLNK | 0o777, 0, ''], [S_IFREG | 0o644, 0, 'target'],
    ] as const) {
      expect(codeOf(() => parseFileHeader(header(mode, rdev, target)))).toBe('OBJECT_MALFORMED');
    }
  });

  it('refuses truncated and inconsistent length prefixes', () => {
    const h = fileHeader(reg(0o644));
    for (let n = 0; n < h.length; n++) expect(codeOf(() => parseFileHeader(h.subarray(0, n)))).toBe('OBJECT_MALFORMED');
    const zero = Buffer.from(h);
    zero.writeUInt32BE(0, 0);
    expect(codeOf(() => parseFileHeader(zero))).toBe('OBJECT_MALFORMED');
    const huge = Buffer.from(h);
    huge.writeUInt32BE(0xffffffff, 0);
    expect(codeOf(() => parseFileHeader(huge))).toBe('OBJECT_MALFORMED');
    const a = archiveHeader(reg(0o644), 10);
    for (let n = 0; n < a.length; n++) expect(codeOf(() => parseArchiveHeader(a.subarray(0, n)))).toBe('OBJECT_MALFORMED');
  });

  it('refuses an archive header claiming more bytes than a JavaScript number holds exactly', () => {
    const a = Buffer.from(archiveHeader(reg(0o644), 10));
    a.writeBigUInt64BE(1n << 60n, 8); // the t comes first in the variant, big-endian
    expect(codeOf(() => parseArchiveHeader(a))).toBe('OBJECT_MALFORMED');
  });

  it('random bytes never throw anything but OBJECT_MALFORMED', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      returnsOr('OBJECT_MALFORMED', () => parseFileHeader(b));
      returnsOr('OBJECT_MALFORMED', () => parseArchiveHeader(b));
      returnsOr('OBJECT_MALFORMED', () => parseBareUserMeta(b));
    }), { numRuns: 500 });
    fc.assert(fc.property(fileMetaArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, at, xor) => {
      const h = Buffer.from(archiveHeader(m, 3));
      h[at % h.length] ^= xor;
      returnsOr('OBJECT_MALFORMED', () => parseArchiveHeader(h));
    }), { numRuns: 300 });
  });
});

describe('fileHeader fast path', () => {
  it('gives the generic serializer\'s bytes for regular files without xattrs', async () => {
    const fc = await import('fast-check');
    const { serialize } = await import('../../src/core/gvariant.js');
    const { fileHeader } = await import('../../src/core/objects.js');
    const bswap = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v);
      return b.readUInt32LE();
    };
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (uid, gid, mode) => {
        const generic = serialize('(uuuusa(ayay))', [bswap(uid), bswap(gid), bswap(mode), 0, '', []]);
        const expected = Buffer.concat([Buffer.from([0, 0, 0, generic.length, 0, 0, 0, 0]), generic]);
        expect(fileHeader({ uid, gid, mode, symlinkTarget: '', xattrs: [] }).equals(expected)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
