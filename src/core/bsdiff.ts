// Binary patches in the stream layout of bsdiff 4 (the one libostree's
// BSPATCH delta operation reads): repeated control triples of three 8-byte
// sign-magnitude little-endian integers (diff length, extra length, seek in
// the old file), each followed by `diff length` bytes to add to the old
// bytes at the current position and `extra length` literal bytes.
//
// Our own matcher, not bsdiff's suffix sort: old positions are indexed by a
// hash of 8 bytes (every 4th position), the new file is scanned for anchors,
// and each anchor is extended backwards exactly and forwards approximately
// (kept while equal bytes outnumber different ones), so code whose addresses
// shifted becomes a run of mostly-zero differences that xz compresses well.
// Linear time; good enough where the old and new file share most bytes.

import { StrataError } from '../errors.js';

const KEY = 8;
const STEP = 4;
const MIN_MATCH = 12;

function hashAt(b: Buffer, i: number): number {
  const x = Math.imul(b.readUInt32LE(i), 0x9e3779b1) ^ Math.imul(b.readUInt32LE(i + 4), 0x85ebca77);
  return (x ^ (x >>> 15)) >>> 0;
}

function offout(n: number, out: Buffer, at: number): void {
  const neg = n < 0;
  let v = Math.abs(n);
  for (let i = 0; i < 8; i++) {
    out[at + i] = v % 256;
    v = Math.floor(v / 256);
  }
  if (neg) out[at + 7] |= 0x80;
}

function offin(buf: Buffer, at: number): number {
  let v = 0;
  for (let i = 7; i >= 0; i--) v = v * 256 + (i === 7 ? buf[at + i] & 0x7f : buf[at + i]);
  if (!Number.isSafeInteger(v)) throw new StrataError('DELTA_MALFORMED', 'binary patch holds an out-of-range number', {});
  return buf[at + 7] & 0x80 ? -v : v;
}

interface Segment {
  newStart: number;
  oldStart: number;
  length: number;
}

/** Approximate matches of `next` in `old`, in new-file order, not overlapping. */
function findSegments(old: Buffer, next: Buffer): Segment[] {
  const segments: Segment[] = [];
  if (old.length < KEY || next.length < KEY) return segments;
  let bits = 10;
  while (1 << bits < (old.length / STEP) * 2 && bits < 24) bits++;
  const mask = (1 << bits) - 1;
  const table = new Int32Array(1 << bits).fill(-1);
  for (let p = 0; p + KEY <= old.length; p += STEP) table[hashAt(old, p) & mask] = p;

  let i = 0;
  let covered = 0; // new bytes before this are in a segment
  let lastShift = 0; // old position minus new position of the last segment
  while (i + MIN_MATCH <= next.length) {
    // Prefer continuing the previous alignment (code after an insertion), then the hash.
    let j = -1;
    const aligned = i + lastShift;
    if (aligned >= 0 && aligned + MIN_MATCH <= old.length && next.compare(old, aligned, aligned + MIN_MATCH, i, i + MIN_MATCH) === 0) {
      j = aligned;
    } else {
      const c = table[hashAt(next, i) & mask];
      if (c >= 0 && c + MIN_MATCH <= old.length && i + MIN_MATCH <= next.length && next.compare(old, c, c + MIN_MATCH, i, i + MIN_MATCH) === 0) j = c;
    }
    if (j < 0) {
      i++;
      continue;
    }
    let s = i;
    let t = j;
    while (s > covered && t > 0 && next[s - 1] === old[t - 1]) {
      s--;
      t--;
    }
    // Forward: keep the length where (equal - different) peaked.
    let score = 0;
    let best = 0;
    let bestLen = 0;
    let k = 0;
    const limit = Math.min(next.length - s, old.length - t);
    while (k < limit) {
      score += next[s + k] === old[t + k] ? 1 : -1;
      k++;
      if (score > best) {
        best = score;
        bestLen = k;
      } else if (score < best - 32) break;
    }
    segments.push({ newStart: s, oldStart: t, length: bestLen });
    lastShift = t - s;
    covered = s + bestLen;
    i = covered;
  }
  return segments;
}

/** A bsdiff-4 stream turning `old` into `next`, and how many new bytes came from matches. */
export function makePatch(old: Buffer, next: Buffer): { patch: Buffer; matched: number } {
  const segments = findSegments(old, next);
  const chunks: Buffer[] = [];
  let matched = 0;
  let newPos = 0;
  let oldPos = 0;
  // Each triple: diff over a segment, then the literal bytes up to the next segment.
  const emit = (diffLen: number, diffOld: number, extraEnd: number, nextOld: number): void => {
    const ctrl = Buffer.alloc(24);
    const extraLen = extraEnd - (newPos + diffLen);
    offout(diffLen, ctrl, 0);
    offout(extraLen, ctrl, 8);
    offout(nextOld - (diffOld + diffLen), ctrl, 16);
    chunks.push(ctrl);
    if (diffLen > 0) {
      const d = Buffer.allocUnsafe(diffLen);
      for (let x = 0; x < diffLen; x++) d[x] = (next[newPos + x] - old[diffOld + x]) & 0xff;
      chunks.push(d);
    }
    if (extraLen > 0) chunks.push(next.subarray(newPos + diffLen, extraEnd));
    newPos = extraEnd;
    oldPos = nextOld;
  };
  // Literal bytes before the first segment go in a triple with an empty diff.
  if (segments.length === 0 || segments[0].newStart > 0) emit(0, 0, segments.length ? segments[0].newStart : next.length, segments.length ? segments[0].oldStart : 0);
  for (let n = 0; n < segments.length; n++) {
    const seg = segments[n];
    if (seg.newStart !== newPos || seg.oldStart !== oldPos) throw new StrataError('INTERNAL', 'bsdiff segments out of step');
    const following = segments[n + 1];
    matched += seg.length;
    emit(seg.length, seg.oldStart, following ? following.newStart : next.length, following ? following.oldStart : seg.oldStart + seg.length);
  }
  return { patch: Buffer.concat(chunks), matched };
}

/** Applies a bsdiff-4 stream to `old`, making exactly `newSize` bytes; refuses a stream that does not fit. */
export function applyPatch(old: Buffer, patch: Buffer, newSize: number): Buffer {
  const bad = (why: string): StrataError => new StrataError('DELTA_MALFORMED', `binary patch is malformed: ${why}`, {});
  const out = Buffer.alloc(newSize);
  let newPos = 0;
  let oldPos = 0;
  let p = 0;
  while (newPos < newSize) {
    if (p + 24 > patch.length) throw bad('it ends inside a control block');
    const diffLen = offin(patch, p);
    const extraLen = offin(patch, p + 8);
    const seek = offin(patch, p + 16);
    p += 24;
    if (diffLen < 0 || extraLen < 0 || newPos + diffLen + extraLen > newSize) throw bad('a length is negative or runs past the new file');
    if (p + diffLen + extraLen > patch.length) throw bad('it ends inside a data block');
    for (let x = 0; x < diffLen; x++) {
      const o = oldPos + x;
      out[newPos + x] = (patch[p + x] + (o >= 0 && o < old.length ? old[o] : 0)) & 0xff;
    }
    p += diffLen;
    newPos += diffLen;
    oldPos += diffLen;
    patch.copy(out, newPos, p, p + extraLen);
    p += extraLen;
    newPos += extraLen;
    oldPos += seek;
  }
  return out;
}
