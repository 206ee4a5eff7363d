// The repository `config` as GLib's GKeyFile reads it (libostree keeps its
// config, remotes included, in one): `[group]` lines, `key=value` lines,
// comments (`#`) and blank lines. Editing keeps every line we do not touch, so
// sections other tools wrote survive byte for byte.
//
// Values are escaped as g_key_file_set_string does: `\\`, `\n`, `\t`, `\r`,
// and `\s` for a leading space; reading undoes the same escapes.

import { StrataError } from '../errors.js';

type Line =
  | { kind: 'group'; name: string; text: string }
  | { kind: 'entry'; key: string; raw: string; text: string }
  | { kind: 'other'; text: string };

export class KeyFile {
  private lines: Line[];

  private constructor(lines: Line[]) {
    this.lines = lines;
  }

  static parse(text: string): KeyFile {
    const lines: Line[] = [];
    const rows = text.split('\n');
    if (rows[rows.length - 1] === '') rows.pop();
    for (const text of rows) {
      const trimmed = text.trim();
      const group = /^\[([^\[\]]*)\]$/.exec(trimmed);
      if (group) {
        lines.push({ kind: 'group', name: group[1], text });
        continue;
      }
      const eq = text.indexOf('=');
      if (trimmed === '' || trimmed.startsWith('#') || eq < 0) {
        lines.push({ kind: 'other', text });
        continue;
      }
      // GKeyFile trims spaces around the key and before the value.
      lines.push({ kind: 'entry', key: text.slice(0, eq).trim(), raw: text.slice(eq + 1).replace(/^[ \t]+/, ''), text });
    }
    return new KeyFile(lines);
  }

  /** Group names in file order (each once). */
  groups(): string[] {
    const seen: string[] = [];
    for (const l of this.lines) if (l.kind === 'group' && !seen.includes(l.name)) seen.push(l.name);
    return seen;
  }

  hasGroup(group: string): boolean {
    return this.lines.some((l) => l.kind === 'group' && l.name === group);
  }

  /** The (unescaped) value of a key, the last one when it repeats; undefined when absent. */
  get(group: string, key: string): string | undefined {
    let current: string | undefined;
    let value: string | undefined;
    for (const l of this.lines) {
      if (l.kind === 'group') current = l.name;
      else if (l.kind === 'entry' && current === group && l.key === key) value = l.raw;
    }
    return value === undefined ? undefined : unescapeValue(value);
  }

  /** Every key of a group, unescaped, in file order (a repeated key keeps its last value). */
  entries(group: string): Map<string, string> {
    const out = new Map<string, string>();
    let current: string | undefined;
    for (const l of this.lines) {
      if (l.kind === 'group') current = l.name;
      else if (l.kind === 'entry' && current === group) out.set(l.key, unescapeValue(l.raw));
    }
    return out;
  }

  /** Sets a key: replaces its line where it is, or appends it to the group (made at the end if missing). */
  set(group: string, key: string, value: string): void {
    validateName(group, 'group');
    validateName(key, 'key');
    const line: Line = { kind: 'entry', key, raw: escapeValue(value), text: `${key}=${escapeValue(value)}` };
    let current: string | undefined;
    let lastOfGroup = -1;
    let found = -1;
    this.lines.forEach((l, i) => {
      if (l.kind === 'group') current = l.name;
      if (current === group) {
        if (l.kind !== 'other' || l.text.trim() !== '') lastOfGroup = i;
        if (l.kind === 'entry' && l.key === key) found = i;
      }
    });
    if (found >= 0) {
      this.lines[found] = line;
      // Later duplicates would win on reading; drop them.
      current = undefined;
      this.lines = this.lines.filter((l, i) => {
        if (l.kind === 'group') current = l.name;
        return !(i > found && current === group && l.kind === 'entry' && l.key === key);
      });
      return;
    }
    if (lastOfGroup >= 0) {
      this.lines.splice(lastOfGroup + 1, 0, line);
      return;
    }
    const last = this.lines[this.lines.length - 1];
    if (last && !(last.kind === 'other' && last.text.trim() === '')) this.lines.push({ kind: 'other', text: '' });
    this.lines.push({ kind: 'group', name: group, text: `[${group}]` }, line);
  }

  /** Removes a group, its entries and the blank lines before it; true when it was there. */
  removeGroup(group: string): boolean {
    const out: Line[] = [];
    let inGroup = false;
    let removed = false;
    for (const l of this.lines) {
      if (l.kind === 'group') {
        inGroup = l.name === group;
        if (inGroup) {
          removed = true;
          while (out.length > 0) {
            const prev = out[out.length - 1];
            if (prev.kind === 'other' && prev.text.trim() === '') out.pop();
            else break;
          }
          continue;
        }
        if (removed && out.length > 0) {
          const prev = out[out.length - 1];
          if (!(prev.kind === 'other' && prev.text.trim() === '')) out.push({ kind: 'other', text: '' });
        }
      }
      if (!inGroup) out.push(l);
    }
    this.lines = out;
    return removed;
  }

  toString(): string {
    return this.lines.map((l) => l.text).join('\n') + '\n';
  }
}

function validateName(name: string, what: string): void {
  if (name === '' || /[\x00-\x1f\x7f]/.test(name) || (what === 'group' ? /[\[\]]/ : /[=\[\]]/).test(name) || name.trim() !== name) {
    throw new StrataError('REPO_CONFIG', `cannot write config ${what} ${JSON.stringify(name)}`, { [what]: name });
  }
}

export function escapeValue(value: string): string {
  let out = value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r');
  if (out.startsWith(' ')) out = '\\s' + out.slice(1);
  return out;
}

export function unescapeValue(raw: string): string {
  return raw.replace(/\\(.)/g, (_m, c: string) => ({ s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] ?? `\\${c}`);
}

/** GKeyFile's booleans: `true`/`1` and `false`/`0`; anything else is undefined. */
export function keyFileBoolean(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}
