// A small pool of worker threads, one per core, fed in batches so that
// message passing stays cheap next to the hashing and compression it carries.

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { StrataError, type ErrorCode, ERROR_CODES } from '../errors.js';
import type { WorkerReply, WorkerTask } from './object-worker.js';

interface Pending {
  task: WorkerTask;
  transfer: ArrayBuffer[];
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  inFlight: Map<number, Pending[]>;
}

/** How many tasks go to a worker in one message. */
const MAX_BATCH = 24;
/** Batches a worker may hold at once: one running, one queued. */
const DEPTH = 2;
/**
 * A worker that is busy gets its queued batch only once this many tasks
 * wait: when tasks trickle in (a pull's downloads), they gather while the
 * worker runs, instead of one message per task.
 */
const MIN_QUEUED_BATCH = 8;

function workerScript(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL('./object-worker.js', import.meta.url);
  // Running from TypeScript sources (tests): a tiny bootstrap registers tsx first.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./object-worker.ts', import.meta.url).href;
  const code = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry)});`;
  return new URL('data:text/javascript,' + encodeURIComponent(code));
}

export function defaultWorkerCount(): number {
  const env = Number(process.env.STRATA_WORKERS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, Math.min(8, os.availableParallelism()));
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private flushScheduled = false;
  private failure: Error | null = null;

  constructor(size = defaultWorkerCount()) {
    const url = workerScript();
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url);
      const slot: Slot = { worker, inFlight: new Map() };
      worker.on('message', (msg: { id: number; replies: WorkerReply[] }) => this.onReply(slot, msg));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (code !== 0 && slot.inFlight.size > 0) this.fail(new Error(`worker exited with code ${code}`));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** Tasks waiting for a worker or in one. */
  get backlog(): number {
    let n = this.queue.length;
    for (const s of this.slots) for (const b of s.inFlight.values()) n += b.length;
    return n;
  }

  run<T>(task: WorkerTask, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ task, transfer, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    for (;;) {
      if (this.queue.length === 0) return;
      const slot = this.slots.reduce((a, b) => (b.inFlight.size < a.inFlight.size ? b : a));
      if (slot.inFlight.size >= DEPTH) return;
      if (slot.inFlight.size > 0 && this.queue.length < MIN_QUEUED_BATCH) return;
      const size = Math.max(1, Math.min(MAX_BATCH, Math.ceil(this.queue.length / this.slots.length)));
      const batch = this.queue.splice(0, size);
      const id = this.nextId++;
      slot.inFlight.set(id, batch);
      slot.worker.ref();
      slot.worker.postMessage({ id, tasks: batch.map((p) => p.task) }, batch.flatMap((p) => p.transfer));
    }
  }

  private onReply(slot: Slot, msg: { id: number; replies: WorkerReply[] }): void {
    const batch = slot.inFlight.get(msg.id);
    slot.inFlight.delete(msg.id);
    if (slot.inFlight.size === 0) slot.worker.unref();
    if (!batch) return;
    msg.replies.forEach((r, i) => {
      if (r.ok) batch[i].resolve(r.value);
      else {
        const code = (r.code in ERROR_CODES ? r.code : 'INTERNAL') as ErrorCode;
        batch[i].reject(new StrataError(code, r.message, r.data));
      }
    });
    this.dispatch();
  }

  private fail(err: Error): void {
    this.failure = err;
    for (const p of this.queue.splice(0)) p.reject(err);
    for (const s of this.slots) {
      for (const b of s.inFlight.values()) for (const p of b) p.reject(err);
      s.inFlight.clear();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
