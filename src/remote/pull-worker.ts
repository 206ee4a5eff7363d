// Worker-thread entry of a pull (the batch protocol of repo/object-worker.ts):
// each worker fetches content objects over its own keep-alive connections,
// then verifies and stages them (repo/stage-pulled.ts), so the HTTP client's
// per-request cost is spread over the cores as well as the inflating and
// hashing. Unlike object-worker, the tasks of a batch run at once: they
// mostly wait on the network.

import { parentPort, threadId } from 'node:worker_threads';
import { StrataError } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { type PulledObject, stagePulled } from '../repo/stage-pulled.js';
import { verifyContentFile } from '../repo/verify-content.js';
import { Fetcher } from './fetcher.js';

export interface FetchContentTask {
  kind: 'fetch-content';
  /** The remote's base URL and this worker's share of the requests in flight. */
  remote: { url: string; jobs: number; retries?: number; timeoutMs?: number };
  rel: string;
  partial: string;
  noEarlierPartial: boolean;
  maxBytes: number;
  job: Omit<PulledObject, 'body' | 'file'>;
}

export interface FetchContentResult {
  /** The checksum the bytes have (the wanted one when staged), or why they are unreadable. */
  actual: string;
  /** This worker's fetcher totals so far (tasks overlap, so no share per task): the caller keeps the latest per thread. */
  thread: number;
  totals: { bytes: number; resumedBytes: number; retries: number };
}

export type PullWorkerTask = FetchContentTask | { kind: 'verify-file'; file: string; checksum: Checksum; archive: boolean };

type Reply = { ok: true; value: unknown } | { ok: false; code: string; message: string; data: Record<string, unknown> };

const fetchers = new Map<string, Fetcher>();

async function fetchContent(task: FetchContentTask): Promise<FetchContentResult> {
  const key = `${task.remote.url} ${task.remote.jobs}`;
  let fetcher = fetchers.get(key);
  if (!fetcher) {
    fetcher = new Fetcher(task.remote);
    fetchers.set(key, fetcher);
  }
  const got = await fetcher.getObject(task.rel, task.partial, { maxBytes: task.maxBytes, noEarlierPartial: task.noEarlierPartial });
  const actual = await stagePulled(got.kind === 'file' ? { ...task.job, file: got.path } : { ...task.job, body: got.body });
  return { actual, thread: threadId, totals: { bytes: fetcher.bytesReceived, resumedBytes: fetcher.bytesResumed, retries: fetcher.retryCount } };
}

async function run(task: PullWorkerTask): Promise<unknown> {
  switch (task.kind) {
    case 'fetch-content':
      return fetchContent(task);
    case 'verify-file':
      return verifyContentFile(task.file, task.checksum, task.archive);
  }
}

async function reply(task: PullWorkerTask): Promise<Reply> {
  try {
    return { ok: true, value: await run(task) };
  } catch (err) {
    if (err instanceof StrataError) return { ok: false, code: err.code, message: err.message, data: err.data };
    return { ok: false, code: 'INTERNAL', message: String((err as Error)?.stack ?? err), data: {} };
  }
}

parentPort?.on('message', async (msg: { id: number; tasks: PullWorkerTask[] }) => {
  parentPort?.postMessage({ id: msg.id, replies: await Promise.all(msg.tasks.map(reply)) });
});
