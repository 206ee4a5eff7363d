// The compose manifest: YAML read with `yaml` (keeping node positions),
// checked with a zod schema. Every problem is reported as FILE:LINE:COL, the
// key path and what is expected there; unknown keys are errors.

import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, isMap, isPair, isScalar, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { StrataError, ioError } from '../errors.js';
import { parseTimestamp } from '../repo/commit.js';
import { validateRefName } from '../repo/refs.js';
import { validateKarg } from '../sysroot/kargs.js';

type KeyPath = (string | number)[];

const nonEmpty = z.string().min(1, 'expected a non-empty string');
const stringList = z.array(nonEmpty);

/** Modes are quoted octal strings: YAML 1.2 reads an unquoted 0644 as the decimal number 644. */
const modeString = z.string().regex(/^0?[0-7]{3,4}$/, "expected an octal mode in quotes, like '0644' or '4755'");

/** `uid:gid` numbers, or user and group names looked up in the tree's etc/passwd and etc/group. */
const ownerString = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$/, "expected 'user:group' (names or numbers), like 'root:root' or '0:0'");

/** A path inside the tree: relative or absolute (same meaning), no `..`. */
const treePath = z.string().min(1, 'expected a path in the tree').refine((p) => !p.split('/').includes('..') && !p.includes('\0'), "expected a path inside the tree (no '..' components)");

const timestampValue = z.union([z.string(), z.number()]);

const debootstrap = z.strictObject({
  suite: nonEmpty,
  variant: z.enum(['minbase', 'buildd', 'fakechroot']).optional(),
  packages: stringList.optional(),
  components: stringList.optional(),
  mirror: nonEmpty.optional(),
});

const base = z.strictObject({
  ref: nonEmpty.optional(),
  commit: nonEmpty.optional(),
  dir: nonEmpty.optional(),
  tar: nonEmpty.optional(),
  debootstrap: debootstrap.optional(),
});

const layer = z.strictObject({
  dir: nonEmpty.optional(),
  tar: nonEmpty.optional(),
  deb: z.union([nonEmpty, stringList]).optional(),
  oci: nonEmpty.optional(),
  /** oci: the platform to pick from an image index, as os/arch (default linux and this machine's arch). */
  platform: nonEmpty.optional(),
  /** deb: install with the tree's own dpkg in a chroot, maintainer scripts run (root only). */
  scripts: z.boolean().optional(),
});

const fileEntry = z.strictObject({
  path: treePath,
  content: z.string().optional(),
  source: nonEmpty.optional(),
  mode: modeString.optional(),
  owner: ownerString.optional(),
});

const symlinkEntry = z.strictObject({ path: treePath, target: nonEmpty });

const userName = z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/, 'expected a user or group name (lowercase letters, digits, _ and -)');
const id = z.number().int('expected a whole number').min(0, 'expected a number >= 0').max(0xfffffffe, 'expected a number below 4294967295');
const noColon = (what: string) => z.string().refine((s) => !/[:\n]/.test(s), `expected ${what} without ':' or a newline`);

const userEntry = z.strictObject({
  name: userName,
  uid: id,
  gid: id.optional(),
  gecos: noColon('text').optional(),
  home: noColon('a path').optional(),
  shell: noColon('a path').optional(),
  groups: z.array(userName).optional(),
});

const groupEntry = z.strictObject({ name: userName, gid: id, members: z.array(userName).optional() });

const unitName = z.string().regex(/^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$/, 'expected a systemd unit name, like sshd.service');

const manifestSchema = z.strictObject({
  ref: nonEmpty,
  version: nonEmpty.optional(),
  subject: z.string().optional(),
  body: z.string().optional(),
  timestamp: timestampValue.optional(),
  metadata: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected metadata keys of letters, digits, _, - and .'), z.string()).optional(),
  base: base.nullable().optional(),
  layers: z.array(layer).optional(),
  remove: z.array(treePath).optional(),
  files: z.array(fileEntry).optional(),
  symlinks: z.array(symlinkEntry).optional(),
  groups: z.array(groupEntry).optional(),
  users: z.array(userEntry).optional(),
  units: z.strictObject({ enable: z.array(unitName).optional(), mask: z.array(unitName).optional() }).optional(),
  kargs: z.array(nonEmpty).optional(),
  postprocess: z.array(nonEmpty).optional(),
});

type RawManifest = z.infer<typeof manifestSchema>;

export type BaseSpec =
  | { kind: 'ref'; rev: string }
  | { kind: 'commit'; rev: string }
  | { kind: 'dir'; path: string }
  | { kind: 'tar'; path: string }
  | { kind: 'debootstrap'; suite: string; variant: string; packages: string[]; components: string[]; mirror?: string };

export type LayerSpec =
  | { kind: 'dir'; path: string; at: KeyPath }
  | { kind: 'tar'; path: string; at: KeyPath }
  /** Local files (absolute paths) and package names, in the order given. */
  | { kind: 'deb'; items: { file?: string; name?: string }[]; scripts: boolean; at: KeyPath }
  | { kind: 'oci'; path: string; platform?: string; at: KeyPath };

export interface FileSpec {
  path: string;
  content?: string;
  /** Absolute path of the file beside the manifest. */
  source?: string;
  mode?: number;
  owner?: string;
}

export interface UserSpec {
  name: string;
  uid: number;
  gid?: number;
  gecos: string;
  home: string;
  shell: string;
  groups: string[];
}

export interface GroupSpec {
  name: string;
  gid: number;
  members: string[];
}

export interface Manifest {
  /** Absolute path of the manifest file, and its directory (relative inputs are resolved from there). */
  file: string;
  dir: string;
  ref: string;
  version?: string;
  subject: string;
  body: string;
  /** Seconds since the epoch: the manifest's, else SOURCE_DATE_EPOCH, else 0 (see docs/manifest.md). */
  timestamp: number;
  timestampSource: 'manifest' | 'SOURCE_DATE_EPOCH' | 'default';
  metadata: Record<string, string>;
  base: BaseSpec | null;
  layers: LayerSpec[];
  remove: string[];
  files: FileSpec[];
  symlinks: { path: string; target: string }[];
  groups: GroupSpec[];
  users: UserSpec[];
  units: { enable: string[]; mask: string[] };
  kargs: string[];
  postprocess: string[];
  /** `FILE:LINE:COL: key.path` for a key of the manifest, to prefix later errors with. */
  where(at: KeyPath): string;
}

export function formatKeyPath(at: KeyPath): string {
  let out = '';
  for (const k of at) out += typeof k === 'number' ? `[${k}]` : out === '' ? k : `.${k}`;
  return out || '(top level)';
}

interface Located {
  line: number;
  col: number;
}

/** Finds where a key path is in the document: the key itself for map entries, else the nearest existing ancestor. */
function locate(doc: Document, lc: LineCounter, at: KeyPath, keyOf?: string): Located {
  const pos = (offset: number): Located => lc.linePos(offset);
  const full = keyOf !== undefined ? [...at, keyOf] : at;
  for (let n = full.length; n >= 0; n--) {
    const parentPath = full.slice(0, n - 1);
    const last = full[n - 1];
    const parent = n === 0 ? doc.contents : parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
    if (n === 0) return pos((doc.contents?.range?.[0] ?? 0));
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === last);
      if (pair && isPair(pair) && isScalar(pair.key) && pair.key.range) return pos(pair.key.range[0]);
    } else if (parent && typeof last === 'number' && 'items' in (parent as object)) {
      const item = (parent as { items: unknown[] }).items[last] as { range?: [number, number, number] } | undefined;
      if (item?.range) return pos(item.range[0]);
    }
  }
  return { line: 1, col: 1 };
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function valueAt(data: unknown, at: KeyPath): unknown {
  let v = data;
  for (const k of at) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

const EXPECTED_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping of keys',
  array: 'a list',
  record: 'a mapping of keys',
};

/** The keys an object schema allows at a path, for "unknown key" messages. */
function allowedKeys(at: KeyPath): string[] {
  let schema: z.ZodType = manifestSchema;
  for (const k of at) {
    let def = schema._zod.def as unknown as { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType };
    while ((def.type === 'optional' || def.type === 'nullable') && def.innerType) {
      schema = def.innerType;
      def = schema._zod.def as unknown as typeof def;
    }
    if (def.type === 'object' && def.shape && typeof k === 'string' && def.shape[k]) schema = def.shape[k];
    else if (def.type === 'array' && def.element && typeof k === 'number') schema = def.element;
    else return [];
  }
  let def = schema._zod.def as unknown as { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType> };
  while ((def.type === 'optional' || def.type === 'nullable') && def.innerType) def = def.innerType._zod.def as unknown as typeof def;
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

interface Problem {
  at: KeyPath;
  keyOf?: string;
  message: string;
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown): Problem[] {
  const at = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(at);
      return issue.keys.map((k) => ({ at, keyOf: k, message: `unknown key '${k}'${allowed.length ? `; expected one of: ${allowed.join(', ')}` : ''}` }));
    }
    case 'invalid_type': {
      const got = valueAt(data, at);
      const expected = EXPECTED_WORDS[issue.expected] ?? issue.expected;
      if (got === undefined) return [{ at, message: `missing; expected ${expected}` }];
      if (at[at.length - 1] === 'mode' && typeof got === 'number') {
        return [{ at, message: "expected an octal mode in quotes, like '0644' (YAML reads an unquoted 0644 as the decimal number 644)" }];
      }
      return [{ at, message: `expected ${expected}, got ${describeValue(got)}` }];
    }
    case 'invalid_union':
      return [{ at, message: `expected ${at[at.length - 1] === 'deb' ? 'a .deb file or package name, or a list of them' : 'text or a number'}, got ${describeValue(valueAt(data, at))}` }];
    case 'invalid_value':
      return [{ at, message: `expected one of: ${issue.values.map(String).join(', ')}; got ${describeValue(valueAt(data, at))}` }];
    default:
      return [{ at, message: issue.message }];
  }
}

/** Exactly one of `keys` set in an object: the checks zod's union errors would make unreadable. */
function exactlyOne(obj: Record<string, unknown>, keys: string[], at: KeyPath, what: string, problems: Problem[]): string | null {
  const set = keys.filter((k) => obj[k] !== undefined);
  if (set.length === 1) return set[0];
  problems.push({ at, message: set.length === 0 ? `${what} needs one of: ${keys.join(', ')}` : `${what} takes one of ${keys.join(', ')}, not several (${set.join(' and ')})` });
  return null;
}

function octal(mode: string): number {
  return parseInt(mode, 8);
}

export function loadManifest(file: string, env: NodeJS.ProcessEnv = process.env): Manifest {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('SOURCE_NOT_FOUND', `no manifest at ${file}`, { path: abs });
    throw ioError(err, 'read the manifest', abs);
  }
  return parseManifest(text, abs, env, file);
}

/** Parses and checks manifest text; `file` names it in errors and anchors relative paths. */
export function parseManifest(text: string, file: string, env: NodeJS.ProcessEnv = process.env, shownAs?: string): Manifest {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const shown = shownAs ?? file;
  const fail = (problems: Problem[]): never => {
    const located = problems.map((p) => ({ ...p, ...locate(doc, lc, p.at, p.keyOf) }));
    located.sort((a, b) => a.line - b.line || a.col - b.col);
    const lines = located.map((p) => `${shown}:${p.line}:${p.col}: ${formatKeyPath(p.keyOf !== undefined ? [...p.at, p.keyOf] : p.at)}: ${p.message}`);
    const more = lines.length > 1 ? ` (and ${lines.length - 1} more problem${lines.length > 2 ? 's' : ''})` : '';
    throw new StrataError('MANIFEST_INVALID', `${lines[0]}${more}`, { file, problems: lines });
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const lp = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
    const msg = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new StrataError('MANIFEST_INVALID', `${shown}:${lp.line}:${lp.col}: not valid YAML: ${msg}`, { file, problems: [msg] });
  }
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new StrataError('MANIFEST_INVALID', `${shown}:1:1: (top level): expected a mapping of keys (ref, base, layers, ...), got ${describeValue(data)}`, { file });
  }
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) fail(parsed.error.issues.flatMap((i) => describeIssue(i, data)));
  const raw = parsed.data as RawManifest;
  const dir = path.dirname(file);
  const problems: Problem[] = [];
  const input = (p: string) => path.resolve(dir, p);

  try {
    validateRefName(raw.ref);
  } catch (err) {
    problems.push({ at: ['ref'], message: (err as Error).message });
  }

  let timestamp = 0;
  let timestampSource: Manifest['timestampSource'] = 'default';
  if (raw.timestamp !== undefined) {
    try {
      timestamp = parseTimestamp(String(raw.timestamp));
      timestampSource = 'manifest';
    } catch (err) {
      problems.push({ at: ['timestamp'], message: (err as Error).message });
    }
  } else if (env.SOURCE_DATE_EPOCH !== undefined && env.SOURCE_DATE_EPOCH !== '') {
    if (!/^\d+$/.test(env.SOURCE_DATE_EPOCH)) {
      throw new StrataError('INVALID_TIMESTAMP', `SOURCE_DATE_EPOCH='${env.SOURCE_DATE_EPOCH}' is not a whole number of seconds since the epoch`, { text: env.SOURCE_DATE_EPOCH });
    }
    timestamp = Number(env.SOURCE_DATE_EPOCH);
    timestampSource = 'SOURCE_DATE_EPOCH';
  }

  const metadata = { ...(raw.metadata ?? {}) };
  if (raw.version !== undefined) {
    if (metadata.version !== undefined) problems.push({ at: ['metadata', 'version'], message: "conflicts with the top-level 'version'; give the version once" });
    metadata.version = raw.version;
  }
  if (raw.kargs !== undefined && metadata['strata.kargs'] !== undefined) {
    problems.push({ at: ['metadata', 'strata.kargs'], message: "conflicts with 'kargs'; list kernel arguments under kargs" });
  }

  (raw.kargs ?? []).forEach((k, i) => {
    try {
      validateKarg(k);
    } catch (err) {
      problems.push({ at: ['kargs', i], message: (err as Error).message });
    }
  });

  let baseSpec: BaseSpec | null = null;
  if (raw.base) {
    const b = raw.base;
    const kind = exactlyOne(b, ['ref', 'commit', 'dir', 'tar', 'debootstrap'], ['base'], 'base', problems);
    if (kind === 'ref' || kind === 'commit') baseSpec = { kind, rev: b[kind] as string };
    else if (kind === 'dir' || kind === 'tar') baseSpec = { kind, path: input(b[kind] as string) };
    else if (kind === 'debootstrap' && b.debootstrap) {
      const d = b.debootstrap;
      baseSpec = { kind, suite: d.suite, variant: d.variant ?? 'minbase', packages: d.packages ?? [], components: d.components ?? [], mirror: d.mirror };
    }
  }

  const layers: LayerSpec[] = [];
  (raw.layers ?? []).forEach((l, i) => {
    const at: KeyPath = ['layers', i];
    const kind = exactlyOne(l, ['dir', 'tar', 'deb', 'oci'], at, 'a layer', problems);
    if (l.platform !== undefined && kind !== 'oci') problems.push({ at: [...at, 'platform'], message: "only an 'oci' layer takes a platform" });
    if (l.scripts !== undefined && kind !== 'deb') problems.push({ at: [...at, 'scripts'], message: "only a 'deb' layer takes scripts" });
    if (kind === 'dir' || kind === 'tar') layers.push({ kind, path: input(l[kind] as string), at: [...at, kind] });
    else if (kind === 'oci') layers.push({ kind, path: input(l.oci as string), platform: l.platform, at: [...at, 'oci'] });
    else if (kind === 'deb') {
      const list = typeof l.deb === 'string' ? [l.deb] : (l.deb as string[]);
      // A name with a slash or ending in .deb is a file beside the manifest; anything else is a package name.
      const items = list.map((x) => (x.includes('/') || x.endsWith('.deb') ? { file: input(x) } : { name: x }));
      for (const [j, it] of items.entries()) {
        if (it.name !== undefined && !/^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$/.test(it.name)) {
          problems.push({ at: typeof l.deb === 'string' ? [...at, 'deb'] : [...at, 'deb', j], message: `expected a .deb file or a Debian package name (name, name:arch or name=version), got ${JSON.stringify(it.name)}` });
        }
      }
      layers.push({ kind, items, scripts: l.scripts ?? false, at: [...at, 'deb'] });
    }
  });

  const files: FileSpec[] = (raw.files ?? []).map((f, i) => {
    if ((f.content === undefined) === (f.source === undefined)) {
      problems.push({ at: ['files', i], message: f.content === undefined ? "a file needs 'content' (inline text) or 'source' (a file beside the manifest)" : "a file takes 'content' or 'source', not both" });
    }
    return { path: f.path, content: f.content, source: f.source !== undefined ? input(f.source) : undefined, mode: f.mode !== undefined ? octal(f.mode) : undefined, owner: f.owner };
  });

  // The same path named twice by files/symlinks is ambiguous: one of them would silently lose.
  const claimed = new Map<string, KeyPath>();
  const claim = (p: string, at: KeyPath) => {
    const norm = p.split('/').filter((x) => x && x !== '.').join('/');
    const prev = claimed.get(norm);
    if (prev) problems.push({ at, message: `/${norm} is also set by ${formatKeyPath(prev)}; give each path once` });
    else claimed.set(norm, at);
  };
  (raw.files ?? []).forEach((f, i) => claim(f.path, ['files', i, 'path']));
  (raw.symlinks ?? []).forEach((s, i) => claim(s.path, ['symlinks', i, 'path']));

  const dupes = <T>(list: T[], key: (t: T) => string | number, section: string, field: string) => {
    const seen = new Map<string | number, number>();
    list.forEach((t, i) => {
      const k = key(t);
      if (seen.has(k)) problems.push({ at: [section, i, field], message: `${field} ${k} is also given by ${section}[${seen.get(k)}]` });
      else seen.set(k, i);
    });
  };
  dupes(raw.groups ?? [], (g) => g.name, 'groups', 'name');
  dupes(raw.groups ?? [], (g) => g.gid, 'groups', 'gid');
  dupes(raw.users ?? [], (u) => u.name, 'users', 'name');
  dupes(raw.users ?? [], (u) => u.uid, 'users', 'uid');
  const enable = raw.units?.enable ?? [];
  const mask = raw.units?.mask ?? [];
  mask.forEach((u, i) => {
    if (enable.includes(u)) problems.push({ at: ['units', 'mask', i], message: `${u} is also in units.enable; a unit is enabled or masked, not both` });
  });

  if (problems.length > 0) fail(problems);

  return {
    file,
    dir,
    ref: raw.ref,
    version: raw.version,
    subject: raw.subject ?? '',
    body: raw.body ?? '',
    timestamp,
    timestampSource,
    metadata,
    base: baseSpec,
    layers,
    remove: raw.remove ?? [],
    files,
    symlinks: raw.symlinks ?? [],
    groups: (raw.groups ?? []).map((g) => ({ name: g.name, gid: g.gid, members: g.members ?? [] })),
    users: (raw.users ?? []).map((u) => ({
      name: u.name, uid: u.uid, gid: u.gid, gecos: u.gecos ?? '', home: u.home ?? `/home/${u.name}`, shell: u.shell ?? '/usr/sbin/nologin', groups: u.groups ?? [],
    })),
    units: { enable, mask },
    kargs: raw.kargs ?? [],
    postprocess: raw.postprocess ?? [],
    where(at: KeyPath): string {
      const l = locate(doc, lc, at);
      return `${shown}:${l.line}:${l.col}: ${formatKeyPath(at)}`;
    },
  };
}
