// fast-check generators for GVariant types and values, the spec's worked
// examples, and a renderer to GLib's GVariant text format (for feeding values
// to the real `ostree` command as commit metadata).

import fc from 'fast-check';
import { parseType, typeString, type GVariantType } from '../../src/core/gvariant.js';

export interface Typed {
  type: string;
  value: unknown;
}

export interface ValueOptions {
  /** Only values GLib's text parser accepts: valid object paths and signatures, finite doubles. */
  glibText?: boolean;
  /** Longest generated array. */
  maxLength?: number;
}

const BASIC_CODES = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'h', 'd', 's', 'o', 'g'] as const;

/** A random type string: basic types, v, a, m, tuples and dict entries, nested up to `maxDepth`. */
export function typeArb(maxDepth = 4): fc.Arbitrary<string> {
  const basic = fc.constantFrom(...BASIC_CODES);
  const { type } = fc.letrec<{ type: string }>((tie) => ({
    type: fc.oneof(
      { depthSize: 'small', maxDepth, withCrossShrink: true },
      basic,
      fc.constant('v'),
      tie('type').map((t) => `a${t}`),
      tie('type').map((t) => `m${t}`),
      fc.array(tie('type'), { maxLength: 4 }).map((ts) => `(${ts.join('')})`),
      fc.tuple(basic, tie('type')).map(([k, v]) => `{${k}${v}}`),
    ),
  }));
  return type;
}

const text = fc.string({ unit: 'binary', maxLength: 12 }).map((s) => s.replace(/\0/g, ''));
const objectPath = fc
  .array(fc.stringMatching(/^[A-Za-z0-9_]{1,6}$/), { maxLength: 3 })
  .map((parts) => '/' + parts.join('/'));
const signature = fc.constantFrom('', 'i', 'as', 'a{sv}', '(ii)', 'sa{sv}as', 'v');

/** A random value of GVariant type `type`, in the codec's JavaScript model. */
export function valueArb(type: string | GVariantType, opts: ValueOptions = {}, depth = 0): fc.Arbitrary<unknown> {
  const t = typeof type === 'string' ? parseType(type) : type;
  const maxLength = opts.maxLength ?? 4;
  switch (t.kind) {
    case 'basic':
      switch (t.code) {
        case 'y':
          return fc.integer({ min: 0, max: 0xff });
        case 'b':
          return fc.boolean();
        case 'n':
          return fc.integer({ min: -0x8000, max: 0x7fff });
        case 'q':
          return fc.integer({ min: 0, max: 0xffff });
        case 'i':
        case 'h':
          return fc.integer({ min: -0x80000000, max: 0x7fffffff });
        case 'u':
          return fc.integer({ min: 0, max: 0xffffffff });
        case 'x':
          return fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
        case 't':
          return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
        case 'd':
          // GLib's text parser refuses subnormals (strtod reports ERANGE) and has no NaN literal.
          return opts.glibText ? fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => d === 0 || Math.abs(d) >= 2.2250738585072014e-308) : fc.double();
        case 's':
          return text;
        case 'o':
          return opts.glibText ? objectPath : text;
        case 'g':
          return opts.glibText ? signature : text;
      }
      break;
    case 'variant':
      // A nested type, kept shallow so values stay small.
      return typeArb(depth > 2 ? 0 : 2).chain((inner) => valueArb(inner, opts, depth + 1).map((value) => ({ type: inner, value })));
    case 'array':
      if (t.element.kind === 'basic' && t.element.code === 'y') return fc.uint8Array({ maxLength: maxLength * 4 }).map((a) => Buffer.from(a));
      return fc.array(valueArb(t.element, opts, depth + 1), { maxLength });
    case 'maybe': {
      const inner = valueArb(t.element, opts, depth + 1);
      const just = t.element.kind === 'maybe' ? inner.map((v) => ({ just: v })) : inner;
      return fc.option(just, { nil: null });
    }
    case 'tuple':
      return fc.tuple(...t.members.map((m) => valueArb(m, opts, depth + 1)));
  }
  throw new Error('unreachable');
}

/** A random type together with a random value of it. */
export function typedArb(maxDepth = 4, opts: ValueOptions = {}): fc.Arbitrary<Typed> {
  return typeArb(maxDepth).chain((type) => valueArb(type, opts).map((value) => ({ type, value })));
}

// ------------------------------------------------------------ spec vectors

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

/**
 * The worked examples of the GVariant Specification 1.0 ("Examples"), plus a
 * few more. Two of the spec's byte listings drop a framing offset (a known
 * erratum): 'a(si)' ends 04 09 15 and '((ys)as)' ends 04 0d 05, which is
 * what GLib itself produces (checked against `ostree` in the interop tests).
 */
export const SPEC_VECTORS: { name: string; type: string; value: unknown; bytes: number[] }[] = [
  { name: 'string', type: 's', value: 'hello world', bytes: [...ascii('hello world'), 0] },
  { name: 'maybe string', type: 'ms', value: 'hello world', bytes: [...ascii('hello world'), 0, 0] },
  { name: 'array of booleans', type: 'ab', value: [true, false, false, true, true], bytes: [1, 0, 0, 1, 1] },
  { name: 'structure', type: '(si)', value: ['foo', -1], bytes: [...ascii('foo'), 0, 0xff, 0xff, 0xff, 0xff, 0x04] },
  {
    name: 'structure array',
    type: 'a(si)',
    value: [['hi', -2], ['bye', -1]],
    bytes: [...ascii('hi'), 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x03, 0, 0, 0, ...ascii('bye'), 0, 0xff, 0xff, 0xff, 0xff, 0x04, 0x09, 0x15],
  },
  {
    name: 'string array',
    type: 'as',
    value: ['i', 'can', 'has', 'strings?'],
    bytes: [...ascii('i\0can\0has\0strings?\0'), 0x02, 0x06, 0x0a, 0x13],
  },
  {
    name: 'nested structure',
    type: '((ys)as)',
    value: [[0x69, 'can'], ['has', 'strings?']],
    bytes: [...ascii('ican\0has\0strings?\0'), 0x04, 0x0d, 0x05],
  },
  { name: 'simple structure', type: '(yy)', value: [0x70, 0x80], bytes: [0x70, 0x80] },
  { name: 'padded structure 1', type: '(iy)', value: [96, 0x70], bytes: [0x60, 0, 0, 0, 0x70, 0, 0, 0] },
  { name: 'padded structure 2', type: '(yi)', value: [0x70, 96], bytes: [0x70, 0, 0, 0, 0x60, 0, 0, 0] },
  {
    name: 'array of structures',
    type: 'a(iy)',
    value: [[96, 0x70], [648, 0xf7]],
    bytes: [0x60, 0, 0, 0, 0x70, 0, 0, 0, 0x88, 0x02, 0, 0, 0xf7, 0, 0, 0],
  },
  { name: 'array of bytes', type: 'ay', value: Buffer.from([4, 5, 6, 7]), bytes: [4, 5, 6, 7] },
  { name: 'array of integers', type: 'ai', value: [4, 258], bytes: [4, 0, 0, 0, 2, 1, 0, 0] },
  { name: 'dictionary entry', type: '{si}', value: ['a key', 514], bytes: [...ascii('a key'), 0, 0, 0, 0x02, 0x02, 0, 0, 0x06] },
  // The figure of section 2.5.4: (nsns) [257, 'xx', 514, ''].
  { name: 'structure figure', type: '(nsns)', value: [257, 'xx', 514, ''], bytes: [0x01, 0x01, ...ascii('xx'), 0, 0, 0x02, 0x02, 0, 0x05] },
  // Beyond the spec's list, by its rules.
  { name: 'unit', type: '()', value: [], bytes: [0] },
  { name: 'variant of uint32', type: 'v', value: { type: 'u', value: 5 }, bytes: [5, 0, 0, 0, 0, ...ascii('u')] },
  { name: 'variant of a string array', type: 'v', value: { type: 'as', value: ['a'] }, bytes: [...ascii('a'), 0, 2, 0, ...ascii('as')] },
  { name: 'maybe int32 Nothing', type: 'mi', value: null, bytes: [] },
  { name: 'maybe int32 Just', type: 'mi', value: -2, bytes: [0xfe, 0xff, 0xff, 0xff] },
  { name: 'maybe maybe string Just Nothing', type: 'mms', value: { just: null }, bytes: [0] },
  { name: 'maybe maybe string Just Just', type: 'mms', value: { just: 'a' }, bytes: [...ascii('a'), 0, 0, 0] },
  { name: 'empty string array', type: 'as', value: [], bytes: [] },
  { name: 'array of empty strings', type: 'as', value: ['', ''], bytes: [0, 0, 1, 2] },
  { name: 'array of empty byte arrays', type: 'aay', value: [Buffer.alloc(0), Buffer.alloc(0)], bytes: [0, 0] },
  {
    name: 'vardict',
    type: 'a{sv}',
    value: [['k', { type: 'i', value: 1 }]],
    // 'k\0' pad to 8, variant <1> = 01 00 00 00 00 'i', entry offset 02; then the array offset 0f.
    bytes: [...ascii('k'), 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, ...ascii('i'), 0x02, 0x0f],
  },
  {
    name: 'fixed tuple with trailing padding',
    type: '(ty)',
    value: [1n, 2],
    bytes: [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
  },
  { name: 'byte then double', type: '(yd)', value: [1, 1.5], bytes: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f] },
  { name: 'uint64 and int64', type: '(tx)', value: [0xffffffffffffffffn, -2n], bytes: [...Array(8).fill(0xff), 0xfe, ...Array(7).fill(0xff)] },
  { name: 'int16, uint16, handle', type: '(nqh)', value: [-1, 0x1234, 7], bytes: [0xff, 0xff, 0x34, 0x12, 7, 0, 0, 0] },
  // A handle is signed, as GLib's gint32.
  { name: 'handle -1', type: 'h', value: -1, bytes: [0xff, 0xff, 0xff, 0xff] },
  { name: 'object path and signature', type: '(og)', value: ['/a', 'as'], bytes: [...ascii('/a'), 0, ...ascii('as'), 0, 3] },
];

// --------------------------------------------------------- GVariant text

function quote(s: string): string {
  let out = "'";
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (ch === "'" || ch === '\\') out += '\\' + ch;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp <= 0xffff) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + "'";
}

function doubleText(d: number): string {
  if (Object.is(d, -0)) return '-0.0';
  const s = String(d).replace('e+', 'e');
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** Renders `value` of `type` in GLib's GVariant text format, with a leading type annotation. */
export function toGVariantText(type: string, value: unknown): string {
  return `@${type} ${render(parseType(type), value)}`;
}

function render(t: GVariantType, value: unknown): string {
  switch (t.kind) {
    case 'basic':
      switch (t.code) {
        case 'b':
          return value ? 'true' : 'false';
        case 'd':
          return doubleText(value as number);
        case 's':
          return quote(value as string);
        case 'o':
          return `objectpath ${quote(value as string)}`;
        case 'g':
          return `signature ${quote(value as string)}`;
        default:
          return String(value);
      }
    case 'variant': {
      const v = value as Typed;
      return `<${toGVariantText(v.type, v.value)}>`;
    }
    case 'maybe':
      if (value === null) return 'nothing';
      return `just ${render(t.element, t.element.kind === 'maybe' ? (value as { just: unknown }).just : value)}`;
    case 'array': {
      const items = t.element.kind === 'basic' && t.element.code === 'y' ? [...(value as Buffer)] : (value as unknown[]);
      return `[${items.map((v) => render(t.element, v)).join(', ')}]`;
    }
    case 'tuple': {
      const parts = (value as unknown[]).map((v, i) => render(t.members[i], v));
      if (t.dictEntry) return `{${parts[0]}, ${parts[1]}}`;
      return parts.length === 1 ? `(${parts[0]},)` : `(${parts.join(', ')})`;
    }
  }
}

export { typeString };
