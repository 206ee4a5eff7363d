// The `summary` file: what a repository offers, in OSTree's format
// `(a(s(taya{sv}))a{sv})` (ostree-core.h OSTREE_SUMMARY_GVARIANT_STRING), as
// ostree_repo_regenerate_summary (ostree-repo.c) writes it:
// - refs of refs/heads (never remote refs), sorted by strcmp; each with the
//   commit object's size, its checksum as 32 bytes, and an a{sv} holding
//   `ostree.commit.timestamp` (t, big-endian) and, when the commit has a
//   string `version`, `ostree.commit.version` (s);
// - additional metadata: `ostree.static-deltas` (a{sv}: delta name → ay, the
//   SHA-256 of its superblock; only when there are deltas and
//   core/no-deltas-in-summary is not set), `ostree.summary.last-modified`
//   (t, big-endian seconds), `ostree.summary.mode` (s, core/mode as written,
//   default `bare`), `ostree.summary.tombstone-commits` (b, from
//   core/tombstone-commits) and `ostree.summary.indexed-deltas` (b, true).
// Every a{sv} is written in the order GLib's GVariantDict writes it, so the
// file is byte-identical to ostree's for the same repository and time.
// Updating also rewrites the delta indexes (delta-indexes/…, as
// ostree_repo_static_delta_reindex does), records core/indexed-deltas=true,
// removes a stale summary.sig and, given keys, signs the new summary.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import { parse, parseType, serialize, type Variant } from '../core/gvariant.js';
import { type Checksum, type Metadata, checksumFromBytes, checksumToBytes, compareNames, parseCommit, serializeVardict } from '../core/objects.js';
import { glibDictOrder } from '../core/gvariant-dict.js';
import { type DeltaName, deltaFromDirNames, deltaIndexPath, deltaName, modifiedBase64ToChecksum } from '../core/deltas.js';
import { Repo, writeFileAtomic } from '../repo/repo.js';
import { listRefs } from '../repo/refs.js';
import { lockRepo } from '../repo/transaction.js';
import { readRepoConfig, rewriteRepoConfig } from '../repo/config.js';
import { keyFileBoolean } from '../repo/keyfile.js';
import { addSignatures, loadSecretKeys, signData } from './sign.js';

const SUMMARY = parseType('(a(s(taya{sv}))a{sv})');

export const SUMMARY_KEYS = {
  lastModified: 'ostree.summary.last-modified',
  expires: 'ostree.summary.expires',
  collectionId: 'ostree.summary.collection-id',
  mode: 'ostree.summary.mode',
  tombstoneCommits: 'ostree.summary.tombstone-commits',
  indexedDeltas: 'ostree.summary.indexed-deltas',
  staticDeltas: 'ostree.static-deltas',
  commitTimestamp: 'ostree.commit.timestamp',
  commitVersion: 'ostree.commit.version',
} as const;

/** GLib's g_date_time_new_from_unix_utc refuses times from year 10000 on; ostree then leaves the timestamp out. */
const MAX_GDATETIME = 253402300799;

export interface SummaryRef {
  name: string;
  checksum: Checksum;
  /** Size of the commit object in bytes. */
  size: number;
  metadata: Metadata;
}

export interface Summary {
  refs: SummaryRef[];
  metadata: Metadata;
}

const beU64 = (n: number | bigint): bigint => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b.readBigUInt64LE();
};

export function serializeSummary(s: Summary): Buffer {
  const refs = [...s.refs].sort((a, b) => compareNames(a.name, b.name));
  return serialize(SUMMARY, [refs.map((r) => [r.name, [BigInt(r.size), checksumToBytes(r.checksum), r.metadata]]), s.metadata]);
}

export function parseSummary(data: Uint8Array): Summary {
  let raw: [[string, [bigint, Buffer, Metadata]][], Metadata];
  try {
    raw = parse(SUMMARY, data) as typeof raw;
  } catch (err) {
    if (err instanceof StrataError) throw new StrataError('SUMMARY_MALFORMED', `summary cannot be parsed: ${err.message}`, {});
    throw err;
  }
  const refs = raw[0].map(([name, [size, sum, metadata]]) => {
    let checksum: Checksum;
    try {
      checksum = checksumFromBytes(sum);
    } catch {
      throw new StrataError('SUMMARY_MALFORMED', `summary: ref ${JSON.stringify(name)} has a checksum of ${sum.length} bytes`, { ref: name });
    }
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new StrataError('SUMMARY_MALFORMED', `summary: ref ${JSON.stringify(name)} claims a commit of ${size} bytes`, { ref: name });
    return { name, checksum, size: Number(size), metadata };
  });
  return { refs, metadata: raw[1] };
}

/** A summary in plain values, for people and JSON. */
export interface SummaryView {
  refs: { name: string; checksum: Checksum; size: number; timestamp: number | null; version: string | null }[];
  lastModified: number | null;
  mode: string | null;
  tombstoneCommits: boolean | null;
  indexedDeltas: boolean | null;
  staticDeltas: Record<string, string>;
  /** Other additional metadata keys, by name and GVariant type. */
  other: Record<string, string>;
}

function typed(meta: Metadata, key: string, type: string): unknown {
  const entry = meta.find(([k]) => k === key);
  return entry && entry[1].type === type ? entry[1].value : undefined;
}

export function viewSummary(s: Summary): SummaryView {
  const known = new Set<string>([SUMMARY_KEYS.lastModified, SUMMARY_KEYS.mode, SUMMARY_KEYS.tombstoneCommits, SUMMARY_KEYS.indexedDeltas, SUMMARY_KEYS.staticDeltas]);
  const beNumber = (v: unknown): number | null => (typeof v === 'bigint' ? Number(beU64(v)) : null);
  const deltas = typed(s.metadata, SUMMARY_KEYS.staticDeltas, 'a{sv}') as Metadata | undefined;
  return {
    refs: s.refs.map((r) => ({
      name: r.name,
      checksum: r.checksum,
      size: r.size,
      timestamp: beNumber(typed(r.metadata, SUMMARY_KEYS.commitTimestamp, 't')),
      version: (typed(r.metadata, SUMMARY_KEYS.commitVersion, 's') as string | undefined) ?? null,
    })),
    lastModified: beNumber(typed(s.metadata, SUMMARY_KEYS.lastModified, 't')),
    mode: (typed(s.metadata, SUMMARY_KEYS.mode, 's') as string | undefined) ?? null,
    tombstoneCommits: (typed(s.metadata, SUMMARY_KEYS.tombstoneCommits, 'b') as boolean | undefined) ?? null,
    indexedDeltas: (typed(s.metadata, SUMMARY_KEYS.indexedDeltas, 'b') as boolean | undefined) ?? null,
    staticDeltas: Object.fromEntries((deltas ?? []).filter(([, v]) => v.type === 'ay').map(([k, v]) => [k, (v.value as Buffer).toString('hex')])),
    other: Object.fromEntries(s.metadata.filter(([k]) => !known.has(k)).map(([k, v]) => [k, v.type])),
  };
}

// ------------------------------------------------------------ static deltas

export interface StaticDelta extends DeltaName {
  name: string;
  /** SHA-256 of the superblock file. */
  digest: Buffer;
}

/** Entries of a directory in the order the file system returns them (libostree's order, which GLib's dict order depends on). */
function readdirRaw(dir: string): fs.Dirent[] {
  let d: fs.Dir;
  try {
    d = fs.opendirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw ioError(err, 'list', dir);
  }
  const out: fs.Dirent[] = [];
  try {
    for (let e = d.readSync(); e; e = d.readSync()) out.push(e);
  } finally {
    d.closeSync();
  }
  return out;
}

/** The static deltas in `deltas/`, as ostree_repo_list_static_delta_names finds them (a directory with a superblock). */
export function listStaticDeltas(repo: Repo): StaticDelta[] {
  const out: StaticDelta[] = [];
  const root = path.join(repo.path, 'deltas');
  for (const first of readdirRaw(root)) {
    if (!first.isDirectory()) continue;
    for (const second of readdirRaw(path.join(root, first.name))) {
      if (!second.isDirectory()) continue;
      const superblock = path.join(root, first.name, second.name, 'superblock');
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(superblock);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw ioError(err, 'read', superblock);
      }
      const d = deltaFromDirNames(first.name, second.name);
      if (!d) throw new StrataError('SUMMARY_MALFORMED', `deltas/${first.name}/${second.name} does not name a static delta`, { path: superblock });
      out.push({ ...d, name: deltaName(d), digest: createHash('sha256').update(bytes).digest() });
    }
  }
  return out;
}

/** The bytes of `delta-indexes/…/TO.index`: an a{sv} holding ostree.static-deltas for the deltas to TO, froms sorted. */
export function deltaIndexBytes(deltas: readonly StaticDelta[]): Buffer {
  // g_strcmp0 order: the delta from nothing (NULL) first, then by from checksum.
  const sorted = [...deltas].sort((a, b) => (a.from === b.from ? 0 : a.from === null ? -1 : b.from === null ? 1 : a.from < b.from ? -1 : 1));
  const inner = glibDictOrder(sorted.map((d): [string, Variant] => [d.name, { type: 'ay', value: d.digest }]));
  return serializeVardict(glibDictOrder([[SUMMARY_KEYS.staticDeltas, { type: 'a{sv}', value: inner }]]));
}

/** Rewrites delta-indexes/ to match deltas/: an index per target, stale ones removed, unchanged ones left alone. */
function reindexDeltas(repo: Repo, deltas: readonly StaticDelta[]): void {
  const byTarget = new Map<Checksum, StaticDelta[]>();
  for (const d of deltas) byTarget.set(d.to, [...(byTarget.get(d.to) ?? []), d]);
  const tmp = path.join(repo.path, 'tmp');
  for (const [to, list] of byTarget) {
    const file = path.join(repo.path, deltaIndexPath(to));
    const bytes = deltaIndexBytes(list);
    try {
      if (fs.existsSync(file) && fs.readFileSync(file).equals(bytes)) continue;
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writeFileAtomic(file, bytes, 0o644, tmp);
    } catch (err) {
      throw ioError(err, 'write delta index', file);
    }
  }
  const indexRoot = path.join(repo.path, 'delta-indexes');
  for (const first of readdirRaw(indexRoot)) {
    if (!first.isDirectory()) continue;
    for (const second of readdirRaw(path.join(indexRoot, first.name))) {
      const m = /^(.*)\.index$/.exec(second.name);
      const to = m ? modifiedBase64ToChecksum(first.name + m[1]) : null;
      if (to && !byTarget.has(to)) fs.rmSync(path.join(indexRoot, first.name, second.name), { force: true });
    }
  }
}

// ------------------------------------------------------------------ build

function configBoolean(value: string | undefined, key: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  const b = keyFileBoolean(value);
  if (b === undefined) throw new StrataError('REPO_CONFIG', `config core/${key}=${value} is not a boolean (true, false, 1 or 0)`, { key, value });
  return b;
}

/** One ref's entry, as summary_add_ref_entry builds it. */
export function summaryRef(repo: Repo, name: string, checksum: Checksum): SummaryRef {
  const bytes = repo.readMetadataBytes(checksum, 'commit');
  const commit = parseCommit(bytes);
  const entries: [string, Variant][] = [];
  if (commit.timestamp <= MAX_GDATETIME) entries.push([SUMMARY_KEYS.commitTimestamp, { type: 't', value: beU64(commit.timestamp) }]);
  const version = commit.metadata.find(([k]) => k === 'version');
  if (version && version[1].type === 's') entries.push([SUMMARY_KEYS.commitVersion, { type: 's', value: version[1].value }]);
  return { name, checksum, size: bytes.length, metadata: glibDictOrder(entries) };
}

/** The summary of a repository as it is now (reads only). */
export function buildSummary(repo: Repo, opts: { lastModified: number; deltas?: readonly StaticDelta[] }): Summary {
  const config = readRepoConfig(repo);
  if (config.get('core', 'collection-id') !== undefined) {
    throw new StrataError('REPO_CONFIG', `${repo.path} has core/collection-id set; strata does not write summaries for collection IDs`, { path: repo.path });
  }
  const refs = listRefs(repo)
    .filter((r) => !r.name.includes(':'))
    .sort((a, b) => compareNames(a.name, b.name))
    .map((r) => summaryRef(repo, r.name, r.checksum));
  const entries: [string, Variant][] = [];
  const deltas = opts.deltas ?? listStaticDeltas(repo);
  if (!configBoolean(config.get('core', 'no-deltas-in-summary'), 'no-deltas-in-summary', false) && deltas.length > 0) {
    const dict = glibDictOrder(deltas.map((d): [string, Variant] => [d.name, { type: 'ay', value: d.digest }]));
    entries.push([SUMMARY_KEYS.staticDeltas, { type: 'a{sv}', value: dict }]);
  }
  entries.push([SUMMARY_KEYS.lastModified, { type: 't', value: beU64(opts.lastModified) }]);
  entries.push([SUMMARY_KEYS.mode, { type: 's', value: config.get('core', 'mode') ?? 'bare' }]);
  entries.push([SUMMARY_KEYS.tombstoneCommits, { type: 'b', value: configBoolean(config.get('core', 'tombstone-commits'), 'tombstone-commits', false) }]);
  entries.push([SUMMARY_KEYS.indexedDeltas, { type: 'b', value: true }]);
  return { refs, metadata: glibDictOrder(entries) };
}

export interface UpdateSummaryResult {
  path: string;
  refs: number;
  deltas: number;
  signed: boolean;
  /** Public keys (base64) that signed it. */
  keys: string[];
  lastModified: number;
}

/**
 * Regenerates `summary` (and the delta indexes), atomically; removes the old
 * `summary.sig`, and writes a new one when `signKeyFile` is given.
 */
export function updateSummary(opts: { repo: string; signKeyFile?: string; lastModified?: number }): UpdateSummaryResult {
  const keys = opts.signKeyFile !== undefined ? loadSecretKeys(opts.signKeyFile) : [];
  const repo = Repo.open(opts.repo);
  const lastModified = opts.lastModified ?? Math.floor(Date.now() / 1000);
  const unlock = lockRepo(repo);
  try {
    const deltas = listStaticDeltas(repo);
    const summary = serializeSummary(buildSummary(repo, { lastModified, deltas }));
    // As ostree_repo_static_delta_reindex: clients read indexes when the config says so.
    rewriteRepoConfig(repo, (c) => {
      if (keyFileBoolean(c.get('core', 'indexed-deltas')) !== true) c.set('core', 'indexed-deltas', 'true');
    });
    reindexDeltas(repo, deltas);
    const tmp = path.join(repo.path, 'tmp');
    const file = path.join(repo.path, 'summary');
    const sigFile = path.join(repo.path, 'summary.sig');
    try {
      // The old signature is for other bytes: it goes first, so no reader pairs it with the new summary.
      fs.rmSync(sigFile, { force: true });
      writeFileAtomic(file, summary, 0o644, tmp);
      if (keys.length > 0) {
        const { meta } = addSignatures(null, keys.map((k) => signData(summary, k)), 'summary');
        writeFileAtomic(sigFile, serializeVardict(meta), 0o644, tmp);
      }
    } catch (err) {
      throw ioError(err, 'write summary of', repo.path);
    }
    return { path: file, refs: parseSummary(summary).refs.length, deltas: deltas.length, signed: keys.length > 0, keys: keys.map((k) => k.public.toString('base64')), lastModified };
  } finally {
    unlock();
  }
}

/** Reads and parses a repository's summary file. */
export function readSummary(opts: { repo: string }): { summary: Summary; view: SummaryView; signed: boolean } {
  const repo = Repo.open(opts.repo);
  const file = path.join(repo.path, 'summary');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StrataError('SUMMARY_NOT_FOUND', `${repo.path} has no summary; create it with 'strata summary -u --repo ${opts.repo}'`, { path: file });
    }
    throw ioError(err, 'read', file);
  }
  const summary = parseSummary(bytes);
  return { summary, view: viewSummary(summary), signed: fs.existsSync(path.join(repo.path, 'summary.sig')) };
}
