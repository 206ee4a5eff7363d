// An independent model of systemd-boot choosing a Boot Loader Specification
// type #1 entry, with systemd's Automatic Boot Assessment counters. It is the
// referee for the sysroot code, so it imports nothing from src/ and is written
// from the specifications (UAPI.1 Boot Loader Specification, UAPI.10 Version
// Format) and systemd-boot's documented behaviour, not from our own code.

import fs from 'node:fs';
import path from 'node:path';

export interface ModelEntry {
  /** The file name as it is now in loader/entries (counter included). */
  file: string;
  /** systemd-boot's id: the file name lowercased, with the `+LEFT[-DONE]` counter removed (`.conf` kept). */
  id: string;
  title?: string;
  version?: string;
  sortKey?: string;
  machineId?: string;
  linux?: string;
  initrd: string[];
  /** Every `options` line joined by one space, as systemd-boot joins them; '' when there is none. */
  options: string;
  /** Undefined when the name carries no counter (a blessed entry, or boot counting off). */
  triesLeft?: number;
  triesDone?: number;
}

/** systemd-boot refuses counters above INT_MAX and caps tries-done there. */
const INT_MAX = 2 ** 31 - 1;

/**
 * Compares two version strings by the UAPI.10 Version Format Specification
 * (systemd's strverscmp_improved): negative when a is older, positive when
 * newer. Unset compares as the empty string.
 */
export function compareVersions(a: string | undefined, b: string | undefined): number {
  const x = a ?? '';
  const y = b ?? '';
  let i = 0;
  let j = 0;
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  const isAlpha = (c: string | undefined) => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  const isValid = (c: string) => isDigit(c) || isAlpha(c) || c === '~' || c === '-' || c === '^' || c === '.';
  // Each prefix character, in the specification's order: the string that has it
  // where the other does not is the older one (the end of a string is handled
  // between '~' and '-').
  const prefix = (c: string): number | null => {
    const pa = x[i] === c;
    const pb = y[j] === c;
    if (!pa && !pb) return null;
    if (pa !== pb) return pa ? -1 : 1;
    i++;
    j++;
    return null;
  };
  for (;;) {
    while (i < x.length && !isValid(x[i])) i++;
    while (j < y.length && !isValid(y[j])) j++;
    let r = prefix('~');
    if (r !== null) return r;
    // Past '~', a string that has ended is the older one.
    const endA = i >= x.length;
    const endB = j >= y.length;
    if (endA || endB) return endA === endB ? 0 : endA ? -1 : 1;
    for (const c of ['-', '^', '.']) {
      r = prefix(c);
      if (r !== null) return r;
    }
    if (isDigit(x[i]) || isDigit(y[j])) {
      let ie = i;
      let je = j;
      while (isDigit(x[ie])) ie++;
      while (isDigit(y[je])) je++;
      // A numeric segment is newer than none at all (an alphabetic one or the end).
      if ((ie > i) !== (je > j)) return ie > i ? 1 : -1;
      while (x[i] === '0') i++;
      while (y[j] === '0') j++;
      if (ie - i !== je - j) return ie - i > je - j ? 1 : -1;
      const da = x.slice(i, ie);
      const db = y.slice(j, je);
      if (da !== db) return da < db ? -1 : 1;
      i = ie;
      j = je;
    } else {
      let ie = i;
      let je = j;
      while (isAlpha(x[ie])) ie++;
      while (isAlpha(y[je])) je++;
      const sa = x.slice(i, ie);
      const sb = y.slice(j, je);
      const n = Math.min(sa.length, sb.length);
      // ASCII order: every capital letter sorts before every lower-case one.
      const ca = sa.slice(0, n);
      const cb = sb.slice(0, n);
      if (ca !== cb) return ca < cb ? -1 : 1;
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
      i = ie;
      j = je;
    }
  }
}

/** strcmp on UTF-8 bytes, with unset below any value (the BLS "alphanumerical order"). */
function compareStrings(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

interface ParsedName {
  id: string;
  triesLeft?: number;
  triesDone?: number;
  /** The name after one boot attempt, for counted entries. */
  nextName?: string;
}

/**
 * Reads the counter the way systemd-boot does: the last `+` starts it, LEFT is
 * one or more digits, `-DONE` is optional, and `.conf` must follow at once;
 * anything else means the entry is not counted.
 */
function parseName(file: string): ParsedName {
  const plain: ParsedName = { id: file.toLowerCase() };
  const plus = file.lastIndexOf('+');
  if (plus < 0) return plain;
  const m = /^(\d+)(?:-(\d+))?\.conf$/i.exec(file.slice(plus + 1));
  if (!m) return plain;
  const left = Number(m[1]);
  const done = m[2] === undefined ? 0 : Number(m[2]);
  if (left > INT_MAX || done > INT_MAX) return plain;
  const stem = file.slice(0, plus);
  return {
    id: `${stem}.conf`.toLowerCase(),
    triesLeft: left,
    triesDone: done,
    // systemd-boot writes plain decimal numbers (no zero padding) and never lets LEFT go below 0.
    nextName: `${stem}+${Math.max(left - 1, 0)}-${Math.min(done + 1, INT_MAX)}.conf`,
  };
}

/** Parses one entry's text: `key value` lines, `#` comments, surrounding quotes dropped, last value wins. */
function parseEntryText(file: string, text: string): ModelEntry {
  const name = parseName(file);
  const entry: ModelEntry = { file, id: name.id, initrd: [], options: '' };
  if (name.triesLeft !== undefined) {
    entry.triesLeft = name.triesLeft;
    entry.triesDone = name.triesDone;
  }
  const options: string[] = [];
  for (const raw of text.split(/[\r\n]/)) {
    const line = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([^ \t]+)[ \t]+(.*)$/.exec(line);
    if (!m) continue; // a key without a value is ignored, as systemd-boot does
    let value = m[2];
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    switch (m[1]) {
      case 'title': entry.title = value; break;
      case 'version': entry.version = value; break;
      case 'sort-key': entry.sortKey = value; break;
      case 'machine-id': entry.machineId = value; break;
      case 'linux': entry.linux = value; break;
      case 'initrd': entry.initrd.push(value); break;
      case 'options': options.push(value); break;
      default: break; // devicetree, architecture, efi…: not needed to pick a Linux entry
    }
  }
  entry.options = options.join(' ');
  return entry;
}

/** The directory holding the entries; `loader` may be a symlink to loader.0 or loader.1 (OSTree's swap). */
function entriesDir(bootDir: string): string {
  return path.join(bootDir, 'loader', 'entries');
}

/**
 * Every type #1 entry in `bootDir/loader/entries`: `*.conf` regular files,
 * skipping hidden ones and `auto-*` (names systemd-boot reserves for its own).
 * A missing directory reads as no entries.
 */
export function readEntries(bootDir: string): ModelEntry[] {
  const dir = entriesDir(bootDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const entries: ModelEntry[] = [];
  for (const file of names) {
    if (file.startsWith('.') || !file.toLowerCase().endsWith('.conf') || file.toLowerCase().startsWith('auto-')) continue;
    const full = path.join(dir, file);
    let st: fs.Stats;
    try {
      st = fs.statSync(full);
    } catch {
      continue; // a dangling symlink is no entry
    }
    if (!st.isFile()) continue;
    entries.push(parseEntryText(file, fs.readFileSync(full, 'utf8')));
  }
  return entries;
}

/** systemd-boot's entry order: the first entry is the one it boots by default. */
export function compareEntries(a: ModelEntry, b: ModelEntry): number {
  // "Bad" entries (tries left at 0) go after all others.
  const badA = a.triesLeft === 0;
  const badB = b.triesLeft === 0;
  if (badA !== badB) return badA ? 1 : -1;
  // Entries with a sort-key come before those without; only when both have one
  // do sort-key, machine-id and version (newest first) decide.
  if ((a.sortKey === undefined) !== (b.sortKey === undefined)) return a.sortKey !== undefined ? -1 : 1;
  if (a.sortKey !== undefined && b.sortKey !== undefined) {
    const r = compareStrings(a.sortKey, b.sortKey) || compareStrings(a.machineId, b.machineId) || -compareVersions(a.version, b.version);
    if (r !== 0) return r;
  }
  // Then the id, by descending version order (OSTree's ostree-2-x before ostree-1-x).
  const r = -compareVersions(a.id, b.id);
  if (r !== 0) return r;
  if (a.triesLeft === undefined || b.triesLeft === undefined) return 0;
  // Same id twice (differing only in counters): more tries left first, then fewer tries done.
  return b.triesLeft - a.triesLeft || (a.triesDone ?? 0) - (b.triesDone ?? 0);
}

export function sortEntries(entries: ModelEntry[]): ModelEntry[] {
  return [...entries].sort(compareEntries);
}

/** Resolves a path from an entry (`/ostree/...`) to the file it names under the boot file system. */
function bootFile(bootDir: string, p: string): string {
  // Paths are relative to the root of the file system holding the entry. With
  // OSTree's `sysroot.bootprefix`, /boot is a directory of the root file system
  // and entries say `/boot/...`.
  const direct = path.join(bootDir, p);
  if (fs.existsSync(direct) || !p.startsWith('/boot/')) return direct;
  return path.join(bootDir, '..', p);
}

/** Why systemd-boot would drop this entry from its menu, or null when it keeps it. */
export function unbootableReason(bootDir: string, entry: ModelEntry): string | null {
  if (entry.linux === undefined) return 'no linux line';
  if (!fs.existsSync(bootFile(bootDir, entry.linux))) return `kernel ${entry.linux} does not exist`;
  return null;
}

/** The entry systemd-boot boots by default: the first usable entry in its order. */
export function pickEntry(bootDir: string): ModelEntry {
  const all = readEntries(bootDir);
  const dropped: string[] = [];
  const usable = all.filter((e) => {
    const why = unbootableReason(bootDir, e);
    if (why) dropped.push(`${e.file}: ${why}`);
    return why === null;
  });
  if (usable.length === 0) {
    const detail = dropped.length ? ` (dropped ${dropped.join('; ')})` : '';
    throw new Error(`boot model: no bootable entry in ${entriesDir(bootDir)}${detail}`);
  }
  return sortEntries(usable)[0];
}

/**
 * Resolves `p` inside `root` as a chrooted process would: absolute symlink
 * targets restart at `root`, so a sysroot never escapes to the host.
 */
function resolveInRoot(root: string, p: string): string | null {
  const rest = p.split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (rest.length) {
    const part = rest.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = path.join(root, ...done, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(here);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) return null;
      const target = fs.readlinkSync(here);
      rest.unshift(...target.split('/').filter(Boolean));
      if (target.startsWith('/')) done.length = 0;
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}

export interface BootResult {
  entry: ModelEntry;
  /** The `ostree=` kernel argument, e.g. /ostree/boot.1/debian/<bootcsum>/0. */
  ostree: string;
  /** The entry's whole options line. */
  cmdline: string;
  /** The deployment directory `ostree=` leads to (symlinks followed inside the sysroot). */
  deployment: string;
}

/**
 * Simulates one boot of `sysroot`: picks the default entry, counts the try by
 * renaming a counted entry (NAME+LEFT-DONE → NAME+(LEFT-1)-(DONE+1), LEFT never
 * below 0) before starting it as systemd-boot does, empties /run, and returns
 * what the kernel and initramfs would get. Throws when no entry can boot, an
 * initrd is missing, there is no `ostree=` argument, or it leads to no
 * directory (the initramfs could not find the deployment).
 */
export function boot(sysroot: string): BootResult {
  const bootDir = path.join(sysroot, 'boot');
  const picked = pickEntry(bootDir);
  const name = parseName(picked.file);
  let entry = picked;
  if (name.nextName !== undefined && name.nextName !== picked.file) {
    const dir = entriesDir(bootDir);
    fs.renameSync(path.join(dir, picked.file), path.join(dir, name.nextName));
    const next = parseName(name.nextName);
    entry = { ...picked, file: name.nextName, id: next.id, triesLeft: next.triesLeft, triesDone: next.triesDone };
  }
  const run = path.join(sysroot, 'run');
  if (fs.existsSync(run)) {
    for (const child of fs.readdirSync(run)) fs.rmSync(path.join(run, child), { recursive: true, force: true });
  }
  for (const initrd of entry.initrd) {
    if (!fs.existsSync(bootFile(bootDir, initrd))) throw new Error(`boot model: ${entry.file}: initrd ${initrd} does not exist`);
  }
  const args = entry.options.split(/\s+/).filter(Boolean);
  const ostreeArg = args.filter((a) => a.startsWith('ostree=')).pop();
  if (ostreeArg === undefined) throw new Error(`boot model: ${entry.file} has no ostree= argument in its options`);
  const ostree = ostreeArg.slice('ostree='.length);
  const deployment = resolveInRoot(sysroot, ostree);
  if (deployment === null || !fs.statSync(deployment).isDirectory()) {
    throw new Error(`boot model: ${entry.file}: ostree=${ostree} does not lead to a deployment directory in ${sysroot}`);
  }
  return { entry, ostree, cmdline: entry.options, deployment };
}
