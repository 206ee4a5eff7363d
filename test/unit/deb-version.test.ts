// Debian version ordering: known pairs from Debian Policy and dpkg's own
// tests, and agreement with `dpkg --compare-versions` on a sample.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareDebVersions, parseDebVersion } from '../../src/repo/deb-version.js';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

// [a, b, expected sign of compare(a, b)]
const PAIRS: [string, string, number][] = [
  ['1.0', '1.0', 0],
  ['1.0', '1.1', -1],
  ['1.10', '1.9', 1],
  ['1.0~rc1', '1.0', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~', '1.0', -1],
  ['1.0', '1.0a', -1],
  ['1.0a', '1.0+', -1], // letters sort before non-letters
  ['1.0-1', '1.0-2', -1],
  ['1.0-1', '1.0', 1],
  ['1.0', '1.0-0', 0],
  ['1:0.1', '2.0', 1], // epoch wins
  ['0:2.0', '2.0', 0],
  ['2.6.1', '2.6.2', -1], // apt in the rootfs pair
  ['7.88.1-10+deb12u14', '7.88.1-10+deb12u15', -1],
  ['5.4.1-1+deb12u1', '5.4.1-1', 1],
  ['20250419~deb12u1', '20250419', -1],
  ['1.001', '1.1', 0], // leading zeros are not significant
  ['1.2.3-4ubuntu1', '1.2.3-4', 1],
  ['2.0-1~bpo12+1', '2.0-1', -1],
  ['1:1.1.2-0+deb12u1', '1.1.3', 1],
  ['a', 'b', -1],
  ['1.0-1.1', '1.0-1', 1],
  ['9999999999999999999999', '10000000000000000000000', -1], // numbers longer than a double
];

describe('compareDebVersions', () => {
  it.each(PAIRS)('%s vs %s', (a, b, want) => {
    expect(sign(compareDebVersions(a, b))).toBe(want);
    expect(sign(compareDebVersions(b, a))).toBe(-want || 0);
  });

  it('splits epoch, upstream and revision (the revision after the last dash)', () => {
    expect(parseDebVersion('1:2.3-4-5')).toEqual({ epoch: 1, upstream: '2.3-4', revision: '5' });
    expect(parseDebVersion('2.3')).toEqual({ epoch: 0, upstream: '2.3', revision: '' });
  });

  const hasDpkg = spawnSync('dpkg', ['--version']).status === 0;
  it.skipIf(!hasDpkg)('agrees with dpkg --compare-versions on random versions', () => {
    const part = fc.stringMatching(/^[0-9][0-9a-z.+~]{0,6}$/);
    const version = fc.tuple(fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), part, fc.option(fc.stringMatching(/^[0-9a-z.+~]{1,5}$/), { nil: undefined }))
      .map(([e, u, r]) => `${e !== undefined ? `${e}:` : ''}${u}${r !== undefined ? `-${r}` : ''}`);
    fc.assert(
      fc.property(version, version, (a, b) => {
        const lt = spawnSync('dpkg', ['--compare-versions', a, 'lt', b]).status === 0;
        const eq = spawnSync('dpkg', ['--compare-versions', a, 'eq', b]).status === 0;
        expect(sign(compareDebVersions(a, b))).toBe(lt ? -1 : eq ? 0 : 1);
      }),
      { numRuns: 150 },
    );
  });
});
