// A GVariant serializer and parser (normal form), as GLib's gvariant-serialiser
// defines it, for the types OSTree stores. Pure: it imports nothing but Buffer.
//
// Values in JavaScript:
//   y n q i u h -> number     x t -> bigint      b -> boolean     d -> number
//   s o g -> string           ay -> Buffer       a<T> -> T[]      m<T> -> T | null
//   (...) -> unknown[]        {KV} -> [K, V]     v -> { type, value }
//   mm<T> -> null | { just: m<T> }  (Nothing and Just Nothing must stay apart)
// Numbers are little-endian, as GVariant data is on every host OSTree runs on;
// OSTree itself stores uid/gid/mode/timestamps byte-swapped (big-endian) and
// the object layer (objects.ts) does that swap, exactly as libostree does.

import { isUtf8 } from 'node:buffer';
import { StrataError } from '../errors.js';

export type GVariantType =
  | { kind: 'basic'; code: BasicCode; align: number; fixed: number | undefined }
  | { kind: 'array'; element: GVariantType; align: number; fixed: undefined }
  | { kind: 'maybe'; element: GVariantType; align: number; fixed: undefined }
  | { kind: 'tuple'; members: GVariantType[]; align: number; fixed: number | undefined; dictEntry: boolean }
  | { kind: 'variant'; align: 8; fixed: undefined };

type BasicCode = 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'h' | 'd' | 's' | 'o' | 'g';

export interface Variant {
  type: string;
  value: unknown;
}

/** `Just x` of a maybe whose element is itself a maybe: plain null could not tell the levels apart. */
export interface Just {
  just: unknown;
}

/** GLib refuses types and values nested deeper than this; so do we. */
const MAX_DEPTH = 128;

const BASIC: Record<BasicCode, { align: number; fixed: number | undefined }> = {
  y: { align: 1, fixed: 1 },
  b: { align: 1, fixed: 1 },
  n: { align: 2, fixed: 2 },
  q: { align: 2, fixed: 2 },
  i: { align: 4, fixed: 4 },
  u: { align: 4, fixed: 4 },
  h: { align: 4, fixed: 4 },
  x: { align: 8, fixed: 8 },
  t: { align: 8, fixed: 8 },
  d: { align: 8, fixed: 8 },
  s: { align: 1, fixed: undefined },
  o: { align: 1, fixed: undefined },
  g: { align: 1, fixed: undefined },
};

export function malformed(reason: string): StrataError {
  return new StrataError('GVARIANT_MALFORMED', `malformed GVariant data: ${reason}`, { reason });
}

const typeCache = new Map<string, GVariantType>();

/** Parses a GVariant type string such as `(a{sv}aya(say)sstayay)`. */
export function parseType(text: string): GVariantType {
  const cached = typeCache.get(text);
  if (cached) return cached;
  const [type, end] = parseTypeAt(text, 0, 0);
  if (end !== text.length) throw malformed(`trailing characters in type string '${text}'`);
  // Only short strings: variant types come from untrusted data, and 1024 cached
  // megabyte-long ones would pin a gigabyte.
  if (typeCache.size < 1024 && text.length <= 256) typeCache.set(text, type);
  return type;
}

function alignUp(n: number, align: number): number {
  return (n + align - 1) & ~(align - 1);
}

function parseTypeAt(text: string, pos: number, depth: number): [GVariantType, number] {
  if (depth > MAX_DEPTH) throw malformed('type nested too deeply');
  const c = text[pos];
  if (c === undefined) throw malformed(`incomplete type string '${text}'`);
  if (c in BASIC) {
    const b = BASIC[c as BasicCode];
    return [{ kind: 'basic', code: c as BasicCode, align: b.align, fixed: b.fixed }, pos + 1];
  }
  if (c === 'v') return [{ kind: 'variant', align: 8, fixed: undefined }, pos + 1];
  if (c === 'a' || c === 'm') {
    const [element, end] = parseTypeAt(text, pos + 1, depth + 1);
    return [{ kind: c === 'a' ? 'array' : 'maybe', element, align: element.align, fixed: undefined }, end];
  }
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    const members: GVariantType[] = [];
    let p = pos + 1;
    while (text[p] !== close) {
      if (p >= text.length) throw malformed(`unterminated '${c}' in type string '${text}'`);
      const [member, end] = parseTypeAt(text, p, depth + 1);
      members.push(member);
      p = end;
    }
    const dictEntry = c === '{';
    if (dictEntry && (members.length !== 2 || members[0].kind !== 'basic')) {
      throw malformed(`dictionary entry must have a basic key and one value in '${text}'`);
    }
    return [tupleType(members, dictEntry), p + 1];
  }
  throw malformed(`unknown type character '${c}' in '${text}'`);
}

function tupleType(members: GVariantType[], dictEntry: boolean): GVariantType {
  let align = 1;
  let size = 0;
  let allFixed = true;
  for (const m of members) {
    align = Math.max(align, m.align);
    if (m.fixed === undefined) allFixed = false;
    else size = alignUp(size, m.align) + m.fixed;
  }
  let fixed: number | undefined;
  if (allFixed) fixed = members.length === 0 ? 1 : alignUp(size, align);
  return { kind: 'tuple', members, align, fixed, dictEntry };
}

/** Renders a parsed type back to its string form. */
export function typeString(t: GVariantType): string {
  switch (t.kind) {
    case 'basic':
      return t.code;
    case 'variant':
      return 'v';
    case 'array':
      return 'a' + typeString(t.element);
    case 'maybe':
      return 'm' + typeString(t.element);
    case 'tuple': {
      const inner = t.members.map(typeString).join('');
      return t.dictEntry ? `{${inner}}` : `(${inner})`;
    }
  }
}

// ---------------------------------------------------------------- serialize

/** Serializes `value` as GVariant type `type` in normal form. */
export function serialize(type: string | GVariantType, value: unknown): Buffer {
  const t = typeof type === 'string' ? parseType(type) : type;
  const w = new Writer();
  writeValue(w, t, value, 0);
  return w.finish();
}

class Writer {
  private buf = Buffer.allocUnsafe(256);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  pad(align: number, base: number): void {
    const rel = this.length - base;
    const target = alignUp(rel, align);
    if (target > rel) {
      this.ensure(target - rel);
      this.buf.fill(0, this.length, this.length + target - rel);
      this.length += target - rel;
    }
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  uint(value: number | bigint, size: number): void {
    this.ensure(size);
    switch (size) {
      case 1:
        this.buf.writeUInt8(Number(value), this.length);
        break;
      case 2:
        this.buf.writeUInt16LE(Number(value), this.length);
        break;
      case 4:
        this.buf.writeUInt32LE(Number(value), this.length);
        break;
      default:
        this.buf.writeBigUInt64LE(BigInt(value), this.length);
    }
    this.length += size;
  }

  int(value: number | bigint, size: number): void {
    this.ensure(size);
    switch (size) {
      case 2:
        this.buf.writeInt16LE(Number(value), this.length);
        break;
      case 4:
        this.buf.writeInt32LE(Number(value), this.length);
        break;
      default:
        this.buf.writeBigInt64LE(BigInt(value), this.length);
    }
    this.length += size;
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.length);
    this.length += 8;
  }

  /** Writes framing offsets for a container that started at `base`. */
  offsets(ends: number[], base: number): void {
    const body = this.length - base;
    const size = offsetSizeForBody(body, ends.length);
    for (const end of ends) this.uint(end, size);
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** The framing offset size GLib picks for a container of `body` bytes with `count` offsets. */
function offsetSizeForBody(body: number, count: number): number {
  if (count === 0) return 0;
  if (body + count <= 0xff) return 1;
  if (body + 2 * count <= 0xffff) return 2;
  if (body + 4 * count <= 0xffffffff) return 4;
  return 8;
}

/** The framing offset size for a container whose total serialized size is `size`. */
export function offsetSizeForTotal(size: number): number {
  if (size > 0xffffffff) return 8;
  if (size > 0xffff) return 4;
  if (size > 0xff) return 2;
  if (size > 0) return 1;
  return 0;
}

function expect(cond: boolean, what: string): asserts cond {
  if (!cond) throw new StrataError('GVARIANT_VALUE', `cannot serialize GVariant: ${what}`, { what });
}

function writeValue(w: Writer, t: GVariantType, value: unknown, depth: number): void {
  expect(depth <= MAX_DEPTH, 'value nested too deeply');
  switch (t.kind) {
    case 'basic':
      return writeBasic(w, t.code, value);
    case 'variant': {
      expect(typeof value === 'object' && value !== null && typeof (value as Variant).type === 'string', 'a variant needs { type, value }');
      const v = value as Variant;
      let inner: GVariantType;
      try {
        inner = parseType(v.type);
      } catch {
        throw new StrataError('GVARIANT_VALUE', `cannot serialize GVariant: invalid variant type '${v.type}'`, { type: v.type });
      }
      writeValue(w, inner, v.value, depth + 1);
      w.bytes(Buffer.from([0]));
      w.bytes(Buffer.from(v.type, 'latin1'));
      return;
    }
    case 'maybe': {
      if (value === null || value === undefined) return;
      if (t.element.kind === 'maybe') {
        expect(typeof value === 'object' && 'just' in value, `${typeString(t)} needs null or { just: value }`);
        value = (value as Just).just;
      }
      writeValue(w, t.element, value, depth + 1);
      if (t.element.fixed === undefined) w.bytes(Buffer.from([0]));
      return;
    }
    case 'array':
      return writeArray(w, t.element, value, depth);
    case 'tuple': {
      expect(Array.isArray(value) && value.length === t.members.length, `a tuple of ${t.members.length} members`);
      const base = w.length;
      const ends: number[] = [];
      t.members.forEach((m, i) => {
        w.pad(m.align, base);
        writeValue(w, m, (value as unknown[])[i], depth + 1);
        if (m.fixed === undefined && i < t.members.length - 1) ends.push(w.length - base);
      });
      if (t.fixed !== undefined) {
        if (t.members.length === 0) w.bytes(Buffer.from([0]));
        else w.pad(t.align, base);
        return;
      }
      w.offsets(ends.reverse(), base);
      return;
    }
  }
}

function writeArray(w: Writer, element: GVariantType, value: unknown, depth: number): void {
  if (element.kind === 'basic' && element.code === 'y') {
    expect(value instanceof Uint8Array, 'ay needs a Buffer or Uint8Array');
    w.bytes(value);
    return;
  }
  expect(Array.isArray(value), 'an array needs a JavaScript array');
  const items = value as unknown[];
  if (items.length === 0) return;
  const base = w.length;
  if (element.fixed !== undefined) {
    for (const item of items) writeValue(w, element, item, depth + 1);
    return;
  }
  const ends: number[] = [];
  for (const item of items) {
    w.pad(element.align, base);
    writeValue(w, element, item, depth + 1);
    ends.push(w.length - base);
  }
  w.offsets(ends, base);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function writeBasic(w: Writer, code: BasicCode, value: unknown): void {
  switch (code) {
    case 'b':
      expect(typeof value === 'boolean', 'b needs a boolean');
      return w.uint(value ? 1 : 0, 1);
    case 'y':
    case 'q':
    case 'u': {
      const size = BASIC[code].fixed as number;
      expect(Number.isInteger(value) && (value as number) >= 0 && (value as number) < 2 ** (8 * size), `${code} needs an unsigned ${8 * size}-bit integer`);
      return w.uint(value as number, size);
    }
    case 'n':
    case 'i':
    case 'h': {
      // A handle is a gint32 in GLib (g_variant_new_handle), so -1 is a valid one.
      const size = BASIC[code].fixed as number;
      const lim = 2 ** (8 * size - 1);
      expect(Number.isInteger(value) && (value as number) >= -lim && (value as number) < lim, `${code} needs a signed ${8 * size}-bit integer`);
      return w.int(value as number, size);
    }
    case 't':
      expect(typeof value === 'bigint' && value >= 0n && value < 1n << 64n, 't needs an unsigned 64-bit bigint');
      return w.uint(value, 8);
    case 'x':
      expect(typeof value === 'bigint' && value >= -(1n << 63n) && value < 1n << 63n, 'x needs a signed 64-bit bigint');
      return w.int(value, 8);
    case 'd':
      expect(typeof value === 'number', 'd needs a number');
      return w.double(value);
    case 's':
    case 'o':
    case 'g': {
      // A lone surrogate would be written as U+FFFD and read back as another string.
      expect(typeof value === 'string' && !value.includes('\0') && !LONE_SURROGATE.test(value), `${code} needs a well-formed string without NUL`);
      w.bytes(Buffer.from(value, 'utf8'));
      w.bytes(Buffer.from([0]));
      return;
    }
  }
}

// -------------------------------------------------------------------- parse

/**
 * Parses `data` as GVariant type `type`. Any inconsistency (bad framing
 * offsets, missing terminators, wrong fixed sizes, non-normal padding)
 * throws a StrataError with code GVARIANT_MALFORMED; it never loops or
 * recurses without bound.
 */
export function parse(type: string | GVariantType, data: Uint8Array): unknown {
  const t = typeof type === 'string' ? parseType(type) : type;
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return readValue(t, buf, 0, buf.length, 0);
}

function readValue(t: GVariantType, buf: Buffer, start: number, end: number, depth: number): unknown {
  if (depth > MAX_DEPTH) throw malformed('value nested too deeply');
  const size = end - start;
  if (t.fixed !== undefined && size !== t.fixed) {
    throw malformed(`${typeString(t)} must be ${t.fixed} bytes, found ${size}`);
  }
  switch (t.kind) {
    case 'basic':
      return readBasic(t.code, buf, start, end);
    case 'variant': {
      let sep = end - 1;
      while (sep >= start && buf[sep] !== 0) sep--;
      if (sep < start) throw malformed('variant without type signature');
      const typeText = buf.toString('latin1', sep + 1, end);
      let inner: GVariantType;
      try {
        inner = parseType(typeText);
      } catch {
        throw malformed(`variant with invalid type '${typeText}'`);
      }
      return { type: typeText, value: readValue(inner, buf, start, sep, depth + 1) } satisfies Variant;
    }
    case 'maybe': {
      if (size === 0) return null;
      let just: unknown;
      if (t.element.fixed !== undefined) {
        just = readValue(t.element, buf, start, end, depth + 1);
      } else {
        if (buf[end - 1] !== 0) throw malformed('maybe value without trailing zero byte');
        just = readValue(t.element, buf, start, end - 1, depth + 1);
      }
      return t.element.kind === 'maybe' ? ({ just } satisfies Just) : just;
    }
    case 'array':
      return readArray(t.element, buf, start, end, depth);
    case 'tuple':
      return readTuple(t, buf, start, end, depth);
  }
}

/**
 * The framing of a non-empty array of variable-size elements in [start, end):
 * the offset size, where the elements end (relative to start) and how many
 * there are; each element's end is the offset at start + lastEnd + i * osz.
 */
export function arrayFraming(buf: Buffer, start: number, end: number): { osz: number; lastEnd: number; count: number } {
  const size = end - start;
  const osz = offsetSizeForTotal(size);
  const lastEnd = readOffset(buf, end - osz, osz, end);
  if (lastEnd > size) throw malformed('array framing offset past the end');
  const framing = size - lastEnd;
  if (framing % osz !== 0 || framing === 0) throw malformed('array framing has a bad size');
  return { osz, lastEnd, count: framing / osz };
}

/** Reads a framing offset at `at`, which must lie wholly before `limit`. */
export function readOffset(buf: Buffer, at: number, size: number, limit: number): number {
  if (at < 0 || at + size > limit || at + size > buf.length) throw malformed('framing offset out of bounds');
  switch (size) {
    case 1:
      return buf[at];
    case 2:
      return buf.readUInt16LE(at);
    case 4:
      return buf.readUInt32LE(at);
    case 8: {
      const v = buf.readBigUInt64LE(at);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('framing offset out of range');
      return Number(v);
    }
    default:
      throw malformed('framing offsets missing');
  }
}

function checkPadding(buf: Buffer, from: number, to: number): void {
  for (let i = from; i < to; i++) if (buf[i] !== 0) throw malformed('non-zero padding');
}

function readArray(element: GVariantType, buf: Buffer, start: number, end: number, depth: number): unknown[] | Buffer {
  const size = end - start;
  if (element.kind === 'basic' && element.code === 'y') return buf.subarray(start, end);
  if (size === 0) return [];
  if (element.fixed !== undefined) {
    if (size % element.fixed !== 0) throw malformed(`array of ${typeString(element)} has ${size} bytes, not a multiple of ${element.fixed}`);
    const out: unknown[] = [];
    for (let p = start; p < end; p += element.fixed) out.push(readValue(element, buf, p, p + element.fixed, depth + 1));
    return out;
  }
  const { osz, lastEnd, count } = arrayFraming(buf, start, end);
  const out: unknown[] = [];
  let prev = 0;
  for (let i = 0; i < count; i++) {
    const elEnd = readOffset(buf, start + lastEnd + i * osz, osz, end);
    const elStart = alignUp(prev, element.align);
    if (elStart > elEnd || elEnd > lastEnd) throw malformed('array framing offsets out of order');
    checkPadding(buf, start + prev, start + elStart);
    out.push(readValue(element, buf, start + elStart, start + elEnd, depth + 1));
    prev = elEnd;
  }
  return out;
}

function readTuple(t: Extract<GVariantType, { kind: 'tuple' }>, buf: Buffer, start: number, end: number, depth: number): unknown[] {
  const size = end - start;
  if (t.members.length === 0) {
    if (size !== 1 || buf[start] !== 0) throw malformed('unit tuple must be one zero byte');
    return [];
  }
  const osz = t.fixed === undefined ? offsetSizeForTotal(size) : 0;
  const bodyEnd = size - countVariableNonLast(t) * osz;
  // Even an all-empty body needs room for its offsets (an empty '(ss)' has none at all).
  if (countVariableNonLast(t) > 0 && (osz === 0 || bodyEnd < 0)) throw malformed('tuple framing offsets missing');
  let framingEnd = size; // offsets are read backwards from the end
  let pos = 0;
  const out: unknown[] = [];
  t.members.forEach((m, i) => {
    const memberStart = alignUp(pos, m.align);
    if (memberStart > size) throw malformed('tuple member starts past the end');
    checkPadding(buf, start + pos, start + memberStart);
    let memberEnd: number;
    if (m.fixed !== undefined) {
      memberEnd = memberStart + m.fixed;
    } else if (i === t.members.length - 1) {
      memberEnd = bodyEnd;
    } else {
      framingEnd -= osz;
      memberEnd = readOffset(buf, start + framingEnd, osz, end);
    }
    if (memberEnd < memberStart || memberEnd > bodyEnd) throw malformed('tuple member out of bounds');
    out.push(readValue(m, buf, start + memberStart, start + memberEnd, depth + 1));
    pos = memberEnd;
  });
  if (t.fixed !== undefined) {
    checkPadding(buf, start + pos, end);
  } else if (pos !== bodyEnd) {
    // Normal form has nothing between the last member and the framing offsets.
    throw malformed('bytes between the last tuple member and its framing');
  }
  return out;
}

function countVariableNonLast(t: Extract<GVariantType, { kind: 'tuple' }>): number {
  let n = 0;
  for (let i = 0; i < t.members.length - 1; i++) if (t.members[i].fixed === undefined) n++;
  return n;
}

function readBasic(code: BasicCode, buf: Buffer, start: number, end: number): unknown {
  switch (code) {
    case 'y':
      return buf[start];
    case 'b': {
      const v = buf[start];
      if (v > 1) throw malformed('boolean is neither 0 nor 1');
      return v === 1;
    }
    case 'n':
      return buf.readInt16LE(start);
    case 'q':
      return buf.readUInt16LE(start);
    case 'i':
    case 'h':
      return buf.readInt32LE(start);
    case 'u':
      return buf.readUInt32LE(start);
    case 'x':
      return buf.readBigInt64LE(start);
    case 't':
      return buf.readBigUInt64LE(start);
    case 'd':
      return buf.readDoubleLE(start);
    case 's':
    case 'o':
    case 'g': {
      if (end <= start || buf[end - 1] !== 0) throw malformed('string without NUL terminator');
      const nul = buf.indexOf(0, start);
      if (nul !== end - 1) throw malformed('string with an embedded NUL');
      if (!isUtf8(buf.subarray(start, end - 1))) throw malformed('string is not valid UTF-8');
      return buf.toString('utf8', start, end - 1);
    }
  }
}
