// Applies a static delta in OSTree's format (ours or libostree's) to an
// archive or bare-user repository. Every part is checked against the SHA-256
// its superblock lists before it is decompressed; every object it makes is
// re-hashed and must be the object the part header names, before it is
// staged in a Transaction. Nothing is stored unless the whole delta applies
// and the target commit's tree is complete.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { StrataError, ioError } from '../errors.js';
import {
  type Checksum, type DirTree, type FileMeta, type Metadata, type ObjectType, S_IFLNK, S_IFMT, S_IFREG, parseArchiveHeader, parseCommit, parseDirTree,
  xattrsFromGVariant,
} from '../core/objects.js';
import { type PartIndex, type Superblock, OP, PART_INDEX_KEY, parsePartIndex, parsePartPayload, parseSuperblock, readVarUint } from '../core/delta-format.js';
import { applyPatch } from '../core/bsdiff.js';
import { deltaName, staticDeltaDir } from '../core/deltas.js';
import { Repo, inflateBody } from '../repo/repo.js';
import { Transaction } from '../repo/transaction.js';
import { type ContentResult, type StageContext, stageContent, stagedName } from '../repo/stage-content.js';
import { stagePatched } from '../repo/stage-patched.js';
import { WorkerPool } from '../repo/worker-pool.js';
import { ObjectLookup } from '../repo/object-lookup.js';
import { writeCommitMeta } from './sign.js';
import { type XzRun, type XzTool, decompressArgs, pickXzTool, runXzTool } from './xz-tool.js';

/** Fetches a file of the remote repository by its path relative to the repository (e.g. `deltas/ab/cd…/superblock`). */
export type FetchFile = (relPath: string) => Promise<Buffer>;

export interface ApplyDeltaOptions {
  repo: string | Repo;
  fetch: FetchFile;
  from: Checksum | null;
  to: Checksum;
  /** SHA-256 (hex) of the superblock as the (verified) summary lists it; checked when given. */
  superblockDigest?: string;
  /**
   * The commit's detached metadata as the caller fetched (and verified) it,
   * stored in the same transaction as the commit; null: store none. When
   * undefined, the metadata the superblock carries is written after the commit.
   */
  detachedMetadata?: Buffer | null;
  onProgress?: (partsDone: number, parts: number) => void;
  /** What decompresses the parts: 'auto' (default) takes 7zz when installed (less CPU), else xz. */
  decompressor?: XzTool | 'auto';
  /**
   * Where content objects are hashed and written: in worker threads, or on
   * this thread. 'auto' (default): this thread for a delta with a part index
   * (strata's) on machines with two cores or fewer, where the two
   * decompressors already keep them busy and workers only add their start-up
   * and compiling (decision 0003); workers otherwise.
   */
  staging?: 'auto' | 'inline' | 'workers';
}

export interface ApplyDeltaResult {
  name: string;
  commit: Checksum;
  parts: number;
  /** Parts not fetched because the repository held all their objects. */
  partsSkipped: number;
  /** Bytes fetched: superblock, parts and fallback objects. */
  bytesFetched: number;
  objectsWritten: number;
}

const EMPTY = Buffer.alloc(0);
/** libostree sizes parts by uncompressed objects; the payload adds modes, ops and patch framing. */
const partLimit = (usize: number): number => Math.max(usize * 2, 1 << 20) + 64 * 1024 * 1024;
const corrupt = (msg: string, data: Record<string, unknown> = {}): StrataError => new StrataError('DELTA_CORRUPT', msg, data);
const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A FetchFile reading from a repository directory on this machine. */
export function localFetch(repoDir: string): FetchFile {
  return async (rel) => {
    const file = path.join(repoDir, rel);
    try {
      return await fs.promises.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('DELTA_NOT_FOUND', `${file} does not exist`, { path: file });
      throw ioError(err, 'read', file);
    }
  };
}

const notXz = (message: string): StrataError => corrupt(`a delta part is not valid xz data: ${message}`);
const tooLarge = (limit: number): StrataError => corrupt(`a delta part decompresses to more than the ${limit} bytes its header allows`);

/** A whole part, decompressed into shared memory. */
async function decompress(tool: XzTool, input: Buffer, limit: number): Promise<Buffer> {
  const out: Buffer[] = [];
  let size = 0;
  const run = runXzTool(tool, decompressArgs(tool), input, {
    doing: 'read a delta part',
    failed: notXz,
    onData: (b) => {
      size += b.length;
      if (size > limit) run.kill();
      else out.push(b);
    },
  });
  try {
    await run.done;
  } catch (err) {
    throw size > limit ? tooLarge(limit) : err;
  }
  if (size > limit) throw tooLarge(limit);
  return sharedCopy(out, size);
}

/**
 * The chunks in one buffer over shared memory: content objects of the part
 * go to the workers as views of it, without a copy each.
 */
function sharedCopy(chunks: Buffer[], size: number): Buffer {
  const out = Buffer.from(new SharedArrayBuffer(size));
  let at = 0;
  // Buffer#copy is a memcpy; TypedArray#set took three times as long for a 64 MiB part.
  for (const c of chunks) at += c.copy(out, at);
  return out;
}

/**
 * A part as xz decompresses it, into shared memory: strata's deltas list
 * each part's operations in the superblock (PART_INDEX_KEY), so objects are
 * made from the data that has arrived while the rest is still decompressed.
 * When the stream ends, the part itself must hold the same modes, xattrs and
 * operations at the same place, or it is DELTA_CORRUPT.
 */
class StreamedPart {
  readonly payload: Buffer;
  private filled = 0;
  private failure: Error | null = null;
  private ended = false;
  private waiters: { end: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private readonly run: XzRun;
  private readonly closed: Promise<void>;

  constructor(tool: XzTool, input: Buffer, private readonly index: PartIndex, private readonly indexBytes: Buffer) {
    // The payload: modes and xattrs, data, operations, and at most 3 framing offsets of 8 bytes.
    this.payload = Buffer.from(new SharedArrayBuffer(index.dataOffset + index.dataLength + index.ops.length + 24));
    this.run = runXzTool(tool, decompressArgs(tool), input, {
      doing: 'read a delta part',
      failed: notXz,
      onData: (b) => {
        if (this.failure) return;
        if (this.filled + b.length > this.payload.length) return this.fail(corrupt(`a delta part decompresses to more than the ${this.payload.length} bytes its index allows`));
        this.filled += b.copy(this.payload, this.filled);
        this.wake();
      },
    });
    this.closed = this.run.done.then(
      () => this.end(),
      (err: Error) => {
        this.fail(err);
        this.end();
      },
    );
  }

  /** The part's data, filled as it arrives. */
  get data(): Buffer {
    return this.payload.subarray(this.index.dataOffset, this.index.dataOffset + this.index.dataLength);
  }

  /** null when data bytes [0, end) are there, else a promise of them. */
  ready(end: number): Promise<void> | null {
    if (this.failure) throw this.failure;
    if (this.filled >= this.index.dataOffset + end) return null;
    return new Promise((resolve, reject) => {
      this.waiters.push({ end: this.index.dataOffset + end, resolve, reject });
      this.wake();
    });
  }

  /** Waits for the end of the stream and checks that the part is the one its index describes. */
  async finish(): Promise<void> {
    await this.closed;
    if (this.failure) throw this.failure;
    const whole = parsePartPayload(this.payload.subarray(0, this.filled));
    const same =
      whole.data.byteOffset - this.payload.byteOffset === this.index.dataOffset &&
      whole.data.length === this.index.dataLength &&
      whole.ops.equals(this.index.ops) &&
      this.payload.subarray(0, this.index.dataOffset).equals(this.indexBytes.subarray(0, this.index.dataOffset));
    if (!same) throw corrupt("a delta part's modes, xattrs or operations differ from the part index in its superblock");
  }

  kill(): void {
    this.run.kill();
  }

  private end(): void {
    this.ended = true;
    this.wake();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.kill();
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (this.failure) w.reject(this.failure);
      else if (this.filled >= w.end) w.resolve();
      else if (this.ended) w.reject(corrupt('a delta operation reads past the end of its part'));
      else this.waiters.push(w);
    }
  }
}

/** What executePart runs: a whole part, or one still arriving (ready). */
interface PartSource {
  modes: [number, number, number][];
  xattrs: [Buffer, Buffer][][];
  data: Buffer;
  ops: Buffer;
  /** null when data bytes [0, end) are there, else a promise of them; absent: all are there. */
  ready?: (end: number) => Promise<void> | null;
  /** After the operations ran: waits for the end of a part still arriving and checks it. */
  finish?: () => Promise<void>;
}

interface Ctx {
  repo: Repo;
  tx: Transaction;
  /** Objects staged in this transaction (metadata with its bytes, readable before the commit). */
  staged: Map<string, Buffer>;
  written: number;
  /** Hashing and writing content objects runs in worker threads (decision 0003), started on first use... */
  pool: WorkerPool | null;
  /** ...or on this thread (see `staging` in ApplyDeltaOptions). */
  inline: boolean;
  /** Content objects handed to a worker and not yet confirmed. */
  pending: Promise<void>[];
  /** What objects/ holds (listed once; the transaction's lock keeps it from changing under us). */
  lookup: ObjectLookup;
  /** Where and how content objects are staged, made once (see stageContext). */
  stage: StageContext | null;
}

/** Whether an object is staged in this transaction or already in the repository. */
function present(ctx: Ctx, checksum: Checksum, type: ObjectType): boolean {
  return ctx.staged.has(`${checksum}.${type}`) || ctx.lookup.has(checksum, type);
}

/** Waits for every content object handed to a worker; the first failure is thrown once all have settled. */
async function settlePending(ctx: Ctx): Promise<void> {
  const results = await Promise.allSettled(ctx.pending.splice(0));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function stageMetadata(ctx: Ctx, type: ObjectType, expected: Checksum, bytes: Buffer): void {
  const actual = sha256hex(bytes);
  if (actual !== expected) throw corrupt(`delta made ${type} ${actual} where its header names ${expected}`, { expected, actual });
  if (type === 'dirtree') parseDirTree(bytes); // refuses malformed trees and unsafe names before they are stored
  if (ctx.tx.writeMetadata(type as 'dirtree' | 'dirmeta' | 'commit', bytes).written) ctx.written++;
  ctx.staged.set(`${expected}.${type}`, bytes);
}

function stageContext(ctx: Ctx): StageContext {
  if (ctx.stage) return ctx.stage;
  const sc: StageContext = { repoPath: ctx.repo.path, stagingDir: ctx.tx.stagingDir, archive: ctx.repo.archive, level: 6 };
  // On this thread the listing answers; a worker asks the filesystem (a function does not travel).
  if (ctx.inline) sc.hasFile = (checksum) => ctx.lookup.has(checksum, 'file');
  ctx.stage = sc;
  return sc;
}

/** Waits (later, in settlePending) for a worker's result, which must be the object the part header names. */
function expectFile(ctx: Ctx, expected: Checksum, result: Promise<ContentResult>): void {
  const done = result.then((r) => {
    if (r.checksum !== expected) throw corrupt(`delta made file ${r.checksum} where its header names ${expected}`, { expected, actual: r.checksum });
    if (r.written && ctx.tx.noteStaged(r.checksum, 'file')) ctx.written++;
  });
  // Observed now (a rejection must not count as unhandled); settlePending reports it.
  done.catch(() => undefined);
  ctx.pending.push(done);
  ctx.staged.set(`${expected}.file`, EMPTY);
}

/** A view that travels to a worker: shared memory as it is, else a copy in a buffer of its own, transferred. */
function forWorker(content: Buffer | undefined): { data: Uint8Array; transfer: ArrayBuffer[] } {
  if (content && content.buffer instanceof SharedArrayBuffer) return { data: content, transfer: [] };
  const data = new Uint8Array(content?.length ?? 0);
  if (content) data.set(content);
  return { data, transfer: [data.buffer] };
}

/**
 * Hands a content object to a worker (or stages it here), which hashes it and
 * stages it only when it is the object the part header names (else DELTA_CORRUPT).
 */
function stageFile(ctx: Ctx, expected: Checksum, meta: FileMeta, content: Buffer | undefined): void {
  if (ctx.inline) {
    const data = content ?? EMPTY;
    expectFile(ctx, expected, stageContent(stageContext(ctx), { data, meta, size: data.length }));
    return;
  }
  const { data, transfer } = forWorker(content);
  ctx.pool ??= new WorkerPool();
  expectFile(ctx, expected, ctx.pool.run<ContentResult>({ kind: 'stage', ctx: stageContext(ctx), job: { data, meta, size: data.length } }, transfer));
}

/** Hands a whole-file binary patch to a worker (or applies it here): read the old object, patch, hash and stage. */
function stagePatchedFile(ctx: Ctx, expected: Checksum, meta: FileMeta, source: Checksum, patchBytes: Buffer, size: number): void {
  if (ctx.inline) {
    expectFile(ctx, expected, stagePatched(stageContext(ctx), { source, patch: patchBytes, meta, size }));
    return;
  }
  const { data, transfer } = forWorker(patchBytes);
  ctx.pool ??= new WorkerPool();
  expectFile(ctx, expected, ctx.pool.run<ContentResult>({ kind: 'stage-patched', ctx: stageContext(ctx), job: { source, patch: data, meta, size } }, transfer));
}

/** Parts fetched and decompressed ahead of the one being applied: with the current one, two xz processes, one per core (each part up to ~32 MiB in memory). */
const PARTS_AHEAD = 1;

/** Lets the workers start on what is queued while a part is still being run. */
const YIELD_EVERY = 64;

function fileMeta(modes: [number, number, number][], xattrs: [Buffer, Buffer][][], mi: number, xi: number): FileMeta {
  const m = modes[mi];
  const x = xattrs[xi];
  if (!m || !x) throw corrupt(`delta operation names mode ${mi} or xattr set ${xi}, which the part does not have`);
  const [uid, gid, mode] = m;
  const fmt = mode & S_IFMT;
  if (fmt !== S_IFREG && fmt !== S_IFLNK) throw corrupt(`delta makes a file of mode 0${mode.toString(8)}, neither a regular file nor a symlink`);
  return { uid, gid, mode, symlinkTarget: '', xattrs: xattrsFromGVariant(x) };
}

/** Runs one part's operations, staging every object it makes. */
async function executePart(ctx: Ctx, objects: { type: ObjectType; checksum: Checksum }[], part: PartSource, maxFile: number): Promise<void> {
  const { modes, xattrs, data, ops } = part;
  const slice = async (off: number, len: number): Promise<Buffer> => {
    if (off + len > data.length) throw corrupt(`delta operation reads ${len} bytes at ${off}, past the part's ${data.length} bytes`);
    const arriving = part.ready?.(off + len);
    if (arriving) await arriving;
    return data.subarray(off, off + len);
  };
  let index = 0;
  let pos = 0;
  let handedAt = ctx.pending.length;
  /** The object OP_SET_READ_SOURCE named, read only when an operation copies from it on this thread. */
  let sourceSum: Checksum | null = null;
  let sourceBytes: Buffer | null = null;
  const source = (): Buffer | null => {
    if (sourceSum === null) return null;
    if (sourceBytes === null) {
      let loaded;
      try {
        loaded = ctx.repo.loadFile(sourceSum);
      } catch (err) {
        if (err instanceof StrataError && err.code === 'OBJECT_MISSING') throw new StrataError('OBJECT_MISSING', `delta patches file ${sourceSum}, which the repository does not have`, { checksum: sourceSum });
        throw err;
      }
      if (!loaded.content) throw corrupt(`delta patches ${sourceSum}, which is a symlink`);
      sourceBytes = loaded.content;
    }
    return sourceBytes;
  };
  const unsetSource = (): void => {
    sourceSum = null;
    sourceBytes = null;
  };
  let open: { checksum: Checksum; meta: FileMeta; size: number; chunks: Buffer[]; got: number; patch?: { source: Checksum; bytes: Buffer } } | null = null;
  const arg = (): number => {
    const [v, next] = readVarUint(ops, pos);
    pos = next;
    return v;
  };
  const target = (): { type: ObjectType; checksum: Checksum } => {
    const t = objects[index];
    if (!t) throw corrupt('delta part makes more objects than its header lists');
    if (open) throw corrupt('delta part opens an object while another is open');
    return t;
  };
  const finishOpen = async (): Promise<void> => {
    if (!open) throw corrupt('delta part closes an object it did not open');
    if (open.got !== open.size) throw corrupt(`delta part wrote ${open.got} bytes of a ${open.size}-byte file`);
    if (open.patch) stagePatchedFile(ctx, open.checksum, open.meta, open.patch.source, open.patch.bytes, open.size);
    // One write (the usual case) is a view of the part: no copy, and none for a worker either (shared memory).
    else stageFile(ctx, open.checksum, open.meta, open.chunks.length === 1 ? open.chunks[0] : Buffer.concat(open.chunks));
    open = null;
    unsetSource();
    index++;
  };
  const append = (b: Buffer): void => {
    if (!open) throw corrupt('delta part writes with no object open');
    if (open.got + b.length > open.size) throw corrupt('delta part writes past the end of a file');
    open.chunks.push(b);
    open.got += b.length;
  };
  while (pos < ops.length) {
    if (ctx.pending.length - handedAt >= YIELD_EVERY) {
      handedAt = ctx.pending.length;
      await new Promise((r) => setImmediate(r));
    }
    const op = ops[pos++];
    switch (op) {
      case OP.openSpliceAndClose: {
        const t = target();
        if (t.type !== 'file') {
          const len = arg();
          const off = arg();
          stageMetadata(ctx, t.type, t.checksum, Buffer.from(await slice(off, len)));
        } else {
          const meta = fileMeta(modes, xattrs, arg(), arg());
          const len = arg();
          const bytes = await slice(arg(), len);
          if ((meta.mode & S_IFMT) === S_IFLNK) {
            const linkTarget = bytes.toString('utf8');
            if (!Buffer.from(linkTarget, 'utf8').equals(bytes)) throw corrupt('delta symlink target is not UTF-8');
            stageFile(ctx, t.checksum, { ...meta, symlinkTarget: linkTarget }, undefined);
          } else stageFile(ctx, t.checksum, meta, bytes);
        }
        unsetSource();
        index++;
        break;
      }
      case OP.open: {
        const t = target();
        if (t.type !== 'file') throw corrupt(`delta part opens ${t.type} ${t.checksum} as a file`);
        const meta = fileMeta(modes, xattrs, arg(), arg());
        if ((meta.mode & S_IFMT) !== S_IFREG) throw corrupt('delta part opens a symlink for writing');
        const size = arg();
        // The size comes from the delta: bound it before anything is allocated for it.
        if (size > maxFile) throw corrupt(`delta part opens a ${size}-byte file, more than the ${maxFile} bytes its header allows`);
        open = { checksum: t.checksum, meta, size, chunks: [], got: 0 };
        break;
      }
      case OP.write: {
        const len = arg();
        const off = arg();
        const src = source();
        if (src) {
          if (off + len > src.length) throw corrupt(`delta part copies ${len} bytes at ${off} from a ${src.length}-byte source`);
          append(src.subarray(off, off + len));
        } else append(await slice(off, len));
        break;
      }
      case OP.setReadSource: {
        const sum = (await slice(arg(), 32)).toString('hex') as Checksum;
        unsetSource();
        sourceSum = sum;
        break;
      }
      case OP.unsetReadSource:
        unsetSource();
        break;
      case OP.close:
        await finishOpen();
        break;
      case OP.bspatch: {
        const off = arg();
        const len = arg();
        if (!open || sourceSum === null) throw corrupt('delta part patches with no object open or no source set');
        if (open.got === 0 && ops[pos] === OP.close) {
          // The whole file from one patch (how strata's deltas patch): read, patch, hash and stage in a worker.
          open.patch = { source: sourceSum, bytes: await slice(off, len) };
          open.got = open.size;
        } else append(applyPatch(source() as Buffer, await slice(off, len), open.size - open.got));
        break;
      }
      default:
        throw corrupt(`delta part holds unknown operation 0x${op.toString(16)}`);
    }
  }
  if (open) throw corrupt('delta part ends with an object still open');
  if (index !== objects.length) throw corrupt(`delta part made ${index} of the ${objects.length} objects its header lists`);
}

/** Stages detached metadata (named by its commit, not its hash) unless the repository holds the same bytes. */
function stageCommitMeta(ctx: Ctx, commit: Checksum, bytes: Buffer): void {
  const file = ctx.repo.objectFile(commit, 'commitmeta');
  if (fs.existsSync(file) && fs.readFileSync(file).equals(bytes)) return;
  const staged = path.join(ctx.tx.stagingDir, stagedName(commit, 'commitmeta', ctx.repo.archive));
  try {
    fs.writeFileSync(staged, bytes, { mode: 0o644 });
  } catch (err) {
    throw ioError(err, 'stage object', staged);
  }
  if (ctx.tx.noteStaged(commit, 'commitmeta')) ctx.written++;
}

/** Fetches a fallback object from the remote's archive objects/ and stages it. */
async function applyFallback(ctx: Ctx, fetch: FetchFile, type: ObjectType, checksum: Checksum): Promise<number> {
  const rel = `objects/${checksum.slice(0, 2)}/${checksum.slice(2)}.${type === 'file' ? 'filez' : type}`;
  const bytes = await fetch(rel);
  if (type !== 'file') {
    stageMetadata(ctx, type, checksum, bytes);
    return bytes.length;
  }
  const h = parseArchiveHeader(bytes);
  const isLink = (h.meta.mode & S_IFMT) === S_IFLNK;
  stageFile(ctx, checksum, h.meta, isLink ? undefined : inflateBody(bytes.subarray(h.bodyOffset), h.size, checksum));
  return bytes.length;
}

/** Every object of `to`'s tree must be in the repository or staged now. */
function checkComplete(ctx: Ctx, sb: Superblock): void {
  const seen = new Set<string>();
  const missing = (what: string): StrataError =>
    new StrataError('DELTA_CORRUPT', `delta ${deltaName(sb)} leaves ${what} of commit ${sb.to} missing`, { to: sb.to });
  const walk = (tree: Checksum, meta: Checksum): void => {
    if (!present(ctx, meta, 'dirmeta')) throw missing(`dirmeta ${meta}`);
    if (seen.has(tree)) return;
    seen.add(tree);
    const bytes = ctx.staged.get(`${tree}.dirtree`);
    let t: DirTree;
    if (bytes) t = parseDirTree(bytes);
    else if (ctx.lookup.has(tree, 'dirtree')) t = ctx.repo.loadDirTree(tree);
    else throw missing(`dirtree ${tree}`);
    for (const f of t.files) if (!present(ctx, f.checksum, 'file')) throw missing(`file ${f.checksum} (${f.name})`);
    for (const d of t.dirs) walk(d.tree, d.meta);
  };
  const commit = parseCommit(sb.commit);
  walk(commit.rootTree, commit.rootMeta);
}

/** The part index of a delta strata made (null for libostree's), checked against the part headers. */
function partIndexes(sb: Superblock): { parsed: PartIndex; bytes: Buffer }[] | null {
  const entry = sb.metadata.find(([k]) => k === PART_INDEX_KEY);
  if (!entry) return null;
  const value = entry[1];
  if (value.type !== 'aay' || !Array.isArray(value.value) || value.value.length !== sb.parts.length) throw corrupt(`the superblock's ${PART_INDEX_KEY} does not list one entry per part`);
  return (value.value as Buffer[]).map((bytes, i) => {
    const parsed = parsePartIndex(bytes);
    if (parsed.dataOffset + parsed.dataLength > partLimit(sb.parts[i].usize)) throw corrupt(`the superblock's index makes part ${i} larger than its header allows`);
    return { parsed, bytes };
  });
}

/**
 * Fetches and applies the static delta FROM→TO (FROM null: from nothing),
 * storing every object of TO the repository lacks. FROM must be in the
 * repository. Moves no ref: the caller does that after it returns.
 */
export async function applyDelta(opts: ApplyDeltaOptions): Promise<ApplyDeltaResult> {
  const repo = typeof opts.repo === 'string' ? Repo.open(opts.repo) : opts.repo;
  const { from, to, fetch } = opts;
  const name = deltaName({ from, to });
  const dir = staticDeltaDir({ from, to });
  if (from && !repo.hasObject(from, 'commit')) {
    throw new StrataError('OBJECT_MISSING', `cannot apply delta ${name}: the repository does not have commit ${from}`, { checksum: from });
  }
  const sbBytes = await fetch(`${dir}/superblock`);
  let bytesFetched = sbBytes.length;
  if (opts.superblockDigest !== undefined && sha256hex(sbBytes) !== opts.superblockDigest) {
    throw corrupt(`the superblock of delta ${name} does not match the digest the summary lists`, { expected: opts.superblockDigest, actual: sha256hex(sbBytes) });
  }
  const sb = parseSuperblock(sbBytes);
  if (sb.to !== to || sb.from !== from) throw corrupt(`the superblock at ${dir} is for delta ${deltaName(sb)}, not ${name}`);
  if (sha256hex(sb.commit) !== to) throw corrupt(`delta ${name} carries a commit object that is not ${to}`);

  const indexes = partIndexes(sb);
  const tool = pickXzTool(opts.decompressor ?? 'auto');

  // Staging here pays only while parts stream in (a part index): without one,
  // a part is all decompressed before its objects are made, and workers let
  // staging overlap the next part's decompression.
  const inline = (opts.staging ?? 'auto') === 'auto' ? indexes !== null && os.availableParallelism() <= 2 : opts.staging === 'inline';
  const tx = Transaction.begin(repo);
  // The workers start now: they load while the first part is fetched and decompressed.
  const ctx: Ctx = { repo, tx, staged: new Map(), written: 0, pool: inline ? null : new WorkerPool(), inline, pending: [], lookup: new ObjectLookup(repo), stage: null };
  let partsSkipped = 0;
  try {
    // The next parts are fetched and decompressed (xz processes, on the other core) while one is applied.
    const streams: StreamedPart[] = [];
    const load = async (i: number): Promise<PartSource | null> => {
      const h = sb.parts[i];
      if (h.version !== 0) throw corrupt(`delta part ${i} has version ${h.version}; strata reads version 0`);
      if (h.objects.every((o) => present(ctx, o.checksum, o.type))) return null;
      const body = await fetch(`${dir}/${i}`);
      bytesFetched += body.length;
      if (body.length !== h.size || sha256hex(body) !== h.checksum) {
        throw corrupt(`delta part ${i} of ${name} does not match its checksum (${body.length} bytes, expected ${h.size})`, { part: i });
      }
      const index = indexes?.[i];
      if (body[0] === 0x78 && index) {
        const stream = new StreamedPart(tool, body.subarray(1), index.parsed, index.bytes);
        streams.push(stream);
        return { modes: index.parsed.modes, xattrs: index.parsed.xattrs, ops: index.parsed.ops, data: stream.data, ready: (end) => stream.ready(end), finish: () => stream.finish() };
      }
      let payload: Buffer;
      if (body[0] === 0x78) payload = await decompress(tool, body.subarray(1), partLimit(h.usize));
      else if (body[0] === 0) payload = sharedCopy([body.subarray(1)], body.length - 1);
      else throw corrupt(`delta part ${i} uses compression '${String.fromCharCode(body[0])}', which strata does not read`);
      return parsePartPayload(payload);
    };
    const loads: Promise<PartSource | null>[] = [];
    const startLoads = (upTo: number): void => {
      while (loads.length < sb.parts.length && loads.length <= upTo) {
        const p = load(loads.length);
        p.catch(() => undefined); // observed here; awaited in order below
        loads.push(p);
      }
    };
    try {
      for (let i = 0; i < sb.parts.length; i++) {
        startLoads(i + PARTS_AHEAD);
        const part = await loads[i];
        if (part === null) partsSkipped++;
        else {
          await executePart(ctx, sb.parts[i].objects, part, partLimit(sb.parts[i].usize));
          await part.finish?.();
        }
        opts.onProgress?.(i + 1, sb.parts.length);
      }
    } finally {
      for (const stream of streams) stream.kill();
    }
    for (const f of sb.fallbacks) {
      if (present(ctx, f.checksum, f.type)) continue;
      bytesFetched += await applyFallback(ctx, fetch, f.type, f.checksum);
    }
    // Every object is handed out by now (ctx.staged names it): the tree is
    // checked while the workers finish, and nothing is stored unless they all succeed.
    checkComplete(ctx, sb);
    await settlePending(ctx);
    if (opts.detachedMetadata) stageCommitMeta(ctx, to, opts.detachedMetadata);
    stageMetadata(ctx, 'commit', to, sb.commit);
    tx.commit();
  } catch (err) {
    // Workers may still be writing into the staging directory that abort removes.
    await Promise.allSettled(ctx.pending);
    tx.abort();
    throw err;
  } finally {
    await ctx.pool?.close();
  }
  const detached = sb.metadata.find(([k]) => k === `${dir}/commitmeta`);
  if (opts.detachedMetadata === undefined && detached && detached[1].type === 'a{sv}') writeCommitMeta(repo, to, detached[1].value as Metadata);
  return { name, commit: to, parts: sb.parts.length, partsSkipped, bytesFetched, objectsWritten: ctx.written };
}

/** The superblock of a delta in a local repository, parsed (for `static-delta show`). */
export function readSuperblock(repo: Repo, from: Checksum | null, to: Checksum): Superblock {
  const file = path.join(repo.path, staticDeltaDir({ from, to }), 'superblock');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('DELTA_NOT_FOUND', `${repo.path} has no static delta ${deltaName({ from, to })}`, { path: file });
    throw ioError(err, 'read', file);
  }
  return parseSuperblock(bytes);
}
