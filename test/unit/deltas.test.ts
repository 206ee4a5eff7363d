// Static delta names and paths (libostree's modified base64).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Checksum } from '../../src/core/objects.js';
import { checksumToModifiedBase64, deltaFromDirNames, deltaIndexPath, modifiedBase64ToChecksum, parseDeltaName, staticDeltaDir } from '../../src/core/deltas.js';

// A delta `ostree static-delta generate` made: deltas/Ag/syH_fr1V…-34B0XrFSgo…+UiH4
const FROM = '020b321ff7ebd55f798fde52311f5fb3a7653e847629168e9849340a640b1709' as Checksum;
const FROM_B64 = 'AgsyH_fr1V95j95SMR9fs6dlPoR2KRaOmEk0CmQLFwk';
const TO_SEEN = 'df80745eb152828d9788edc14a1c4c7e841794e13b5e4b374e8c020c9f94887e' as Checksum;
const TO_SEEN_B64 = '34B0XrFSgo2XiO3BShxMfoQXlOE7Xks3TowCDJ+UiH4';

describe('modified base64', () => {
  it('is base64 without padding and with _ for /', () => {
    expect(checksumToModifiedBase64(FROM)).toBe(FROM_B64);
    expect(checksumToModifiedBase64('ff'.repeat(32) as Checksum)).toBe('__________________________________________8');
    expect(modifiedBase64ToChecksum(FROM_B64)).toBe(FROM);
    expect(staticDeltaDir({ from: FROM, to: TO_SEEN })).toBe(`deltas/Ag/syH_fr1V95j95SMR9fs6dlPoR2KRaOmEk0CmQLFwk-${TO_SEEN_B64}`);
  });

  it('round-trips every checksum (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const c = Buffer.from(bytes).toString('hex') as Checksum;
        const b = checksumToModifiedBase64(c);
        expect(b).toMatch(/^[A-Za-z0-9+_]{43}$/);
        expect(modifiedBase64ToChecksum(b)).toBe(c);
      }),
    );
  });

  it.each(['', 'abc', FROM_B64 + 'A', FROM_B64.slice(0, 42) + 'B', FROM_B64.replace('_', '/'), FROM_B64.slice(0, 42) + '='])('refuses %j', (text) => {
    expect(modifiedBase64ToChecksum(text)).toBeNull();
  });
});

describe('delta paths', () => {
  const TO = 'ab'.repeat(32) as Checksum;
  it('lays deltas out as libostree does', () => {
    const to = checksumToModifiedBase64(TO);
    expect(staticDeltaDir({ from: null, to: TO })).toBe(`deltas/${to.slice(0, 2)}/${to.slice(2)}`);
    expect(staticDeltaDir({ from: FROM, to: TO })).toBe(`deltas/${FROM_B64.slice(0, 2)}/${FROM_B64.slice(2)}-${to}`);
    expect(deltaIndexPath(TO)).toBe(`delta-indexes/${to.slice(0, 2)}/${to.slice(2)}.index`);
  });

  it('reads delta names back from the directory levels and from summary names', () => {
    for (const d of [{ from: null, to: TO }, { from: FROM, to: TO }]) {
      const [, first, second] = staticDeltaDir(d).split('/');
      expect(deltaFromDirNames(first, second)).toEqual(d);
    }
    expect(parseDeltaName(`${FROM}-${TO}`)).toEqual({ from: FROM, to: TO });
    expect(parseDeltaName(TO)).toEqual({ from: null, to: TO });
    expect(parseDeltaName(`${FROM}-${TO}-${TO}`)).toBeNull();
    expect(parseDeltaName('xyz')).toBeNull();
    expect(deltaFromDirNames('..', 'x')).toBeNull();
  });
});

describe('xz arguments of a delta part', () => {
  it('sizes the dictionary to the part and adds the x86 filter only when x86 binaries are a tenth of it', async () => {
    const { xzArgs } = await import('../../src/remote/delta-generate.js');
    const MiB = 1024 * 1024;
    expect(xzArgs(6, 32 * MiB, 4 * MiB)).toEqual(['-z', '-c', '-T1', '--x86', `--lzma2=preset=6,dict=${32 * MiB},depth=16`]);
    expect(xzArgs(6, 32 * MiB, 3 * MiB)).toEqual(['-z', '-c', '-T1', `--lzma2=preset=6,dict=${32 * MiB},depth=16`]);
    expect(xzArgs(3, 1000, 0)).toEqual(['-z', '-c', '-T1', `--lzma2=preset=3,dict=${MiB}`]);
    expect(xzArgs(9, 200 * MiB, 0)).toEqual(['-z', '-c', '-T1', `--lzma2=preset=9,dict=${64 * MiB},depth=16`]);
  });
});

describe("7-Zip's arguments for a delta part", () => {
  it('ask for the same .xz stream: a part-sized dictionary, the x86 filter by the same rule, one thread', async () => {
    const { sevenZipArgs } = await import('../../src/remote/delta-generate.js');
    const MiB = 1024 * 1024;
    expect(sevenZipArgs(6, 32 * MiB, 4 * MiB)).toEqual(['a', '-txz', '-an', '-si', '-so', '-bso0', '-bsp0', '-mmt=1', '-mx=6', '-mf=BCJ', `-m0=LZMA2:d=${32 * MiB}b:fb=64:mc=16`]);
    expect(sevenZipArgs(3, 1000, 0)).toEqual(['a', '-txz', '-an', '-si', '-so', '-bso0', '-bsp0', '-mmt=1', '-mx=3', `-m0=LZMA2:d=${MiB}b`]);
    expect(sevenZipArgs(9, 200 * MiB, 0).at(-1)).toBe(`-m0=LZMA2:d=${64 * MiB}b:fb=64:mc=16`);
  });
});

describe('cutting a delta into parts', () => {
  const piece = (dataBytes: number, cost = dataBytes) => ({ object: { type: 'file' as const, checksum: 'c'.repeat(64) as never }, usize: dataBytes, dataBytes, cost, x86: 0, write: () => undefined });

  it('makes as few parts as the size limit allows, cut where the estimated work is even', async () => {
    const { planParts } = await import('../../src/remote/delta-generate.js');
    // 10 pieces of 10 bytes; the first five cost three times as much, so the
    // first part takes fewer of them: 3 + 7 under a 90-byte limit (two parts
    // of 90 and 110 work), 4 + 6 under a 60-byte limit (the rest must fit).
    const pieces = Array.from({ length: 10 }, (_, i) => piece(10, i < 5 ? 30 : 10));
    expect(planParts(pieces, 90).map((p) => p.length)).toEqual([3, 7]);
    expect(planParts(pieces, 60).map((p) => p.length)).toEqual([4, 6]);
    expect(planParts(pieces, 60).flat()).toEqual(pieces);
    expect(planParts(pieces, 1000).map((p) => p.length)).toEqual([10]);
  });

  it('never puts more than the limit in a part, unless one piece alone is larger', async () => {
    const { planParts } = await import('../../src/remote/delta-generate.js');
    const parts = planParts([piece(40, 1), piece(40, 1), piece(100, 1), piece(5, 1000)], 50);
    for (const p of parts) expect(p.length === 1 || p.reduce((n, x) => n + x.dataBytes, 0) <= 50).toBe(true);
    expect(parts.flat().length).toBe(4);
    expect(planParts([], 50)).toEqual([[]]);
  });
});

