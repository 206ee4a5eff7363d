import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatch, makePatch } from '../../src/core/bsdiff.js';
import { readVarUint, writeVarUint } from '../../src/core/delta-format.js';
import { codeOf } from '../helpers/errors.js';

/** `base` with a few edits: replaced bytes, an insertion and a deletion. */
function edit(base: Buffer, seed: number): Buffer {
  const out = Buffer.from(base);
  for (let i = seed % 97; i < out.length; i += 211) out[i] = (out[i] + 1 + (seed % 5)) & 0xff;
  const cut = Math.floor(out.length / 3);
  return Buffer.concat([out.subarray(0, cut), Buffer.from(`inserted ${seed}`), out.subarray(cut + 50)]);
}

describe('bsdiff-4 patches', () => {
  it('turns the old file into exactly the new one, for random pairs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
        const old = Buffer.from(a);
        const next = Buffer.from(b);
        expect(applyPatch(old, makePatch(old, next).patch, next.length).equals(next)).toBe(true);
      }),
    );
  });

  it('turns an edited file back, and most of it comes from matches', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2000, maxLength: 20000 }), fc.nat(), (a, seed) => {
        const old = Buffer.from(a);
        const next = edit(old, seed);
        const { patch, matched } = makePatch(old, next);
        expect(applyPatch(old, patch, next.length).equals(next)).toBe(true);
        expect(matched).toBeGreaterThan(next.length / 2);
      }),
      { numRuns: 50 },
    );
  });

  it('makes small patches for shifted code (diff bytes compress)', () => {
    const old = Buffer.alloc(200_000);
    let x = 12345;
    for (let i = 0; i < old.length; i++) old[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
    const next = Buffer.concat([Buffer.from('a new header'), old.subarray(0, 100_000), Buffer.from('more'), old.subarray(100_000)]);
    const { patch, matched } = makePatch(old, next);
    expect(matched).toBe(old.length);
    // The matched bytes become zeros: only controls and the inserted bytes are not.
    expect(patch.filter((b) => b !== 0).length).toBeLessThan(100);
    expect(applyPatch(old, patch, next.length).equals(next)).toBe(true);
  });

  it('refuses a truncated or overlong patch with DELTA_MALFORMED', () => {
    const old = Buffer.from('the quick brown fox jumps over the lazy dog, twice over: the quick brown fox');
    const next = Buffer.from('the quick brown cat jumps over the lazy dog, twice over: the quick brown fox!');
    const { patch } = makePatch(old, next);
    expect(codeOf(() => applyPatch(old, patch.subarray(0, patch.length - 3), next.length))).toBe('DELTA_MALFORMED');
    expect(codeOf(() => applyPatch(old, patch, next.length - 5))).toBe('DELTA_MALFORMED');
  });
});

describe('varuint64', () => {
  it('round-trips and matches the protobuf encoding', () => {
    const out: number[] = [];
    writeVarUint(out, 300);
    expect(out).toEqual([0xac, 0x02]);
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const b: number[] = [];
        writeVarUint(b, n);
        expect(readVarUint(Buffer.from(b), 0)).toEqual([n, b.length]);
      }),
    );
    expect(codeOf(() => readVarUint(Buffer.from([0x80, 0x80]), 0))).toBe('DELTA_MALFORMED');
  });
});
