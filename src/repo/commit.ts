// `strata commit`: a directory or tarball becomes a commit on a branch.

import fs from 'node:fs';
import { StrataError } from '../errors.js';
import {
  type Checksum, type Commit, type Metadata, serializeCommit, serializeDirMeta, serializeDirTree, serializeVardict,
} from '../core/objects.js';
import { Repo } from './repo.js';
import { checkRefWritable, readRef, resolveRev, validateRefName, writeRef } from './refs.js';
import { Transaction } from './transaction.js';
import { WorkerPool } from './worker-pool.js';
import type { ContentResult } from './stage-content.js';
import { type MDir, type SourceOptions, type StageFn, newStats } from './mtree.js';
import { readSourceDir } from './source-dir.js';
import { readSourceTar, looksLikeTarball } from './source-tar.js';

export interface CommitOptions extends SourceOptions {
  repo: string;
  branch: string;
  /** A directory or a tarball (plain, gzip, xz or zstd). */
  source: string;
  subject?: string;
  body?: string;
  /** Seconds since the epoch; defaults to SOURCE_DATE_EPOCH, else now. */
  timestamp?: number;
  /** String metadata in the order given, as --add-metadata-string. */
  metadata?: [string, string][];
  /** Parent commit (rev); defaults to the branch's current commit; null for none. */
  parent?: string | null;
  /** Move `branch` to the new commit (default true); false writes a commit no ref names (a deployment's client-side layered commit). */
  writeRef?: boolean;
  /** Record `ostree.ref-binding` (default true, like ostree). */
  bindings?: boolean;
  /** Called as files are hashed: (done, total known so far). */
  onProgress?: (done: number, total: number) => void;
  /** Write nothing when tree, subject, body and metadata equal the parent's (rpm-ostree compose does the same). */
  skipIfUnchanged?: boolean;
  /**
   * Called once every object is staged, before they are made durable: a caller
   * that built `source` only for this commit removes it here, so the durability
   * sync does not write its dirty pages to disk for nothing.
   */
  sourceDone?: () => void;
}

export interface CommitResult {
  commit: Checksum;
  /** True when skipIfUnchanged found the parent identical: `commit` is the parent and nothing was written. */
  unchanged?: boolean;
  branch: string;
  parent: Checksum | null;
  rootTree: Checksum;
  rootMeta: Checksum;
  stats: {
    files: number;
    dirs: number;
    symlinks: number;
    contentBytes: number;
    objectsWritten: number;
    storedBytes: number;
    skipped: string[];
  };
}

export function parseTimestamp(text: string): number {
  const t = text.trim();
  const bad = () => new StrataError('INVALID_TIMESTAMP', `cannot read timestamp '${text}': use ISO 8601 (2024-05-01T12:00:00Z) or seconds since the epoch, from 1970 on`, { text });
  if (/^@?\d+$/.test(t)) {
    const n = Number(t.replace('@', ''));
    if (!Number.isSafeInteger(n)) throw bad(); // beyond what a JavaScript number holds exactly
    return n;
  }
  // A date alone means midnight UTC; other ISO forms follow their own zone, UTC when none.
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(t) ? `${t}T00:00:00Z` : /[zZ]|[+-]\d{2}:?\d{2}$/.test(t) ? t : `${t}Z`;
  const ms = Date.parse(iso);
  if (!/^\d{4}-\d{2}-\d{2}/.test(t) || Number.isNaN(ms) || ms < 0) throw bad();
  return Math.floor(ms / 1000);
}

function defaultTimestamp(): number {
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return Number(sde);
  return Math.floor(Date.now() / 1000);
}

export async function commit(opts: CommitOptions): Promise<CommitResult> {
  validateRefName(opts.branch);
  const repo = Repo.open(opts.repo);
  const withRef = opts.writeRef !== false;
  if (withRef) checkRefWritable(repo, opts.branch);
  const parent = opts.parent === null ? null : opts.parent !== undefined ? resolveRev(repo, opts.parent) : withRef ? readRef(repo, opts.branch) : null;
  if (!fs.existsSync(opts.source)) throw new StrataError('SOURCE_NOT_FOUND', `nothing to commit: ${opts.source} does not exist`, { path: opts.source });

  const tx = Transaction.begin(repo);
  const pool = new WorkerPool();
  const stats = newStats();
  let done = 0;
  let total = 0;
  let storedBytes = 0;
  const ctx = { repoPath: repo.path, stagingDir: tx.stagingDir, archive: repo.archive, level: zlibLevel(repo) };
  const stage: StageFn = (job, transfer) => {
    total++;
    return pool.run<ContentResult>({ kind: 'stage', ctx, job }, transfer).then((r) => {
      if (r.written && tx.noteStaged(r.checksum, 'file')) storedBytes += r.storedBytes;
      done++;
      opts.onProgress?.(done, total);
      return r.checksum;
    });
  };
  try {
    const root = looksLikeTarball(opts.source)
      ? await readSourceTar(opts.source, opts, stage, stats)
      : await readSourceDir(opts.source, opts, stage, stats);
    const { tree, meta } = await writeTree(tx, root);
    const c = buildCommit(opts, parent, tree, meta);
    if (opts.skipIfUnchanged && parent && sameAsParent(repo, parent, c)) {
      tx.abort();
      return {
        commit: parent, unchanged: true, branch: opts.branch, parent, rootTree: tree, rootMeta: meta,
        stats: { files: stats.files, dirs: stats.dirs, symlinks: stats.symlinks, contentBytes: stats.bytes, objectsWritten: 0, storedBytes: 0, skipped: stats.skipped },
      };
    }
    const { checksum } = tx.writeMetadata('commit', serializeCommit(c));
    opts.sourceDone?.();
    const written = tx.stagedCount;
    tx.commit();
    if (withRef) writeRef(repo, opts.branch, checksum);
    return {
      commit: checksum,
      branch: opts.branch,
      parent,
      rootTree: tree,
      rootMeta: meta,
      stats: { files: stats.files, dirs: stats.dirs, symlinks: stats.symlinks, contentBytes: stats.bytes, objectsWritten: written, storedBytes, skipped: stats.skipped },
    };
  } catch (err) {
    tx.abort();
    throw err;
  } finally {
    await pool.close();
  }
}

/** The commit object `commit` writes for a tree (also used to predict a checksum without writing). */
export function buildCommit(
  opts: Pick<CommitOptions, 'metadata' | 'bindings' | 'branch' | 'subject' | 'body' | 'timestamp'>,
  parent: Checksum | null, tree: Checksum, meta: Checksum,
): Commit {
  const metadata: Metadata = (opts.metadata ?? []).map(([k, v]) => [k, { type: 's', value: v }]);
  if (opts.bindings !== false) metadata.push(['ostree.ref-binding', { type: 'as', value: [opts.branch] }]);
  return {
    metadata,
    parent,
    related: [],
    subject: opts.subject ?? '',
    body: opts.body ?? '',
    timestamp: opts.timestamp ?? defaultTimestamp(),
    rootTree: tree,
    rootMeta: meta,
  };
}

function sameAsParent(repo: Repo, parent: Checksum, c: Commit): boolean {
  const p = repo.loadCommit(parent);
  return p.rootTree === c.rootTree && p.rootMeta === c.rootMeta && p.subject === c.subject && p.body === c.body &&
    serializeVardict(p.metadata).equals(serializeVardict(c.metadata));
}

function zlibLevel(repo: Repo): number {
  const v = Number(repo.config.get('archive')?.get('zlib-level') ?? repo.config.get('core')?.get('zlib-level') ?? 6);
  return Number.isInteger(v) && v >= 0 && v <= 9 ? v : 6;
}

/** Writes dirmeta and dirtree objects bottom-up; returns the root's pair. */
export async function writeTree(tx: Transaction, dir: MDir): Promise<{ tree: Checksum; meta: Checksum }> {
  const files: { name: string; checksum: Checksum }[] = [];
  const dirs: { name: string; tree: Checksum; meta: Checksum }[] = [];
  for (const [name, node] of dir.entries) {
    if (node.kind === 'dir') dirs.push({ name, ...(await writeTree(tx, node)) });
    else files.push({ name, checksum: await node.checksum });
  }
  const meta = tx.writeMetadata('dirmeta', serializeDirMeta(dir.meta)).checksum;
  const tree = tx.writeMetadata('dirtree', serializeDirTree({ files, dirs })).checksum;
  return { tree, meta };
}
