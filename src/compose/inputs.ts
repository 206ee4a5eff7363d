// The compose cache. After a compose, the repository keeps, per ref, a digest
// of everything that compose read: the manifest as parsed, the bytes of every
// input file (tarballs, .deb files, docker archives, copied files), the tree
// of every input directory as a commit would read it, and the commit a base
// ref resolved to. The next compose of the ref computes the digest first; when
// it is the same and the ref still points at the commit recorded with it, the
// tree is not built again and the answer is "unchanged" (rpm-ostree compose
// skips an unchanged treefile the same way, with its input hash).
//
// Inputs that can change behind an unchanged manifest make a compose
// uncacheable: a debootstrap base (the mirror moves) and packages fetched by
// name (apt picks the newest). `--no-cache` builds regardless.

import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { type Checksum } from '../core/objects.js';
import { readRef, resolveRev } from '../repo/refs.js';
import { type Repo, writeFileAtomic } from '../repo/repo.js';
import { isRoot } from './base.js';
import { hashDirectory, treeChecksums } from './dry-run.js';
import { hashFile } from './file-hash.js';
import type { Manifest } from './manifest.js';

/**
 * Bumped whenever compose would build a different tree from the same inputs
 * (a change in how layers apply, in the /etc and /var layout, …), so that an
 * upgraded strata does not answer from a record an older one wrote.
 */
const COMPOSE_FORMAT = 1;

export type InputDigest = { digest: string } | { uncacheable: string };

/** What the cache keeps of a compose besides its commit: the report it printed. */
export interface CacheRecord<R> {
  format: number;
  ref: string;
  inputs: string;
  commit: Checksum;
  report: R;
}

async function fileDigest(file: string): Promise<string> {
  return `sha256:${await hashFile(file)}`;
}

/** A directory's identity: the root dirtree and dirmeta it would commit as (contents, modes, owners, xattrs, links). */
async function dirDigest(dir: string): Promise<string> {
  const { tree, meta } = await treeChecksums(await hashDirectory(dir));
  return `tree:${tree}:${meta}`;
}

async function pathDigest(p: string): Promise<string> {
  return fs.statSync(p).isDirectory() ? dirDigest(p) : fileDigest(p);
}

/**
 * The digest of a manifest's inputs, or why it has none. An input that cannot
 * be read makes the compose uncacheable here: building it then fails with the
 * error that names the manifest key.
 */
export async function inputDigest(m: Manifest, repo: Repo): Promise<InputDigest> {
  try {
    return await digestOf(m, repo);
  } catch (err) {
    return { uncacheable: (err as Error).message };
  }
}

async function digestOf(m: Manifest, repo: Repo): Promise<InputDigest> {
  if (m.base?.kind === 'debootstrap') return { uncacheable: 'the base is debootstrapped from a mirror' };
  if (m.layers.some((l) => l.kind === 'deb' && l.items.some((i) => i.name !== undefined))) {
    return { uncacheable: 'a deb layer fetches packages by name' };
  }
  const base = m.base === null
    ? null
    : m.base.kind === 'ref' || m.base.kind === 'commit'
      ? { ...m.base, resolved: resolveRev(repo, m.base.rev) }
      : { ...m.base, digest: await pathDigest(m.base.path) };
  const layers = [];
  for (const l of m.layers) {
    if (l.kind === 'deb') {
      const items = [];
      for (const i of l.items) items.push({ file: i.file, digest: await fileDigest(i.file as string) });
      layers.push({ kind: l.kind, scripts: l.scripts, items });
    } else {
      layers.push({ ...l, at: undefined, digest: await pathDigest(l.path) });
    }
  }
  const files = [];
  for (const f of m.files) files.push({ ...f, digest: f.source === undefined ? undefined : await fileDigest(f.source) });
  const inputs = {
    format: COMPOSE_FORMAT,
    root: isRoot,
    ref: m.ref,
    version: m.version,
    subject: m.subject,
    body: m.body,
    timestamp: m.timestamp,
    metadata: Object.keys(m.metadata).sort().map((k) => [k, m.metadata[k]]),
    base,
    layers,
    remove: m.remove,
    files,
    symlinks: m.symlinks,
    groups: m.groups,
    users: m.users,
    units: m.units,
    kargs: m.kargs,
    postprocess: m.postprocess,
  };
  return { digest: createHash('sha256').update(JSON.stringify(inputs)).digest('hex') };
}

function recordPath(repo: Repo, ref: string): string {
  return path.join(repo.path, 'extensions', 'strata', 'compose', `${encodeURIComponent(ref)}.json`);
}

/**
 * The report of the compose that made the ref's current commit from these
 * inputs, when there was one and nothing moved the ref since.
 */
export function cachedCompose<R>(repo: Repo, ref: string, digest: string): { commit: Checksum; report: R } | null {
  let rec: CacheRecord<R>;
  try {
    rec = JSON.parse(fs.readFileSync(recordPath(repo, ref), 'utf8')) as CacheRecord<R>;
  } catch {
    return null; // none yet, or unreadable: build
  }
  if (rec.format !== COMPOSE_FORMAT || rec.ref !== ref || rec.inputs !== digest) return null;
  if (readRef(repo, ref) !== rec.commit || !repo.hasObject(rec.commit, 'commit')) return null;
  return { commit: rec.commit, report: rec.report };
}

/**
 * Records a compose's inputs once its commit and ref are in place (a crash
 * before leaves the old record, which no longer matches the ref). Returns
 * false when the record cannot be written: the compose itself succeeded, and
 * the next one builds the tree again.
 */
export function recordCompose<R>(repo: Repo, ref: string, digest: string, commit: Checksum, report: R): boolean {
  const file = recordPath(repo, ref);
  const rec: CacheRecord<R> = { format: COMPOSE_FORMAT, ref, inputs: digest, commit, report };
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, JSON.stringify(rec) + '\n', 0o644, path.join(repo.path, 'tmp'));
    return true;
  } catch {
    return false;
  }
}
