// `strata fsck`: re-hash every object reachable from the refs (and every
// commit in the repository), and say which are missing or corrupt and where
// in which tree they are used.

import { createHash } from 'node:crypto';
import { StrataError } from '../errors.js';
import { type Checksum, type ObjectType, parseCommit, parseDirMeta, parseDirTree, parseVardict } from '../core/objects.js';
import { Repo } from './repo.js';
import { listRefs } from './refs.js';
import { listCommits } from './reachable.js';
import { WorkerPool } from './worker-pool.js';
import type { VerifyOutcome } from './verify-content.js';

export interface FsckOptions {
  repo: string;
  onProgress?: (done: number, total: number) => void;
}

export interface FsckProblem {
  checksum: Checksum;
  type: ObjectType;
  status: 'missing' | 'corrupt';
  message: string;
  /** The object's file in the repository. */
  object: string;
  /** Where the object is used: `COMMIT:/path/in/tree`. */
  usedAt: string[];
}

export interface FsckResult {
  commits: number;
  objects: number;
  contentBytes: number;
  problems: FsckProblem[];
}

const MAX_PLACES = 5;
/** Content objects per worker message. */
const VERIFY_CHUNK = 32;

export async function fsck(opts: FsckOptions): Promise<FsckResult> {
  const repo = Repo.open(opts.repo);
  const problems = new Map<string, FsckProblem>();
  const seen = new Set<string>();
  const content = new Map<Checksum, string[]>();

  const problem = (checksum: Checksum, type: ObjectType, status: 'missing' | 'corrupt', message: string, place: string): void => {
    const key = `${checksum}.${type}`;
    const p = problems.get(key);
    if (p) {
      if (p.usedAt.length < MAX_PLACES) p.usedAt.push(place);
      return;
    }
    problems.set(key, { checksum, type, status, message, object: repo.objectFile(checksum, type), usedAt: [place] });
  };

  /** Reads and re-hashes a metadata object; returns its bytes or null. */
  const checkMeta = (checksum: Checksum, type: Exclude<ObjectType, 'file'>, place: string): Buffer | null => {
    let bytes: Buffer;
    try {
      bytes = repo.readMetadataBytes(checksum, type);
    } catch (err) {
      if (err instanceof StrataError && err.code === 'OBJECT_MISSING') problem(checksum, type, 'missing', err.message, place);
      else problem(checksum, type, 'corrupt', (err as Error).message, place);
      return null;
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== checksum) {
      problem(checksum, type, 'corrupt', `${type} object ${checksum} hashes to ${actual}`, place);
      return null;
    }
    return bytes;
  };

  const parseOrReport = <T>(fn: () => T, checksum: Checksum, type: ObjectType, place: string): T | null => {
    try {
      return fn();
    } catch (err) {
      problem(checksum, type, 'corrupt', (err as Error).message, place);
      return null;
    }
  };

  // Content is verified by workers while the main thread is still walking trees.
  const pool = new WorkerPool();
  const ctx = { repoPath: repo.path, archive: repo.archive };
  const verifications: Promise<void>[] = [];
  let done = 0;
  let contentBytes = 0;
  let batch: Checksum[] = [];
  const flush = (): void => {
    const checksums = batch;
    batch = [];
    if (checksums.length === 0) return;
    verifications.push(
      pool.run<VerifyOutcome[]>({ kind: 'verify', ctx, checksums }).then((outcomes) => {
        outcomes.forEach((r, i) => {
          if (r.status === 'ok') contentBytes += r.size;
          else for (const place of content.get(checksums[i]) ?? []) problem(checksums[i], 'file', r.status, r.message, place);
        });
        done += checksums.length;
        opts.onProgress?.(done, content.size);
      }),
    );
  };
  const verify = (checksum: Checksum): void => {
    batch.push(checksum);
    if (batch.length >= VERIFY_CHUNK) flush();
  };

  let sinceYield = 0;
  const walkTree = async (commit: Checksum, tree: Checksum, meta: Checksum, dirPath: string): Promise<void> => {
    const place = `${commit}:${dirPath}`;
    if (!seen.has(`${meta}.dirmeta`)) {
      seen.add(`${meta}.dirmeta`);
      const b = checkMeta(meta, 'dirmeta', place);
      if (b) parseOrReport(() => parseDirMeta(b), meta, 'dirmeta', place);
    }
    if (seen.has(`${tree}.dirtree`)) return;
    seen.add(`${tree}.dirtree`);
    const bytes = checkMeta(tree, 'dirtree', place);
    if (!bytes) return;
    const t = parseOrReport(() => parseDirTree(bytes), tree, 'dirtree', place);
    if (!t) return;
    const prefix = dirPath === '/' ? '' : dirPath;
    for (const f of t.files) {
      const where = `${commit}:${prefix}/${f.name}`;
      const places = content.get(f.checksum);
      if (places) {
        if (places.length < MAX_PLACES) places.push(where);
      } else {
        content.set(f.checksum, [where]);
        verify(f.checksum);
      }
    }
    if (++sinceYield >= 32) {
      sinceYield = 0;
      flush();
      await new Promise((r) => setImmediate(r));
    }
    for (const d of t.dirs) await walkTree(commit, d.tree, d.meta, `${prefix}/${d.name}`);
  };

  const checkCommit = async (c: Checksum): Promise<void> => {
    const bytes = checkMeta(c, 'commit', `${c}:`);
    if (!bytes) return;
    const commit = parseOrReport(() => parseCommit(bytes), c, 'commit', `${c}:`);
    if (!commit) return;
    if (repo.hasObject(c, 'commitmeta')) parseOrReport(() => parseVardict(repo.readMetadataBytes(c, 'commitmeta')), c, 'commitmeta', `${c}:`);
    await walkTree(c, commit.rootTree, commit.rootMeta, '/');
  };

  // Refs first (their content starts verifying at once), then every other commit.
  const heads = new Set<Checksum>();
  try {
    for (const r of listRefs(repo)) {
      if (heads.has(r.checksum)) continue;
      heads.add(r.checksum);
      await checkCommit(r.checksum);
    }
    for (const c of listCommits(repo)) {
      if (heads.has(c)) continue;
      heads.add(c);
      await checkCommit(c);
    }
    flush();
    await Promise.all(verifications);
  } finally {
    await pool.close();
  }
  return { commits: heads.size, objects: seen.size + heads.size + content.size, contentBytes, problems: [...problems.values()] };
}
