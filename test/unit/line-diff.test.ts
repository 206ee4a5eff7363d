// The dashboard's line diff: known edits, and on random inputs a script that
// rebuilds both sides and is as short as the longest common subsequence allows.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type LineOp, diffLines, splitLines, toHunks } from '../../web/src/line-diff.js';

const oldSide = (ops: LineOp[]) => ops.filter((o) => o.kind !== 'add').map((o) => o.text);
const newSide = (ops: LineOp[]) => ops.filter((o) => o.kind !== 'del').map((o) => o.text);
const edits = (ops: LineOp[]) => ops.filter((o) => o.kind !== 'same').length;

function lcsLength(a: string[], b: string[]): number {
  const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) dp[i][j] = a[i - 1] === b[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
  return dp[a.length][b.length];
}

describe('diffLines', () => {
  it('finds the one added line of /etc/group in the rootfs pair', () => {
    const a = ['root:x:0:', 'users:x:100:', 'nogroup:x:65534:'];
    const b = ['root:x:0:', 'users:x:100:', 'nogroup:x:65534:', '_ssh:x:101:'];
    expect(diffLines(a, b).filter((o) => o.kind !== 'same')).toEqual([{ kind: 'add', text: '_ssh:x:101:', newLine: 4 }]);
  });

  it('reports a changed line as a deletion then an addition, with line numbers', () => {
    const ops = diffLines(['a', 'b', 'c'], ['a', 'B', 'c']);
    expect(ops).toEqual([
      { kind: 'same', text: 'a', oldLine: 1, newLine: 1 },
      { kind: 'del', text: 'b', oldLine: 2 },
      { kind: 'add', text: 'B', newLine: 2 },
      { kind: 'same', text: 'c', oldLine: 3, newLine: 3 },
    ]);
  });

  it('handles empty sides', () => {
    expect(diffLines([], [])).toEqual([]);
    expect(diffLines([], ['x'])).toEqual([{ kind: 'add', text: 'x', newLine: 1 }]);
    expect(diffLines(['x'], [])).toEqual([{ kind: 'del', text: 'x', oldLine: 1 }]);
  });

  it('falls back to replace-all past maxEdits, still rebuilding both sides', () => {
    const a = Array.from({ length: 50 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 50 }, (_, i) => `b${i}`);
    const ops = diffLines(a, b, 10);
    expect(oldSide(ops)).toEqual(a);
    expect(newSide(ops)).toEqual(b);
  });

  it('on random inputs rebuilds both sides with the fewest edits', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c', 'd', ''), { maxLength: 30 });
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const ops = diffLines(a, b);
        expect(oldSide(ops)).toEqual(a);
        expect(newSide(ops)).toEqual(b);
        expect(edits(ops)).toBe(a.length + b.length - 2 * lcsLength(a, b));
      }),
      { numRuns: 500 },
    );
  });
});

describe('splitLines and toHunks', () => {
  it('a final newline makes no empty line', () => {
    expect(splitLines('a\nb\n')).toEqual(['a', 'b']);
    expect(splitLines('a\r\nb')).toEqual(['a', 'b']);
    expect(splitLines('')).toEqual([]);
  });

  it('keeps three lines of context and splits far-apart changes into hunks', () => {
    const a = Array.from({ length: 30 }, (_, i) => `l${i}`);
    const b = a.map((l, i) => (i === 2 || i === 25 ? `${l}!` : l));
    const hunks = toHunks(diffLines(a, b));
    expect(hunks).toHaveLength(2);
    expect(hunks[0].oldStart).toBe(1);
    expect(hunks[0].ops.map((o) => o.kind)).toEqual(['same', 'same', 'del', 'add', 'same', 'same', 'same']);
    expect(hunks[1].oldStart).toBe(23);
    expect(hunks[1].newStart).toBe(23);
  });
});
