// A line diff (Myers' O(ND) shortest edit script) for the dashboard's text
// diffs of changed config files. Pure: no DOM, unit-tested under test/unit.

export type LineOp =
  | { kind: 'same'; text: string; oldLine: number; newLine: number }
  | { kind: 'del'; text: string; oldLine: number }
  | { kind: 'add'; text: string; newLine: number };

export interface Hunk {
  oldStart: number;
  newStart: number;
  ops: LineOp[];
}

/** Splits text into lines; a final newline does not make an empty last line. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * The shortest sequence of kept, deleted and added lines turning `a` into `b`.
 * Past `maxEdits` edits (very different files) it gives up on finding the
 * shortest and reports everything as replaced, which stays correct.
 */
export function diffLines(a: string[], b: string[], maxEdits = 4000): LineOp[] {
  // Common prefix and suffix cost nothing and shrink the search.
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const ops: LineOp[] = [];
  for (let i = 0; i < pre; i++) ops.push({ kind: 'same', text: a[i], oldLine: i + 1, newLine: i + 1 });
  const mid = middle(a.slice(pre, a.length - suf), b.slice(pre, b.length - suf), maxEdits);
  for (const op of mid) {
    if (op.kind === 'same') ops.push({ ...op, oldLine: op.oldLine + pre, newLine: op.newLine + pre });
    else if (op.kind === 'del') ops.push({ ...op, oldLine: op.oldLine + pre });
    else ops.push({ ...op, newLine: op.newLine + pre });
  }
  for (let k = suf; k > 0; k--) ops.push({ kind: 'same', text: a[a.length - k], oldLine: a.length - k + 1, newLine: b.length - k + 1 });
  return ops;
}

function middle(a: string[], b: string[], maxEdits: number): LineOp[] {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max && d <= maxEdits; d++) {
    trace.push(v.slice());
    const next = v;
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && next[offset + k - 1] < next[offset + k + 1]) ? next[offset + k + 1] : next[offset + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
    v = next;
    if (found >= 0) break;
  }
  if (found < 0) {
    return [...a.map((text, i): LineOp => ({ kind: 'del', text, oldLine: i + 1 })), ...b.map((text, i): LineOp => ({ kind: 'add', text, newLine: i + 1 }))];
  }
  // Walk back through the saved frontiers to recover the path.
  const rev: LineOp[] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const prev = trace[d];
    const k = x - y;
    const down = k === -d || (k !== d && prev[offset + k - 1] < prev[offset + k + 1]);
    const pk = down ? k + 1 : k - 1;
    const px = prev[offset + pk];
    const py = px - pk;
    while (x > (down ? px : px + 1) && y > (down ? py + 1 : py)) {
      rev.push({ kind: 'same', text: a[x - 1], oldLine: x, newLine: y });
      x--;
      y--;
    }
    if (down) rev.push({ kind: 'add', text: b[y - 1], newLine: y });
    else rev.push({ kind: 'del', text: a[x - 1], oldLine: x });
    x = px;
    y = py;
  }
  while (x > 0 && y > 0) {
    rev.push({ kind: 'same', text: a[x - 1], oldLine: x, newLine: y });
    x--;
    y--;
  }
  return rev.reverse();
}

/** Groups changes with `context` unchanged lines around them, as `diff -u` does. */
export function toHunks(ops: LineOp[], context = 3): Hunk[] {
  const keep = new Uint8Array(ops.length);
  ops.forEach((o, i) => {
    if (o.kind === 'same') return;
    for (let j = Math.max(0, i - context); j <= Math.min(ops.length - 1, i + context); j++) keep[j] = 1;
  });
  const hunks: Hunk[] = [];
  let cur: Hunk | null = null;
  ops.forEach((o, i) => {
    if (!keep[i]) {
      cur = null;
      return;
    }
    if (!cur) {
      cur = { oldStart: o.kind === 'add' ? 0 : o.oldLine, newStart: o.kind === 'del' ? 0 : o.newLine, ops: [] };
      hunks.push(cur);
    }
    if (cur.oldStart === 0 && o.kind !== 'add') cur.oldStart = o.oldLine;
    if (cur.newStart === 0 && o.kind !== 'del') cur.newStart = o.newLine;
    cur.ops.push(o);
  });
  return hunks;
}
