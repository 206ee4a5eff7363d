// OSTree's static delta format, as libostree 2022.7 writes and reads it
// (ostree-repo-static-delta-private.h, -compilation.c, -processing.c). Pure.
//
// superblock  (a{sv} t ay ay COMMIT ay a(uayttay) a(yaytt)):
//   metadata (ostree.endianness: y 'l'|'B'; maybe the detached commit
//   metadata), timestamp (big-endian), from (32 bytes or empty), to, the new
//   commit object, prerequisite deltas (always empty), part headers
//   (version, SHA-256 of the part file, part size, uncompressed size,
//   objects as 1-byte type + 32-byte checksum), fallback objects (fetched
//   one by one). The u/t fields of headers use the delta's endianness.
// part file   one byte of compression ('x': xz, 0: none), then the payload
//   (a(uuu) aa(ayay) ay ay): modes (uid, gid, mode big-endian), xattr sets,
//   raw data, and operations (opcode byte + varuint64 arguments).

import { StrataError } from '../errors.js';
import { parse, parseType, serialize } from './gvariant.js';
import { type Checksum, type Metadata, type ObjectType, checksumFromBytes, checksumToBytes } from './objects.js';

const SUPERBLOCK = parseType('(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))');
const PART_PAYLOAD = parseType('(a(uuu)aa(ayay)ayay)');

export const DELTA_OBJTYPES: Record<Exclude<ObjectType, 'commitmeta'>, number> = { file: 1, dirtree: 2, dirmeta: 3, commit: 4 };
const OBJTYPE_NAMES = new Map<number, ObjectType>(Object.entries(DELTA_OBJTYPES).map(([k, v]) => [v, k as ObjectType]));

export const OP = {
  openSpliceAndClose: 0x53, // 'S'
  open: 0x6f, // 'o'
  write: 0x77, // 'w'
  setReadSource: 0x72, // 'r'
  unsetReadSource: 0x52, // 'R'
  close: 0x63, // 'c'
  bspatch: 0x42, // 'B'
} as const;

export interface DeltaObject {
  type: ObjectType;
  checksum: Checksum;
}

export interface PartHeader {
  version: number;
  /** SHA-256 of the whole part file. */
  checksum: Checksum;
  /** Bytes of the part file. */
  size: number;
  /** Bytes of the objects it makes. */
  usize: number;
  objects: DeltaObject[];
}

export interface Fallback {
  type: ObjectType;
  checksum: Checksum;
  size: number;
  usize: number;
}

export interface Superblock {
  metadata: Metadata;
  /** Seconds since the epoch. */
  timestamp: number;
  from: Checksum | null;
  to: Checksum;
  /** The commit object's serialized bytes. */
  commit: Buffer;
  parts: PartHeader[];
  fallbacks: Fallback[];
}

export interface PartPayload {
  /** uid, gid, mode (host values; stored big-endian). */
  modes: [number, number, number][];
  /** xattr sets as GVariant a(ayay) values (names with their NUL). */
  xattrs: [Buffer, Buffer][][];
  data: Buffer;
  ops: Buffer;
}

const malformed = (msg: string): StrataError => new StrataError('DELTA_MALFORMED', msg, {});

const swap32 = (v: number): number => Buffer.from(Uint32Array.of(v).buffer).reverse().readUInt32LE(0);
const swap64 = (v: bigint): bigint => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b.readBigUInt64BE();
};

function objectsToBytes(objects: readonly DeltaObject[]): Buffer {
  const out = Buffer.alloc(objects.length * 33);
  objects.forEach((o, i) => {
    const t = DELTA_OBJTYPES[o.type as keyof typeof DELTA_OBJTYPES];
    if (t === undefined) throw new StrataError('INTERNAL', `a delta cannot carry ${o.type} objects`);
    out[i * 33] = t;
    checksumToBytes(o.checksum).copy(out, i * 33 + 1);
  });
  return out;
}

function objectsFromBytes(bytes: Buffer): DeltaObject[] {
  if (bytes.length % 33 !== 0) throw malformed(`delta object list of ${bytes.length} bytes is not a multiple of 33`);
  const out: DeltaObject[] = [];
  for (let i = 0; i < bytes.length; i += 33) {
    const type = OBJTYPE_NAMES.get(bytes[i]);
    if (!type) throw malformed(`delta names an object of unknown type ${bytes[i]}`);
    out.push({ type, checksum: checksumFromBytes(bytes.subarray(i + 1, i + 33)) });
  }
  return out;
}

function objtypeNumber(type: ObjectType): number {
  const t = DELTA_OBJTYPES[type as keyof typeof DELTA_OBJTYPES];
  if (t === undefined) throw new StrataError('INTERNAL', `a delta cannot carry ${type} objects`);
  return t;
}

/** Little-endian, as libostree writes on the machines it runs on (metadata says `ostree.endianness: 'l'`). */
export function serializeSuperblock(sb: Superblock): Buffer {
  const commit = parse('(a{sv}aya(say)sstayay)', sb.commit);
  const hasEndianness = sb.metadata.some(([k]) => k === 'ostree.endianness');
  const metadata: Metadata = hasEndianness ? sb.metadata : [...sb.metadata, ['ostree.endianness', { type: 'y', value: 0x6c }]];
  return serialize(SUPERBLOCK, [
    metadata,
    swap64(BigInt(sb.timestamp)),
    sb.from ? checksumToBytes(sb.from) : Buffer.alloc(0),
    checksumToBytes(sb.to),
    commit,
    Buffer.alloc(0),
    sb.parts.map((p) => [p.version, checksumToBytes(p.checksum), BigInt(p.size), BigInt(p.usize), objectsToBytes(p.objects)]),
    sb.fallbacks.map((f) => [objtypeNumber(f.type), checksumToBytes(f.checksum), BigInt(f.size), BigInt(f.usize)]),
  ]);
}

export function parseSuperblock(data: Uint8Array): Superblock {
  let raw: [Metadata, bigint, Buffer, Buffer, unknown, Buffer, [number, Buffer, bigint, bigint, Buffer][], [number, Buffer, bigint, bigint][]];
  try {
    raw = parse(SUPERBLOCK, data) as typeof raw;
  } catch (err) {
    if (err instanceof StrataError) throw malformed(`delta superblock cannot be parsed: ${err.message}`);
    throw err;
  }
  const [metadata, ts, from, to, commit, prereqs, parts, fallbacks] = raw;
  const e = metadata.find(([k]) => k === 'ostree.endianness');
  const swap = e !== undefined && e[1].type === 'y' && e[1].value === 0x42; // 'B'
  const u32 = (v: number): number => (swap ? swap32(v) : v);
  const u64 = (v: bigint): number => {
    const n = swap ? swap64(v) : v;
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`delta claims a size of ${n} bytes`);
    return Number(n);
  };
  if (prereqs.length !== 0) throw malformed('delta needs prerequisite deltas, which strata does not support');
  if (from.length !== 0 && from.length !== 32) throw malformed(`delta 'from' checksum has ${from.length} bytes`);
  if (to.length !== 32) throw malformed(`delta 'to' checksum has ${to.length} bytes`);
  return {
    metadata,
    timestamp: Number(swap64(ts)),
    from: from.length ? checksumFromBytes(from) : null,
    to: checksumFromBytes(to),
    commit: serialize('(a{sv}aya(say)sstayay)', commit),
    parts: parts.map(([version, sum, size, usize, objects]) => {
      if (sum.length !== 32) throw malformed(`delta part checksum has ${sum.length} bytes`);
      return { version: u32(version), checksum: checksumFromBytes(sum), size: u64(size), usize: u64(usize), objects: objectsFromBytes(objects) };
    }),
    fallbacks: fallbacks.map(([t, sum, size, usize]) => {
      const type = OBJTYPE_NAMES.get(t);
      if (!type) throw malformed(`delta fallback has unknown object type ${t}`);
      if (sum.length !== 32) throw malformed(`delta fallback checksum has ${sum.length} bytes`);
      return { type, checksum: checksumFromBytes(sum), size: u64(size), usize: u64(usize) };
    }),
  };
}

export function serializePartPayload(p: PartPayload): Buffer {
  return serialize(PART_PAYLOAD, [p.modes.map(([u, g, m]) => [swap32(u), swap32(g), swap32(m)]), p.xattrs, p.data, p.ops]);
}

export function parsePartPayload(data: Uint8Array): PartPayload {
  let raw: [[number, number, number][], [Buffer, Buffer][][], Buffer, Buffer];
  try {
    raw = parse(PART_PAYLOAD, data) as typeof raw;
  } catch (err) {
    if (err instanceof StrataError) throw malformed(`delta part cannot be parsed: ${err.message}`);
    throw err;
  }
  return { modes: raw[0].map(([u, g, m]) => [swap32(u), swap32(g), swap32(m)]), xattrs: raw[1], data: raw[2], ops: raw[3] };
}

// ------------------------------------------------------------ part index (strata's)

/**
 * Superblock metadata key under which strata's deltas repeat each part's
 * modes, xattrs and operations (`aay`, one per part): a part's operations
 * come after its data, so without them a reader must decompress the whole
 * part before it can make its first object. libostree ignores the key.
 */
export const PART_INDEX_KEY = 'strata.part-index';

/** A part's payload without its data: what the part index holds. */
export interface PartIndex {
  modes: [number, number, number][];
  xattrs: [Buffer, Buffer][][];
  /** Bytes of the part's data. */
  dataLength: number;
  ops: Buffer;
  /** Where the data starts in the part's payload. */
  dataOffset: number;
}

/** The index entry of a part: its payload with the data replaced by the data's length (8 bytes, little-endian). */
export function serializePartIndex(p: PartPayload): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(p.data.length));
  return serializePartPayload({ ...p, data: length });
}

export function parsePartIndex(bytes: Uint8Array): PartIndex {
  const p = parsePartPayload(bytes);
  if (p.data.length !== 8) throw malformed('delta part index holds no data length');
  const dataLength = Number(p.data.readBigUInt64LE());
  if (!Number.isSafeInteger(dataLength)) throw malformed('delta part index holds an out-of-range data length');
  // (a(uuu)aa(ayay)ayay): the 12-byte modes from offset 0, the xattr sets
  // right after them (alignment 1), then the data.
  const dataOffset = p.modes.length * 12 + serialize('aa(ayay)', p.xattrs).length;
  return { modes: p.modes, xattrs: p.xattrs, dataLength, ops: p.ops, dataOffset };
}

// ------------------------------------------------------------ varuint64

/** Appends `n` as a protobuf-style varint (7 bits a byte, low first), as _ostree_write_varuint64. */
export function writeVarUint(out: number[], n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new StrataError('INTERNAL', `varuint of ${n}`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

/** Reads a varint at `pos`; returns the value and the position after it. */
export function readVarUint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw malformed('delta operations end inside a number');
    const b = buf[pos++];
    value += (b & 0x7f) * scale;
    if (!Number.isSafeInteger(value)) throw malformed('delta operation argument is too large');
    if ((b & 0x80) === 0) return [value, pos];
    scale *= 0x80;
  }
  throw malformed('delta operation argument is longer than 10 bytes');
}
