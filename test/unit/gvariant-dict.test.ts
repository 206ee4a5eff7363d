// GLib's GVariantDict order: the orders below are the ones Debian's ostree
// 2022.7 (GLib 2.74) wrote into real summary files; the interop suite checks
// whole files, static-delta dicts large enough to resize the table included.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { glibDictOrder, glibStrHash } from '../../src/core/gvariant-dict.js';

const keys = <T>(entries: [string, T][]): string[] => entries.map(([k]) => k);

describe('g_str_hash', () => {
  it('is djb2 over signed chars', () => {
    expect(glibStrHash('')).toBe(5381);
    expect(glibStrHash('a')).toBe(5381 * 33 + 97);
    // A byte >= 0x80 counts as negative (signed char): 5381 * 33 - 61 for 0xc3.
    expect(glibStrHash('é')).toBe((((5381 * 33 - 61) >>> 0) * 33 - 87) >>> 0);
  });
});

describe('glibDictOrder', () => {
  it('orders a summary ref entry as ostree wrote it (version before timestamp)', () => {
    expect(keys(glibDictOrder([['ostree.commit.timestamp', 1], ['ostree.commit.version', 2]]))).toEqual(['ostree.commit.version', 'ostree.commit.timestamp']);
  });

  it("orders a summary's additional metadata as ostree wrote it", () => {
    const inserted = ['ostree.summary.last-modified', 'ostree.summary.mode', 'ostree.summary.tombstone-commits', 'ostree.summary.indexed-deltas'];
    expect(keys(glibDictOrder(inserted.map((k) => [k, 0])))).toEqual(['ostree.summary.mode', 'ostree.summary.last-modified', 'ostree.summary.tombstone-commits', 'ostree.summary.indexed-deltas']);
    expect(keys(glibDictOrder(['ostree.static-deltas', ...inserted].map((k) => [k, 0])))).toEqual([
      'ostree.summary.mode',
      'ostree.summary.last-modified',
      'ostree.summary.tombstone-commits',
      'ostree.static-deltas',
      'ostree.summary.indexed-deltas',
    ]);
  });

  it('keeps the place of a key inserted again and takes its new value', () => {
    const out = glibDictOrder([['b', 1], ['a', 2], ['b', 3]]);
    expect(out).toHaveLength(2);
    expect(Object.fromEntries(out)).toEqual({ a: 2, b: 3 });
    expect(keys(out)).toEqual(keys(glibDictOrder([['b', 0], ['a', 0]])));
  });

  it('holds every key once with its last value, through resizes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 12 }), fc.integer()), { maxLength: 300 }), (entries) => {
        const out = glibDictOrder(entries);
        const expected = new Map<string, number>();
        for (const [k, v] of entries) expected.set(k, v);
        expect(out).toHaveLength(expected.size);
        expect(new Map(out)).toEqual(expected);
      }),
    );
  });
});
