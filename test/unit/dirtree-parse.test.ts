// parseDirTree reads dirtrees with its own code (it is on every pull's and
// checkout's path); here it is held to the generic GVariant reader plus the
// entry-name rules, on generated trees and on damaged copies of them: both
// accept the same bytes with the same result, or both refuse.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, serialize } from '../../src/core/gvariant.js';
import { type DirTree, checksumFromBytes, compareNames, parseDirTree, serializeDirTree, validateEntryName } from '../../src/core/objects.js';
import { StrataError } from '../../src/errors.js';

/** The generic path: parse the GVariant, then the checksum and name rules. */
function reference(data: Uint8Array): DirTree {
  let raw: [[string, Buffer][], [string, Buffer, Buffer][]];
  try {
    raw = parse('(a(say)a(sayay))', data) as typeof raw;
  } catch (err) {
    if (err instanceof StrataError && err.code === 'GVARIANT_MALFORMED') throw new StrataError('OBJECT_MALFORMED', `corrupt dirtree object: ${err.message}`);
    throw err;
  }
  const files = raw[0].map(([name, c]) => ({ name, checksum: checksumFromBytes(c) }));
  const dirs = raw[1].map(([name, t, m]) => ({ name, tree: checksumFromBytes(t), meta: checksumFromBytes(m) }));
  const seen = new Set<string>();
  for (const list of [files, dirs]) {
    for (let i = 0; i < list.length; i++) {
      validateEntryName(list[i].name);
      if (i > 0 && compareNames(list[i - 1].name, list[i].name) >= 0) throw new StrataError('OBJECT_MALFORMED', 'not sorted');
      if (seen.has(list[i].name)) throw new StrataError('OBJECT_MALFORMED', 'twice');
      seen.add(list[i].name);
    }
  }
  return { files, dirs };
}

type Outcome = { ok: true; tree: DirTree } | { ok: false; code: string };

function outcome(fn: () => DirTree): Outcome {
  try {
    return { ok: true, tree: fn() };
  } catch (err) {
    if (!(err instanceof StrataError)) throw err;
    return { ok: false, code: err.code };
  }
}

function agree(data: Uint8Array): void {
  const want = outcome(() => reference(data));
  const got = outcome(() => parseDirTree(data));
  expect(got.ok).toBe(want.ok);
  if (want.ok && got.ok) expect(got.tree).toEqual(want.tree);
  if (!got.ok) expect(['OBJECT_MALFORMED', 'UNSAFE_PATH']).toContain(got.code);
}

const name = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-c.]{1,4}$/) },
  { weight: 1, arbitrary: fc.constantFrom('', '.', '..', 'a/b', 'é', 'ü-x', '\u{1F600}', 'A', 'zz') },
);
const sum = fc.oneof({ weight: 8, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) });
const rawTree = fc.tuple(
  fc.array(fc.tuple(name, sum), { maxLength: 12 }),
  fc.array(fc.tuple(name, sum, sum), { maxLength: 6 }),
  fc.boolean(),
).map(([files, dirs, sorted]) => {
  const order = (a: [string, ...unknown[]], b: [string, ...unknown[]]): number => compareNames(a[0], b[0]);
  return sorted ? [[...files].sort(order), [...dirs].sort(order)] : [files, dirs];
});

describe('parseDirTree', () => {
  it('agrees with the generic reader on generated trees, sorted or not, with bad names and short checksums', () => {
    fc.assert(fc.property(rawTree, (t) => agree(serialize('(a(say)a(sayay))', t))), { numRuns: 2000 });
  });

  it('agrees with it on damaged bytes: a changed byte, a cut, an added byte', () => {
    // Damage lands in the framing offsets (the last bytes of each container) as often as anywhere else.
    const damaged = fc.tuple(rawTree, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'add'), fc.boolean()).map(([t, at, v, how, nearEnd]) => {
      const b = Buffer.from(serialize('(a(say)a(sayay))', t));
      if (b.length === 0) return b;
      const i = nearEnd ? b.length - 1 - (at % Math.min(b.length, 8)) : at % b.length;
      if (how === 'flip') b[i] = v;
      if (how === 'cut') return b.subarray(0, i);
      if (how === 'add') return Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
      return b;
    });
    fc.assert(fc.property(damaged, agree), { numRuns: 6000 });
  });

  it('reads large trees whose framing offsets take 2 and 4 bytes', () => {
    for (const n of [20, 3000]) {
      const tree: DirTree = {
        files: Array.from({ length: n }, (_, i) => ({ name: `file-${String(i).padStart(5, '0')}`, checksum: 'ab'.repeat(32) as DirTree['files'][0]['checksum'] })),
        dirs: Array.from({ length: n / 10 }, (_, i) => ({ name: `dir-${i}`, tree: 'cd'.repeat(32), meta: 'ef'.repeat(32) }) as DirTree['dirs'][0]).sort((a, b) => compareNames(a.name, b.name)),
      };
      const bytes = serializeDirTree(tree);
      expect(parseDirTree(bytes)).toEqual(reference(bytes));
      expect(parseDirTree(bytes).files.length).toBe(n);
    }
  });

  it('refuses a name that is both a file and a directory', () => {
    const c = Buffer.alloc(32, 1);
    const bytes = serialize('(a(say)a(sayay))', [[['x', c]], [['x', c, c]]]);
    expect(() => parseDirTree(bytes)).toThrow(/"x" twice/);
  });
});
