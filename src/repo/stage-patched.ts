// A content object made by a binary patch of an object the repository has:
// the step of a static delta's apply that costs the most CPU (reading, and
// in archive repos inflating, the old file; running the patch), run in a
// worker thread with the hashing and staging that follow.

import { StrataError, isStrataError } from '../errors.js';
import type { Checksum, FileMeta } from '../core/objects.js';
import { applyPatch } from '../core/bsdiff.js';
import { Repo } from './repo.js';
import { type ContentResult, type StageContext, stageContent } from './stage-content.js';

export interface PatchJob {
  /** The object the patch applies to. */
  source: Checksum;
  /** The bsdiff patch (often a view of a delta part held in shared memory). */
  patch: Uint8Array;
  meta: FileMeta;
  /** Size of the patched file, as the delta declares it. */
  size: number;
}

/** Repositories opened by this thread, by path (a worker serves one pull or apply at a time). */
const opened = new Map<string, Repo>();

export async function stagePatched(ctx: StageContext, job: PatchJob): Promise<ContentResult> {
  let repo = opened.get(ctx.repoPath);
  if (!repo) {
    repo = Repo.open(ctx.repoPath);
    opened.set(ctx.repoPath, repo);
  }
  let loaded: ReturnType<Repo['loadFile']>;
  try {
    loaded = repo.loadFile(job.source);
  } catch (err) {
    if (isStrataError(err, 'OBJECT_MISSING')) throw new StrataError('OBJECT_MISSING', `delta patches file ${job.source}, which the repository does not have`, { checksum: job.source });
    throw err;
  }
  if (!loaded.content) throw new StrataError('DELTA_CORRUPT', `delta patches ${job.source}, which is a symlink`, { checksum: job.source });
  const patch = Buffer.from(job.patch.buffer, job.patch.byteOffset, job.patch.byteLength);
  const data = applyPatch(loaded.content, patch, job.size);
  return stageContent(ctx, { data, meta: job.meta, size: job.size });
}
