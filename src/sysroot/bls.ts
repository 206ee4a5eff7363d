// Boot Loader Specification type #1 entries: the `key value` text format and
// the boot-assessment counter that systemd-boot keeps in the file name
// (`NAME+LEFT-DONE.conf`, or `NAME+LEFT.conf` before the first try).

export interface BootEntry {
  /** Keys in file order; `initrd` may repeat. */
  fields: [string, string][];
}

export interface EntryName {
  /** The name without counter and `.conf`. */
  base: string;
  /** Tries left; undefined when the entry carries no counter (blessed or never counted). */
  triesLeft?: number;
  triesDone?: number;
}

export function parseEntry(text: string): BootEntry {
  const fields: [string, string][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m) fields.push([m[1], m[2]]);
  }
  return { fields };
}

export function serializeEntry(entry: BootEntry): string {
  return entry.fields.map(([k, v]) => `${k} ${v}\n`).join('');
}

export function entryField(entry: BootEntry, key: string): string | undefined {
  return entry.fields.find(([k]) => k === key)?.[1];
}

export function parseEntryName(file: string): EntryName | null {
  const m = /^(.+?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(file);
  if (!m) return null;
  if (m[2] === undefined) return { base: m[1] };
  return { base: m[1], triesLeft: Number(m[2]), triesDone: m[3] === undefined ? undefined : Number(m[3]) };
}

export function formatEntryName(name: EntryName): string {
  if (name.triesLeft === undefined) return `${name.base}.conf`;
  return `${name.base}+${name.triesLeft}${name.triesDone === undefined ? '' : `-${name.triesDone}`}.conf`;
}
