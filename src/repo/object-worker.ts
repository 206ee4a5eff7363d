// Worker-thread entry: runs batches of content jobs (stage, verify, place,
// hash checked-out files, verify and stage pulled objects) and posts their
// results back. Errors travel as { code, message, data }.

import { parentPort } from 'node:worker_threads';
import { StrataError } from '../errors.js';
import { type ContentJob, type StageContext, stageContent } from './stage-content.js';
import { type VerifyContext, verifyContentFile, verifyContents } from './verify-content.js';
import { type PulledObject, stagePulled } from './stage-pulled.js';
import { type PatchJob, stagePatched } from './stage-patched.js';
import type { Checksum } from '../core/objects.js';
import { type PlaceTask, placeFiles } from './place-files.js';
import { type HashFilesTask, hashFiles } from './verify-tree.js';

export type WorkerTask =
  | { kind: 'stage'; ctx: StageContext; job: ContentJob }
  | { kind: 'stage-patched'; ctx: StageContext; job: PatchJob }
  | { kind: 'verify'; ctx: VerifyContext; checksums: Checksum[] }
  | { kind: 'place'; task: PlaceTask }
  | { kind: 'hash-files'; task: HashFilesTask }
  | { kind: 'stage-pulled'; job: PulledObject }
  | { kind: 'verify-file'; file: string; checksum: Checksum; archive: boolean };

export type WorkerReply = { ok: true; value: unknown } | { ok: false; code: string; message: string; data: Record<string, unknown> };

async function run(task: WorkerTask): Promise<unknown> {
  switch (task.kind) {
    case 'stage':
      return stageContent(task.ctx, task.job);
    case 'stage-patched':
      return stagePatched(task.ctx, task.job);
    case 'verify':
      return verifyContents(task.ctx, task.checksums);
    case 'place':
      return placeFiles(task.task);
    case 'hash-files':
      return hashFiles(task.task);
    case 'stage-pulled':
      return stagePulled(task.job);
    case 'verify-file':
      return verifyContentFile(task.file, task.checksum, task.archive);
  }
}

parentPort?.on('message', async (msg: { id: number; tasks: WorkerTask[] }) => {
  const replies: WorkerReply[] = [];
  for (const task of msg.tasks) {
    try {
      replies.push({ ok: true, value: await run(task) });
    } catch (err) {
      if (err instanceof StrataError) replies.push({ ok: false, code: err.code, message: err.message, data: err.data });
      else replies.push({ ok: false, code: 'INTERNAL', message: String((err as Error)?.stack ?? err), data: {} });
    }
  }
  parentPort?.postMessage({ id: msg.id, replies });
});
