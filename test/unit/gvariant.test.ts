import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, parseType, serialize, typeString } from '../../src/core/gvariant.js';
import { StrataError } from '../../src/errors.js';
import { SPEC_VECTORS, typeArb, typedArb, valueArb } from '../helpers/gvariant-arbitrary.js';
import { codeOf } from '../helpers/errors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');


/**
 * True when a parsed value holds a NaN double. A JavaScript number cannot be
 * trusted to keep a NaN's payload bits (V8 may quiet a signalling NaN), so
 * such values are exempt from the byte-exact normal-form checks.
 */
function holdsNaN(v: unknown): boolean {
  if (typeof v === 'number') return Number.isNaN(v);
  if (Array.isArray(v)) return v.some(holdsNaN);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.values(v).some(holdsNaN);
  return false;
}

/** Parsed bytes must be the normal form of what they parsed to: serialize gives them back. */
function expectNormal(type: string, bytes: Uint8Array, value: unknown): void {
  if (!holdsNaN(value)) expect(hex(serialize(type, value))).toBe(hex(bytes));
}

/** parse() may return or throw GVARIANT_MALFORMED; anything else (RangeError, TypeError…) is a bug. */
function parseOrMalformed(type: string, data: Uint8Array, budgetMs = 1000): { ok: true; value: unknown } | { ok: false } {
  const t0 = performance.now();
  try {
    return { ok: true, value: parse(type, data) };
  } catch (err) {
    if (!(err instanceof StrataError) || err.code !== 'GVARIANT_MALFORMED') {
      throw new Error(`parse('${type}', ${hex(data)}) threw ${String(err)}`, { cause: err });
    }
    return { ok: false };
  } finally {
    // Generous (the machine may be busy): parsing is linear, so anything slow is a loop gone wrong.
    expect(performance.now() - t0).toBeLessThan(budgetMs);
  }
}

describe('GVariant specification examples', () => {
  for (const v of SPEC_VECTORS) {
    it(`${v.name}: ${v.type}`, () => {
      expect(hex(serialize(v.type, v.value))).toBe(hex(Buffer.from(v.bytes)));
      expect(parse(v.type, Buffer.from(v.bytes))).toEqual(v.value);
    });
  }

  it('reads from a Uint8Array view that is not a Buffer and does not start at offset 0', () => {
    const backing = new Uint8Array([0xaa, 0xbb, ...Buffer.from('foo\0'), 0xff, 0xff, 0xff, 0xff, 0x04, 0xcc]);
    expect(parse('(si)', backing.subarray(2, 11))).toEqual(['foo', -1]);
  });
});

describe('type strings', () => {
  it.each([
    ['y', 1, 1], ['b', 1, 1], ['n', 2, 2], ['q', 2, 2], ['i', 4, 4], ['u', 4, 4], ['h', 4, 4],
    ['x', 8, 8], ['t', 8, 8], ['d', 8, 8], ['s', 1, undefined], ['o', 1, undefined], ['g', 1, undefined],
    ['v', 8, undefined], ['ay', 1, undefined], ['at', 8, undefined], ['mi', 4, undefined],
    ['()', 1, 1], ['(())', 1, 1], ['(()y)', 1, 2], ['(yt)', 8, 16], ['(ty)', 8, 16], ['(yqu)', 4, 8],
    ['(yyyyy)', 1, 5], ['((yy)n)', 2, 4], ['{yy}', 1, 2], ['{ts}', 8, undefined], ['(sy)', 1, undefined],
    ['(a{sv}aya(say)sstayay)', 8, undefined],
  ])('%s has alignment %d and fixed size %s', (text, align, fixed) => {
    const t = parseType(text);
    expect(t.align).toBe(align);
    expect(t.fixed).toBe(fixed);
    expect(typeString(t)).toBe(text);
  });

  it.each(['', 'z', 'a', 'm', '(', '(y', 'y)', '{', '{y}', '{yyy}', '{vy}', '{(y)y}', '{ayy}', 'ii', '(y))', '}', 'a{sv', 'r', '*', '?', '@y'])(
    'refuses %j with GVARIANT_MALFORMED',
    (text) => {
      expect(codeOf(() => parseType(text))).toBe('GVARIANT_MALFORMED');
    },
  );

  it('refuses deeply nested type strings cleanly', () => {
    for (const text of ['a'.repeat(200) + 'y', 'm'.repeat(200) + 's', '('.repeat(200) + ')'.repeat(200), 'a{s'.repeat(200) + 'v' + '}'.repeat(200), '('.repeat(100000)]) {
      expect(codeOf(() => parseType(text))).toBe('GVARIANT_MALFORMED');
      expect(codeOf(() => parse(text, Buffer.alloc(4)))).toBe('GVARIANT_MALFORMED');
    }
  });

  it('accepts nesting up to the limit', () => {
    const text = 'a'.repeat(100) + 'y';
    expect(typeString(parseType(text))).toBe(text);
    expect(parse(text, Buffer.alloc(0))).toEqual([]);
  });

  it('round-trips random type strings', () => {
    fc.assert(
      fc.property(typeArb(5), (text) => {
        expect(typeString(parseType(text))).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('random strings over the type alphabet either parse back to themselves or fail with GVARIANT_MALFORMED', () => {
    const alphabet = fc.constantFrom(...'ybnqiuxthdsogvam(){}z'.split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 12 }).map((cs) => cs.join('')), (text) => {
        let t;
        try {
          t = parseType(text);
        } catch (err) {
          expect(err).toBeInstanceOf(StrataError);
          expect((err as StrataError).code).toBe('GVARIANT_MALFORMED');
          return;
        }
        expect(typeString(t)).toBe(text);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('serialize refuses values that do not fit', () => {
  it.each<[string, unknown]>([
    ['y', 256], ['y', -1], ['y', 1.5], ['y', '1'], ['b', 1], ['n', 0x8000], ['n', -0x8001], ['q', 0x10000],
    ['i', 2 ** 31], ['u', -1], ['u', 2 ** 32], ['h', NaN], ['h', 2 ** 31], ['x', 1], ['x', 1n << 63n], ['t', -1n], ['t', 1n << 64n],
    ['d', 1n], ['s', 'a\0b'], ['s', '\ud800'], ['s', 'x\udc00y'], ['o', 5], ['g', null], ['ay', [1, 2]], ['ay', 'ab'], ['as', 'ab'],
    ['(ii)', [1]], ['(ii)', [1, 2, 3]], ['(i)', 1], ['{si}', ['a']], ['v', 5], ['v', { value: 1 }], ['v', { type: 'z', value: 1 }],
    ['v', { type: 'ii', value: 1 }], ['v', { type: 'i', value: 'x' }], ['mms', 'a'], ['mmi', 5], ['a{sv}', [['k', 1]]],
  ])('%s %s -> GVARIANT_VALUE', (type, value) => {
    expect(codeOf(() => serialize(type, value))).toBe('GVARIANT_VALUE');
  });

  it('refuses variants nested deeper than GLib allows', () => {
    let v: unknown = { type: 'y', value: 1 };
    for (let i = 0; i < 200; i++) v = { type: 'v', value: v };
    expect(codeOf(() => serialize('v', v))).toBe('GVARIANT_VALUE');
  });

  it('accepts surrogate pairs and undefined for Nothing', () => {
    expect(parse('s', serialize('s', 'a😀b'))).toBe('a😀b');
    expect(serialize('mi', undefined).length).toBe(0);
  });
});

describe('round trips over arbitrary types', () => {
  it('parse(serialize(v)) equals v, and serialize(parse(bytes)) equals bytes', () => {
    fc.assert(
      fc.property(typedArb(4), ({ type, value }) => {
        const bytes = serialize(type, value);
        const back = parse(type, bytes);
        expect(back).toEqual(value);
        expect(hex(serialize(type, back))).toBe(hex(bytes));
        // Every value of a fixed-size type has exactly that size.
        const fixed = parseType(type).fixed;
        if (fixed !== undefined) expect(bytes.length).toBe(fixed);
      }),
      { numRuns: 400 },
    );
  });

  it('keeps the levels of nested maybes apart', () => {
    const cases: [string, unknown][] = [
      ['mms', null], ['mms', { just: null }], ['mms', { just: '' }], ['mmi', { just: null }], ['mmi', { just: 0 }],
      ['mmms', { just: { just: null } }], ['mmms', { just: null }], ['amms', [null, { just: null }, { just: 'x' }]],
    ];
    const encodings = new Set<string>();
    for (const [type, value] of cases) {
      const bytes = serialize(type, value);
      expect(parse(type, bytes)).toEqual(value);
      encodings.add(type + hex(bytes));
    }
    expect(encodings.size).toBe(cases.length);
  });

  it('preserves -0, NaN and infinities in doubles', () => {
    for (const d of [-0, 0, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE]) {
      expect(Object.is(parse('d', serialize('d', d)), d)).toBe(true);
    }
  });
});

describe('framing offset sizes', () => {
  // One string of n bytes plus its NUL, then one offset: the offset grows when the total would not fit.
  it.each([
    [252, 1], [253, 1], [254, 2], [255, 2], [65531, 2], [65532, 2], [65533, 4], [65534, 4], [70000, 4],
  ])('as with one %d-byte string uses %d-byte offsets', (n, osz) => {
    const value = ['x'.repeat(n)];
    const bytes = serialize('as', value);
    expect(bytes.length).toBe(n + 1 + osz);
    expect(bytes.readUIntLE(bytes.length - osz, osz)).toBe(n + 1);
    expect(parse('as', bytes)).toEqual(value);
  });

  it.each([
    // (ss): the first string's end is the only offset.
    [252, 1], [253, 2], [65531, 2], [65532, 4],
  ])('(ss) with a %d-byte first string uses %d-byte offsets', (n, osz) => {
    const value = ['x'.repeat(n), ''];
    const bytes = serialize('(ss)', value);
    expect(bytes.length).toBe(n + 2 + osz);
    expect(bytes.readUIntLE(bytes.length - osz, osz)).toBe(n + 1);
    expect(parse('(ss)', bytes)).toEqual(value);
  });

  it('round-trips large containers of every framing width', () => {
    const big = fc.record({
      count: fc.integer({ min: 1, max: 60 }),
      size: fc.integer({ min: 0, max: 2500 }),
      type: fc.constantFrom('as', 'aay', 'a(sy)', 'av', 'a{sv}', '(asay)', 'aas', 'ma(ys)'),
    });
    const widths = new Set<number>();
    fc.assert(
      fc.property(big, fc.integer({ min: 0, max: 255 }), ({ count, size, type }, seed) => {
        const s = String.fromCharCode(97 + (seed % 26)).repeat(size);
        const b = Buffer.alloc(size, seed);
        const items = Array.from({ length: count }, (_, i) => ({ s: s.slice(i % 7), b: b.subarray(i % 5) }));
        const value = ((): unknown => {
          switch (type) {
            case 'as': return items.map((x) => x.s);
            case 'aay': return items.map((x) => x.b);
            case 'a(sy)': return items.map((x, i) => [x.s, i & 0xff]);
            case 'av': return items.map((x, i) => (i % 2 ? { type: 's', value: x.s } : { type: 'ay', value: x.b }));
            case 'a{sv}': return items.map((x, i) => [String(i), { type: 'as', value: [x.s] }]);
            case '(asay)': return [items.map((x) => x.s), b];
            case 'aas': return [items.map((x) => x.s), []];
            default: return [[seed, s]];
          }
        })();
        const bytes = serialize(type, value);
        widths.add(bytes.length > 0xffff ? 4 : bytes.length > 0xff ? 2 : 1);
        // isDeepStrictEqual compares Buffers with memcmp; toEqual walks them byte by byte.
        expect(isDeepStrictEqual(parse(type, bytes), value)).toBe(true);
      }),
      { numRuns: 60, seed: 1 },
    );
    expect([...widths].sort()).toEqual([1, 2, 4]);
  });

  it('big values with framing in nested containers round-trip', () => {
    const value = [
      ['k1', { type: 'as', value: Array.from({ length: 3000 }, (_, i) => `entry-${i}`) }],
      ['k2', { type: 'ay', value: Buffer.alloc(70000, 7) }],
      ['k3', { type: 'a(sv)', value: [['x', { type: 's', value: 'y'.repeat(300) }]] }],
    ];
    const bytes = serialize('a{sv}', value);
    expect(bytes.length).toBeGreaterThan(0xffff);
    expect(isDeepStrictEqual(parse('a{sv}', bytes), value)).toBe(true);
  });
});

describe('robustness: parse returns or throws GVARIANT_MALFORMED, nothing else', () => {
  it('random types, random bytes', () => {
    fc.assert(
      fc.property(typeArb(4), fc.uint8Array({ maxLength: 48 }), (type, bytes) => {
        parseOrMalformed(type, bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('random bytes that happen to parse are in normal form (serialize gives them back)', () => {
    // Small, framing-heavy types so that random bytes parse often enough to matter.
    const type = fc.constantFrom('(sy)', '(ys)', '(ss)', 'as', 'aay', 'a(sy)', 'a(ys)', '(ayay)', 'ms', 'may', 'mms', 'v', 'av', '{ys}', 'a{yv}', '(yy)', 'ab', 'a()', '(sss)', '(aysy)', 'maay', '(y()s)');
    fc.assert(
      fc.property(type, fc.uint8Array({ maxLength: 12 }), (type, bytes) => {
        const r = parseOrMalformed(type, bytes);
        if (r.ok) expectNormal(type, bytes, r.value);
      }),
      { numRuns: 5000 },
    );
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), to: fc.constantFrom(0, 1, 0xff, 0x7f, 0x80, 0x28, 0x29, 0x61) }),
    fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
    fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

  function mutate(bytes: Buffer, m: Mutation): Buffer {
    const out = Buffer.from(bytes);
    switch (m.kind) {
      case 'flip':
        if (out.length) out[m.at % out.length] ^= m.xor;
        return out;
      case 'set':
        if (out.length) out[m.at % out.length] = m.to;
        return out;
      case 'truncate':
        return out.subarray(0, out.length ? m.keep % out.length : 0);
      case 'drop':
        return out.length ? Buffer.concat([out.subarray(0, m.at % out.length), out.subarray((m.at % out.length) + 1)]) : out;
      case 'extend':
        return Buffer.concat([out, m.extra]);
    }
  }

  it('valid encodings with flipped bytes, truncations and extensions', () => {
    fc.assert(
      fc.property(typedArb(4), fc.array(mutation, { minLength: 1, maxLength: 3 }), ({ type, value }, mutations) => {
        let bytes = serialize(type, value);
        for (const m of mutations) bytes = mutate(bytes, m);
        const r = parseOrMalformed(type, bytes);
        // What parses must be the normal form of what it parsed to (no second encoding of a value).
        if (r.ok) expectNormal(type, bytes, r.value);
      }),
      { numRuns: 2000 },
    );
  });

  it('every truncation of a valid encoding of a non-fixed type either fails or is another valid value', () => {
    fc.assert(
      fc.property(typedArb(3), ({ type, value }) => {
        const bytes = serialize(type, value);
        for (let n = 0; n < bytes.length; n++) {
          const r = parseOrMalformed(type, bytes.subarray(0, n));
          if (r.ok) expectNormal(type, bytes.subarray(0, n), r.value);
        }
      }),
      { numRuns: 150 },
    );
  });

  it.each<[string, number[]]>([
    // Found by the properties above; each once threw RangeError (ERR_BUFFER_OUT_OF_BOUNDS)
    // or was accepted although it is not in normal form.
    ['(ss)', []],
    ['(ays)', []],
    ['a(ss)', [0]],
    ['(sy)', [0x61, 0, 0x05, 0, 0, 0x02]],
    ['(ayy)', [0, 0, 0, 0]],
    ['v', [0]],
    ['v', [0x61, 0, 0x7a]],
    ['v', [0, ...Buffer.from('a'.repeat(300) + 'y')]],
    ['as', [0x61, 0, 0xff]],
    ['as', [0x61, 0, 0x01, 0x00]],
    ['as', [0x61, 0, 0x02, 0x01]],
    ['as', [0]],
    ['a(si)', [0x66, 0x6f, 0x6f, 0, 0xff, 0xff, 0xff, 0xff, 0x05]],
    ['(si)', [0x66, 0x6f, 0x6f, 0, 0xff, 0xff, 0xff, 0xff, 0x09]],
    ['ms', [0x61, 0, 0x01]],
    ['ab', [2]],
    ['s', [0xc3, 0x28, 0]],
    ['s', [0x61, 0, 0x62, 0]],
    ['()', [1]],
    ['(iy)', [0x60, 0, 0, 0, 0x70, 0, 0, 1]],
    ['a(yi)', [1, 0, 0, 0, 2, 0, 0]],
  ])('%s %j -> GVARIANT_MALFORMED', (type, bytes) => {
    expect(codeOf(() => parse(type, Buffer.from(bytes)))).toBe('GVARIANT_MALFORMED');
  });

  it('refuses variants nested past the depth limit without overflowing the stack', () => {
    let data = Buffer.from([1, 0, 0x79]); // <byte 1>
    for (let i = 0; i < 200; i++) data = Buffer.concat([data, Buffer.from([0, 0x76])]);
    expect(codeOf(() => parse('v', data))).toBe('GVARIANT_MALFORMED');
    let ok = Buffer.from([1, 0, 0x79]);
    for (let i = 0; i < 50; i++) ok = Buffer.concat([ok, Buffer.from([0, 0x76])]);
    expect(parseOrMalformed('v', ok).ok).toBe(true);
  });

  it('stays fast on large hostile inputs', () => {
    const inputs = [Buffer.alloc(1 << 20), Buffer.alloc(1 << 20, 0xff), Buffer.alloc(1 << 20, 0x01)];
    for (const type of ['a()', 'aay', 'as', 'av', 'v', 'a(sv)', 'mmmmmmay', 'aaaaaay', 'a{sv}', '(a{sv}aya(say)sstayay)']) {
      for (const data of inputs) {
        parseOrMalformed(type, data, 5000);
      }
    }
  });
});

describe('values survive as the model says', () => {
  it('ay parses to a Buffer and a{sv} to [key, { type, value }] pairs', () => {
    const v = parse('(aya{sv})', serialize('(aya{sv})', [Buffer.from('ab'), [['k', { type: 'mu', value: 3 }]]])) as [Buffer, unknown];
    expect(Buffer.isBuffer(v[0])).toBe(true);
    expect(v[1]).toEqual([['k', { type: 'mu', value: 3 }]]);
  });

  it('valueArb produces values serialize accepts for every generated type', () => {
    fc.assert(
      fc.property(typeArb(3).chain((t) => valueArb(t, { glibText: true }).map((v) => [t, v] as const)), ([t, v]) => {
        serialize(t, v);
      }),
      { numRuns: 200 },
    );
  });
});
