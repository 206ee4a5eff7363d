// OSTree's object models: parse, serialize and checksum. Pure: Buffer and
// node:crypto only. Facts from libostree (ostree-core.c, ostree-core.h):
// uid, gid, mode and the commit timestamp are stored big-endian inside
// GVariant data; file checksums cover a length-prefixed header plus content;
// metadata checksums cover the normal-form bytes.

import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { StrataError } from '../errors.js';
import { arrayFraming, malformed as gvMalformed, offsetSizeForTotal, parse, parseType, readOffset, serialize, type Variant } from './gvariant.js';

/** A SHA-256 checksum in lowercase hex: the name of every object. */
export type Checksum = string & { readonly __brand: 'Checksum' };

export type ObjectType = 'file' | 'dirtree' | 'dirmeta' | 'commit' | 'commitmeta';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

const CHECKSUM_RE = /^[0-9a-f]{64}$/;

export function isChecksum(text: string): text is Checksum {
  return CHECKSUM_RE.test(text);
}

export function toChecksum(text: string): Checksum {
  if (!isChecksum(text)) throw new StrataError('INVALID_CHECKSUM', `not a checksum: '${text}' (want 64 lowercase hex characters)`, { text });
  return text;
}

export function checksumFromBytes(bytes: Uint8Array): Checksum {
  if (bytes.length !== 32) throw new StrataError('OBJECT_MALFORMED', `checksum field has ${bytes.length} bytes, not 32`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex') as Checksum;
}

export function checksumToBytes(c: Checksum): Buffer {
  // Buffer.from(_, 'hex') silently stops at the first bad digit; an unchecked
  // string would become a short checksum field inside a written object.
  return Buffer.from(toChecksum(c), 'hex');
}

export function sha256(...parts: Uint8Array[]): Checksum {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex') as Checksum;
}

/** An extended attribute: name (without the NUL OSTree stores) and raw value. */
export interface Xattr {
  name: string;
  value: Buffer;
}

/** Sorts by name as libostree canonicalizes (strcmp on the bytes). */
export function canonicalXattrs(xattrs: readonly Xattr[]): Xattr[] {
  return [...xattrs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

export function xattrsToGVariant(xattrs: readonly Xattr[]): [Buffer, Buffer][] {
  // Names are bytestrings: their trailing NUL is part of the stored value.
  return canonicalXattrs(xattrs).map((x) => {
    const name = Buffer.from(x.name, 'utf8');
    if (name.length === 0 || name.includes(0) || name.toString('utf8') !== x.name) {
      throw new StrataError('GVARIANT_VALUE', `xattr name ${JSON.stringify(x.name)} is empty, holds NUL or is not well-formed Unicode`, { name: x.name });
    }
    return [Buffer.concat([name, Buffer.from([0])]), x.value];
  });
}

export function xattrsFromGVariant(raw: [Buffer, Buffer][]): Xattr[] {
  return raw.map(([name, value]) => {
    if (name.length < 2 || name[name.length - 1] !== 0 || name.indexOf(0) !== name.length - 1) {
      throw new StrataError('OBJECT_MALFORMED', 'xattr name is not a NUL-terminated string');
    }
    // Xattr.name is a string: a name that is not UTF-8 would come back as other bytes.
    if (!isUtf8(name.subarray(0, name.length - 1))) throw new StrataError('OBJECT_MALFORMED', 'xattr name is not UTF-8');
    return { name: name.toString('utf8', 0, name.length - 1), value: Buffer.from(value) };
  });
}

/** uid, gid and mode must be 32-bit unsigned: bswap32 would silently wrap -1 or 2**32. */
function u32be(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new StrataError('GVARIANT_VALUE', `${what} ${v} is not a 32-bit unsigned integer`, { [what]: v });
  return bswap32(v);
}

function ownerBe(m: { uid: number; gid: number; mode: number }): [number, number, number] {
  return [u32be('uid', m.uid), u32be('gid', m.gid), u32be('mode', m.mode)];
}

const bswap32 = (v: number): number => ((v & 0xff) << 24 | (v & 0xff00) << 8 | (v >>> 8) & 0xff00 | (v >>> 24)) >>> 0;
const bswap64 = (v: bigint): bigint => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b.readBigUInt64BE();
};

// ------------------------------------------------------------------ dirmeta

export interface DirMeta {
  uid: number;
  gid: number;
  mode: number;
  xattrs: Xattr[];
}

const DIRMETA = parseType('(uuua(ayay))');

export function serializeDirMeta(m: DirMeta): Buffer {
  return serialize(DIRMETA, [...ownerBe(m), xattrsToGVariant(m.xattrs)]);
}

export function parseDirMeta(data: Uint8Array): DirMeta {
  const [uid, gid, mode, xattrs] = parseObject(DIRMETA, data, 'dirmeta') as [number, number, number, [Buffer, Buffer][]];
  const m = { uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), xattrs: xattrsFromGVariant(xattrs) };
  if ((m.mode & S_IFMT) !== S_IFDIR) throw new StrataError('OBJECT_MALFORMED', `dirmeta mode 0${m.mode.toString(8)} is not a directory`);
  return m;
}

// ------------------------------------------------------------------ dirtree

export interface DirTreeFile {
  name: string;
  checksum: Checksum;
}
export interface DirTreeDir {
  name: string;
  tree: Checksum;
  meta: Checksum;
}
export interface DirTree {
  files: DirTreeFile[];
  dirs: DirTreeDir[];
}

const DIRTREE = parseType('(a(say)a(sayay))');

/** Byte-wise name order, as OSTree sorts dirtree entries (strcmp). */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  // For ASCII names JavaScript order equals byte order; fall back otherwise.
  if (/^[\x00-\x7f]*$/.test(a) && /^[\x00-\x7f]*$/.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function serializeDirTree(t: DirTree): Buffer {
  const files = [...t.files].sort((a, b) => compareNames(a.name, b.name));
  const dirs = [...t.dirs].sort((a, b) => compareNames(a.name, b.name));
  // Never write a tree that parseDirTree would refuse.
  const seen = new Set<string>();
  for (const { name } of [...files, ...dirs]) {
    validateEntryName(name);
    if (seen.has(name)) throw new StrataError('GVARIANT_VALUE', `dirtree would hold ${JSON.stringify(name)} twice`, { name });
    seen.add(name);
  }
  return serialize(DIRTREE, [
    files.map((f) => [f.name, checksumToBytes(f.checksum)]),
    dirs.map((d) => [d.name, checksumToBytes(d.tree), checksumToBytes(d.meta)]),
  ]);
}

/**
 * Entry names are validated here, where they enter strata from storage or the
 * network: an empty name, `.`, `..`, or one holding `/` could escape a
 * checkout; NUL cannot even be represented. Names must also be unique and sorted.
 */
export function validateEntryName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new StrataError('UNSAFE_PATH', `unsafe entry name in tree: ${JSON.stringify(name)}`, { name });
  }
}

/**
 * Parses a dirtree. Every pull, checkout, fsck and delta walks thousands of
 * them, so this reads `(a(say)a(sayay))` directly instead of through the
 * generic GVariant reader, with the same rules: normal-form framing (offsets
 * in bounds and in order, nothing between members), NUL-terminated UTF-8
 * names without embedded NULs, 32-byte checksums, then safe, sorted, unique
 * names. A property test holds it to the generic reader's answers. (In a
 * delta pull, TurboFan spent ~140 ms compiling the generic path for it.)
 */
export function parseDirTree(data: Uint8Array): DirTree {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const files: DirTreeFile[] = [];
  const dirs: DirTreeDir[] = [];
  const [fileNames, dirNames] = asObjectError('dirtree', () => {
    const size = buf.length;
    const osz = offsetSizeForTotal(size);
    // The first array is a variable-size member before the last: one framing offset ends the tuple.
    if (osz === 0) throw gvMalformed('tuple framing offsets missing');
    const bodyEnd = size - osz;
    const filesEnd = readOffset(buf, bodyEnd, osz, size);
    if (filesEnd > bodyEnd) throw gvMalformed('tuple member out of bounds');
    return [
      readTreeArray(buf, 0, filesEnd, 1, (start, end, nameEnd, fields) => {
        files.push({ name: entryName(buf, start, nameEnd), checksum: checksumFromBytes(buf.subarray(fields[0], end)) });
      }),
      readTreeArray(buf, filesEnd, bodyEnd, 2, (start, end, nameEnd, fields) => {
        dirs.push({ name: entryName(buf, start, nameEnd), tree: checksumFromBytes(buf.subarray(fields[0], fields[1])), meta: checksumFromBytes(buf.subarray(fields[1], end)) });
      }),
    ];
  });
  checkNames(buf, files, fileNames);
  checkNames(buf, dirs, dirNames);
  // Sorted lists: a name in both meets its twin in one merge pass.
  for (let i = 0, j = 0; i < files.length && j < dirs.length; ) {
    const c = compareSpans(buf, fileNames, i, dirNames, j);
    if (c === 0) throw new StrataError('OBJECT_MALFORMED', `dirtree has ${JSON.stringify(dirs[j].name)} twice`);
    if (c < 0) i++;
    else j++;
  }
  return { files, dirs };
}

/**
 * An array of `(s ay…)` tuples in [start, end) whose `extra` byte-array
 * members come after the name: `each` gets the element's bounds, where its
 * name ends (at its NUL) and where each byte array starts. Returns the name
 * spans, two numbers per element.
 */
function readTreeArray(
  buf: Buffer, start: number, end: number, extra: number,
  each: (start: number, end: number, nameEnd: number, fields: number[]) => void,
): number[] {
  const names: number[] = [];
  if (end === start) return names;
  const { osz, lastEnd, count } = arrayFraming(buf, start, end);
  const fields: number[] = new Array(extra).fill(0);
  let prev = 0;
  for (let i = 0; i < count; i++) {
    const elEnd = readOffset(buf, start + lastEnd + i * osz, osz, end);
    if (prev > elEnd || elEnd > lastEnd) throw gvMalformed('array framing offsets out of order');
    const es = start + prev;
    const ee = start + elEnd;
    // The tuple: the name and all byte arrays but the last end at offsets read backwards from its end.
    const eosz = offsetSizeForTotal(ee - es);
    const bodyEnd = ee - es - extra * eosz;
    if (eosz === 0 || bodyEnd < 0) throw gvMalformed('tuple framing offsets missing');
    let framingEnd = ee - es;
    let pos = 0;
    for (let m = 0; m < extra; m++) {
      framingEnd -= eosz;
      const memberEnd = readOffset(buf, es + framingEnd, eosz, ee);
      if (memberEnd < pos || memberEnd > bodyEnd) throw gvMalformed('tuple member out of bounds');
      if (m === 0) {
        if (memberEnd === 0 || buf[es + memberEnd - 1] !== 0) throw gvMalformed('string without NUL terminator');
        if (buf.indexOf(0, es) !== es + memberEnd - 1) throw gvMalformed('string with an embedded NUL');
        names.push(es, es + memberEnd - 1);
      } else fields[m - 1] = es + pos;
      pos = memberEnd;
    }
    fields[extra - 1] = es + pos;
    each(es, es + bodyEnd, names[names.length - 1], fields);
    prev = elEnd;
  }
  return names;
}

/** A name's text: ASCII decodes as it is; anything else must be valid UTF-8. */
function entryName(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    if (buf[i] >= 0x80) {
      if (!isUtf8(buf.subarray(start, end))) throw gvMalformed('string is not valid UTF-8');
      return buf.toString('utf8', start, end);
    }
  }
  return buf.toString('latin1', start, end);
}

/** Byte order of the names at `i` and `j` (two numbers per name in each span list), as strcmp. */
function compareSpans(buf: Buffer, a: number[], i: number, b: number[], j: number): number {
  return buf.compare(buf, b[2 * j], b[2 * j + 1], a[2 * i], a[2 * i + 1]);
}

/** Safe names in strictly increasing byte order (which also rules out duplicates within the list). */
function checkNames(buf: Buffer, list: { name: string }[], spans: number[]): void {
  for (let i = 0; i < list.length; i++) {
    validateEntryName(list[i].name);
    if (i > 0 && compareSpans(buf, spans, i - 1, spans, i) >= 0) {
      throw new StrataError('OBJECT_MALFORMED', `dirtree entries not sorted or duplicated at ${JSON.stringify(list[i].name)}`);
    }
  }
}

// ------------------------------------------------------------------- commit

export type Metadata = [string, Variant][];

export interface Commit {
  metadata: Metadata;
  parent: Checksum | null;
  related: [string, Checksum][];
  subject: string;
  body: string;
  /** Seconds since the epoch, UTC. */
  timestamp: number;
  rootTree: Checksum;
  rootMeta: Checksum;
}

const COMMIT = parseType('(a{sv}aya(say)sstayay)');

export function serializeCommit(c: Commit): Buffer {
  if (!Number.isSafeInteger(c.timestamp) || c.timestamp < 0) {
    throw new StrataError('GVARIANT_VALUE', `commit timestamp ${c.timestamp} is not a whole number of seconds since the epoch`, { timestamp: c.timestamp });
  }
  return serialize(COMMIT, [
    c.metadata,
    c.parent ? checksumToBytes(c.parent) : Buffer.alloc(0),
    c.related.map(([name, sum]) => [name, checksumToBytes(sum)]),
    c.subject,
    c.body,
    bswap64(BigInt(c.timestamp)),
    checksumToBytes(c.rootTree),
    checksumToBytes(c.rootMeta),
  ]);
}

export function parseCommit(data: Uint8Array): Commit {
  const [metadata, parent, related, subject, body, ts, rootTree, rootMeta] = parseObject(COMMIT, data, 'commit') as [
    Metadata, Buffer, [string, Buffer][], string, string, bigint, Buffer, Buffer,
  ];
  const seconds = bswap64(ts);
  if (seconds > BigInt(Number.MAX_SAFE_INTEGER)) throw new StrataError('OBJECT_MALFORMED', `commit timestamp ${seconds} is out of range`);
  return {
    metadata,
    parent: parent.length === 0 ? null : checksumFromBytes(parent),
    related: related.map(([n, s]) => [n, checksumFromBytes(s)]),
    subject,
    body,
    timestamp: Number(seconds),
    rootTree: checksumFromBytes(rootTree),
    rootMeta: checksumFromBytes(rootMeta),
  };
}

export function metadataLookup(m: Metadata, key: string): unknown {
  for (const [k, v] of m) if (k === key) return v.value;
  return undefined;
}

const VARDICT = parseType('a{sv}');

export function serializeVardict(m: Metadata): Buffer {
  return serialize(VARDICT, m);
}

export function parseVardict(data: Uint8Array): Metadata {
  return parseObject(VARDICT, data, 'metadata') as Metadata;
}

// ------------------------------------------------------------- file objects

export interface FileMeta {
  uid: number;
  gid: number;
  /** Full st_mode, including S_IFREG or S_IFLNK. */
  mode: number;
  /** Target for symlinks, '' otherwise. */
  symlinkTarget: string;
  xattrs: Xattr[];
}

const FILE_HEADER = parseType('(uuuusa(ayay))');
const ARCHIVE_HEADER = parseType('(tuuuusa(ayay))');

function lenPrefixed(variant: Buffer): Buffer {
  const out = Buffer.alloc(8 + variant.length);
  out.writeUInt32BE(variant.length, 0);
  variant.copy(out, 8);
  return out;
}

/** The header a content checksum covers (before the file's bytes). */
export function fileHeader(m: FileMeta): Buffer {
  if (m.symlinkTarget === '' && m.xattrs.length === 0 && isU32(m.uid) && isU32(m.gid) && isU32(m.mode)) return plainFileHeader(m);
  return lenPrefixed(serialize(FILE_HEADER, [...ownerBe(m), 0, m.symlinkTarget, xattrsToGVariant(m.xattrs)]));
}

const isU32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/**
 * The header of a regular file without xattrs, the case of nearly every
 * object, has a fixed layout; building it directly keeps the generic
 * serializer off the hot path of commit and fsck. Same bytes (a unit test
 * compares): uid, gid, mode, rdev as big-endian words, the empty string's
 * NUL, the empty xattr array, and one framing offset (17) for the string.
 */
function plainFileHeader(m: FileMeta): Buffer {
  const out = Buffer.alloc(8 + 18);
  out.writeUInt32BE(18, 0);
  out.writeUInt32BE(m.uid, 8);
  out.writeUInt32BE(m.gid, 12);
  out.writeUInt32BE(m.mode, 16);
  out[25] = 17;
  return out;
}

/** The header at the start of an archive-mode `.filez` object. */
export function archiveHeader(m: FileMeta, size: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) throw new StrataError('GVARIANT_VALUE', `file size ${size} is not a byte count`, { size });
  return lenPrefixed(serialize(ARCHIVE_HEADER, [bswap64(BigInt(size)), ...ownerBe(m), 0, m.symlinkTarget, xattrsToGVariant(m.xattrs)]));
}

function readLenPrefixed(data: Uint8Array, what: string): { variant: Buffer; rest: number } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 8) throw new StrataError('OBJECT_MALFORMED', `${what} is truncated (${buf.length} bytes)`);
  const len = buf.readUInt32BE(0);
  if (len === 0 || 8 + len > buf.length) throw new StrataError('OBJECT_MALFORMED', `${what} header size ${len} does not fit in ${buf.length} bytes`);
  return { variant: buf.subarray(8, 8 + len), rest: 8 + len };
}

function validateFileMeta(m: FileMeta): FileMeta {
  const fmt = m.mode & S_IFMT;
  if (fmt !== S_IFREG && fmt !== S_IFLNK) throw new StrataError('OBJECT_MALFORMED', `file object mode 0${m.mode.toString(8)} is neither a regular file nor a symlink`);
  if (fmt === S_IFLNK && m.symlinkTarget === '') throw new StrataError('OBJECT_MALFORMED', 'symlink object with an empty target');
  if (fmt === S_IFREG && m.symlinkTarget !== '') throw new StrataError('OBJECT_MALFORMED', 'regular file object with a symlink target');
  return m;
}

/**
 * Options for inflating a `.filez` body of `size` bytes in one call: no more
 * output than the header declares, and one output buffer of that size (zlib's
 * default 16 KiB chunks cost a copy of every larger file and more calls;
 * inflating rootfs-b's 178 MB took 15% less CPU). The extra byte lets zlib
 * see the end of the stream without asking for another buffer.
 */
export function archiveInflateOptions(size: number): { maxOutputLength: number; chunkSize: number } {
  return { maxOutputLength: Math.max(size, 1), chunkSize: Math.max(64, size + 1) };
}

/** Parses an archive `.filez` header; returns the metadata, size and where the compressed body starts. */
export function parseArchiveHeader(data: Uint8Array): { meta: FileMeta; size: number; bodyOffset: number } {
  const { variant, rest } = readLenPrefixed(data, 'archive file object');
  if (variant.length === 26 && variant[24] === 0 && variant[25] === 25) {
    // A regular file without xattrs (nearly every object) has a fixed layout: size, then uid, gid, mode and
    // rdev as big-endian words, the empty string's NUL, the empty xattr array, the string's end offset (25).
    // Read directly, as the generic reader would read it (a unit test compares).
    if (variant.readUInt32BE(20) !== 0) throw new StrataError('OBJECT_MALFORMED', 'file object with a device number');
    const meta = validateFileMeta({ uid: variant.readUInt32BE(8), gid: variant.readUInt32BE(12), mode: variant.readUInt32BE(16), symlinkTarget: '', xattrs: [] });
    return { meta, size: archiveSize(variant.readBigUInt64BE(0)), bodyOffset: rest };
  }
  const [size, uid, gid, mode, rdev, target, xattrs] = parseObject(ARCHIVE_HEADER, variant, 'archive file header') as [bigint, number, number, number, number, string, [Buffer, Buffer][]];
  if (rdev !== 0) throw new StrataError('OBJECT_MALFORMED', 'file object with a device number');
  const meta = validateFileMeta({ uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), symlinkTarget: target, xattrs: xattrsFromGVariant(xattrs) });
  return { meta, size: archiveSize(bswap64(size)), bodyOffset: rest };
}

function archiveSize(bytes: bigint): number {
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new StrataError('OBJECT_MALFORMED', `archive file object claims ${bytes} bytes`);
  return Number(bytes);
}

/** Parses a content-stream header (as checksummed); returns metadata and where content starts. */
export function parseFileHeader(data: Uint8Array): { meta: FileMeta; bodyOffset: number } {
  const { variant, rest } = readLenPrefixed(data, 'file object');
  const [uid, gid, mode, rdev, target, xattrs] = parseObject(FILE_HEADER, variant, 'file header') as [number, number, number, number, string, [Buffer, Buffer][]];
  if (rdev !== 0) throw new StrataError('OBJECT_MALFORMED', 'file object with a device number');
  return { meta: validateFileMeta({ uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), symlinkTarget: target, xattrs: xattrsFromGVariant(xattrs) }), bodyOffset: rest };
}

/** bare-user repos keep a file's real metadata in the `user.ostreemeta` xattr. */
const BAREUSER_META = parseType('(uuua(ayay))');

export function serializeBareUserMeta(m: FileMeta): Buffer {
  if (m.xattrs.length === 0 && isU32(m.uid) && isU32(m.gid) && isU32(m.mode)) {
    // No xattrs (nearly every object): three big-endian words, the layout parseBareUserMeta reads directly.
    const out = Buffer.allocUnsafe(12);
    out.writeUInt32BE(m.uid, 0);
    out.writeUInt32BE(m.gid, 4);
    out.writeUInt32BE(m.mode, 8);
    return out;
  }
  return serialize(BAREUSER_META, [...ownerBe(m), xattrsToGVariant(m.xattrs)]);
}

export function parseBareUserMeta(data: Uint8Array): Omit<FileMeta, 'symlinkTarget'> {
  if (data.length === 12) {
    // The common case (no xattrs) is a fixed layout: three big-endian words.
    const b = Buffer.from(data.buffer, data.byteOffset, 12);
    const m = { uid: b.readUInt32BE(0), gid: b.readUInt32BE(4), mode: b.readUInt32BE(8), xattrs: [] as Xattr[] };
    const fmt = m.mode & S_IFMT;
    if (fmt !== S_IFREG && fmt !== S_IFLNK) throw new StrataError('OBJECT_MALFORMED', `user.ostreemeta mode 0${m.mode.toString(8)} is neither file nor symlink`);
    return m;
  }
  const [uid, gid, mode, xattrs] = parseObject(BAREUSER_META, data, 'user.ostreemeta') as [number, number, number, [Buffer, Buffer][]];
  const fmt = bswap32(mode) & S_IFMT;
  if (fmt !== S_IFREG && fmt !== S_IFLNK) throw new StrataError('OBJECT_MALFORMED', `user.ostreemeta mode 0${bswap32(mode).toString(8)} is neither file nor symlink`);
  return { uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), xattrs: xattrsFromGVariant(xattrs) };
}

/** The checksum of a file object: over its header, then (regular files) its bytes. */
export function fileChecksum(m: FileMeta, content?: Uint8Array): Checksum {
  return content ? sha256(fileHeader(m), content) : sha256(fileHeader(m));
}

function parseObject(type: ReturnType<typeof parseType>, data: Uint8Array, what: string): unknown {
  return asObjectError(what, () => parse(type, data));
}

/** Runs a parse; malformed GVariant data becomes OBJECT_MALFORMED naming the kind of object. */
function asObjectError<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StrataError && err.code === 'GVARIANT_MALFORMED') {
      throw new StrataError('OBJECT_MALFORMED', `corrupt ${what} object: ${err.message}`, { what });
    }
    throw err;
  }
}

/** Relative path of a loose object, e.g. `objects/ab/cdef….dirtree`. */
export function objectPath(checksum: Checksum, type: ObjectType, archive: boolean): string {
  return `objects/${objectName(checksum, type, archive)}`;
}

/** An object's name under `objects/`: `XX/REST.EXT` (also the layout of a pull's staging area). */
export function objectName(checksum: Checksum, type: ObjectType, archive: boolean): string {
  return `${checksum.slice(0, 2)}/${checksum.slice(2)}.${objectExtension(type, archive)}`;
}

/** Content objects are `.filez` (compressed) in archive repos and `.file` otherwise; metadata is named by type. */
export function objectExtension(type: ObjectType, archive: boolean): string {
  return type === 'file' ? (archive ? 'filez' : 'file') : type;
}
