// `strata prune`: delete objects nothing needs. planPrune only reads and
// says what would go; applyPrune deletes, commits first, so that a kill
// halfway leaves only unreferenced objects behind, never a commit whose
// tree is gone.

import fs from 'node:fs';
import { StrataError, ioError } from '../errors.js';
import type { Checksum, ObjectType } from '../core/objects.js';
import { Repo } from './repo.js';
import { listRefs } from './refs.js';
import { type LooseObject, type ObjectKey, history, listObjects, markTrees, objectKey } from './reachable.js';
import { lockRepo } from './transaction.js';
import { symlinkCachePath } from './place-files.js';

export interface PruneOptions {
  repo: string;
  /** Only refs (and their history) keep commits alive; other commits go. */
  refsOnly?: boolean;
  /** Keep only this many ancestors of each ref (-1: all). Implies refsOnly. */
  depth?: number;
  /** Also drop ancestors older than this many seconds (heads are always kept). Implies refsOnly. */
  keepYoungerThan?: number;
  dryRun?: boolean;
  /** Commits kept besides the refs' (a sysroot's deployments). */
  extraRoots?: Checksum[];
  /** Seconds since the epoch "now" is, for keepYoungerThan (tests). */
  now?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PrunePlan {
  repo: Repo;
  keptCommits: Checksum[];
  delete: LooseObject[];
  freedBytes: number;
}

export interface PruneResult {
  dryRun: boolean;
  total: number;
  deleted: number;
  deletedCommits: number;
  freedBytes: number;
}

export function planPrune(repo: Repo, opts: Omit<PruneOptions, 'repo'>): PrunePlan {
  const all = listObjects(repo);
  const refsOnly = !!opts.refsOnly || opts.depth !== undefined || opts.keepYoungerThan !== undefined;
  const roots = new Set<Checksum>();
  const depth = opts.depth ?? -1;
  const cutoff = opts.keepYoungerThan !== undefined ? (opts.now ?? Date.now() / 1000) - opts.keepYoungerThan : undefined;
  for (const ref of listRefs(repo)) {
    for (const [i, c] of history(repo, ref.checksum, depth).entries()) {
      if (i > 0 && cutoff !== undefined && repo.loadCommit(c).timestamp < cutoff) break;
      roots.add(c);
    }
  }
  for (const c of opts.extraRoots ?? []) roots.add(c);
  if (!refsOnly) for (const o of all) if (o.type === 'commit') roots.add(o.checksum);
  const reachable = new Set<ObjectKey>();
  markTrees(repo, roots, reachable);
  const del = all.filter((o) => !reachable.has(objectKey(o.checksum, o.type)));
  let freedBytes = 0;
  for (const o of del) {
    try {
      freedBytes += fs.statSync(o.file).size;
    } catch {
      // gone meanwhile
    }
  }
  const rank = (t: ObjectType): number => (t === 'commit' ? 0 : t === 'commitmeta' ? 1 : t === 'dirtree' ? 2 : t === 'dirmeta' ? 3 : 4);
  del.sort((a, b) => rank(a.type) - rank(b.type));
  return { repo, keptCommits: [...roots], delete: del, freedBytes };
}

export function applyPrune(plan: PrunePlan, onProgress?: (done: number, total: number) => void): number {
  const symlinkCache = !plan.repo.archive;
  let n = 0;
  for (const [i, o] of plan.delete.entries()) {
    if (onProgress && i % 256 === 0) onProgress(i, plan.delete.length);
    try {
      fs.unlinkSync(o.file);
      n++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'delete', o.file);
    }
    if (o.type === 'file' && symlinkCache) fs.rmSync(symlinkCachePath(plan.repo, o.checksum), { force: true });
  }
  return n;
}

export function prune(opts: PruneOptions): PruneResult {
  if (opts.depth !== undefined && (!Number.isInteger(opts.depth) || opts.depth < -1)) {
    throw new StrataError('USAGE', `--depth must be a whole number of commits, or -1 for all (got ${opts.depth})`);
  }
  const repo = Repo.open(opts.repo);
  const unlock = opts.dryRun ? () => undefined : lockRepo(repo);
  try {
    const plan = planPrune(repo, opts);
    const deleted = opts.dryRun ? 0 : applyPrune(plan, opts.onProgress);
    return {
      dryRun: !!opts.dryRun,
      total: plan.delete.length,
      deleted,
      deletedCommits: plan.delete.filter((o) => o.type === 'commit').length,
      freedBytes: plan.freedBytes,
    };
  } finally {
    unlock();
  }
}

/** Parses durations such as `30d`, `12h`, `2w`, `90m`, `45s` into seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?|w|weeks?)$/i.exec(text.trim());
  if (!m) throw new StrataError('INVALID_DURATION', `cannot read duration '${text}': use a number and a unit, e.g. 30d, 12h, 2w`, { text });
  const unit = m[2][0].toLowerCase();
  const mult = unit === 's' ? 1 : unit === 'm' ? 60 : unit === 'h' ? 3600 : unit === 'd' ? 86400 : 604800;
  return Number(m[1]) * mult;
}
