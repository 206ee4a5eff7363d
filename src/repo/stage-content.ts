// Hashing and storing one content object: the CPU-heavy step of a commit,
// run in worker threads so that both cores hash and compress at once.
// Objects go to the transaction's staging directory; the transaction moves
// them into objects/ only after they are durable (see transaction.ts).

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { setAttributeSync } from '@napi-rs/xattr';
import { pipeline } from 'node:stream/promises';
import { StrataError, ioError } from '../errors.js';
import {
  type Checksum, type FileMeta, S_IFLNK, S_IFMT, archiveHeader, fileHeader, objectPath, serializeBareUserMeta,
} from '../core/objects.js';

export interface StageContext {
  repoPath: string;
  stagingDir: string;
  archive: boolean;
  /** zlib level for archive objects; OSTree's default is 6. */
  level: number;
}

export interface ContentJob {
  /** Read the content from this file (a directory commit)… */
  source?: string;
  /** …or take it from here (a tarball commit). */
  data?: Uint8Array;
  meta: FileMeta;
  size: number;
}

export interface ContentResult {
  checksum: Checksum;
  /** False when the object was already in the repo or staged earlier. */
  written: boolean;
  /** Bytes the stored object takes (compressed size in archive repos). */
  storedBytes: number;
}

/** Files larger than this are streamed instead of read whole. */
const STREAM_THRESHOLD = 16 * 1024 * 1024;

export function stagedName(checksum: Checksum, ext: string): string {
  return `${checksum}.${ext}`;
}

/**
 * Only the repository is asked: two workers may stage the same new object
 * in one commit; the second rename replaces the first with identical bytes
 * and the transaction records it once.
 */
function objectExists(ctx: StageContext, checksum: Checksum): boolean {
  try {
    fs.accessSync(`${ctx.repoPath}/${objectPath(checksum, 'file', ctx.archive)}`);
    return true;
  } catch {
    return false;
  }
}

export async function stageContent(ctx: StageContext, job: ContentJob): Promise<ContentResult> {
  const isLink = (job.meta.mode & S_IFMT) === S_IFLNK;
  const header = fileHeader(job.meta);
  if (isLink) {
    const checksum = createHash('sha256').update(header).digest('hex') as Checksum;
    if (objectExists(ctx, checksum)) return { checksum, written: false, storedBytes: 0 };
    const body = ctx.archive ? archiveHeader(job.meta, 0) : Buffer.from(job.meta.symlinkTarget + '\0', 'utf8');
    writeStaged(ctx, checksum, body, job.meta);
    return { checksum, written: true, storedBytes: body.length };
  }
  if (job.data === undefined && job.size > STREAM_THRESHOLD) return stageLargeFile(ctx, job, header);
  let content: Buffer;
  if (job.data !== undefined) {
    content = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  } else {
    try {
      content = fs.readFileSync(job.source as string);
    } catch (err) {
      throw ioError(err, 'read', job.source as string);
    }
  }
  if (content.length !== job.size) {
    throw new StrataError('IO', `${job.source ?? 'file'} changed size while being committed (${job.size} -> ${content.length})`, { path: job.source });
  }
  const checksum = createHash('sha256').update(header).update(content).digest('hex') as Checksum;
  if (objectExists(ctx, checksum)) return { checksum, written: false, storedBytes: 0 };
  const body = ctx.archive
    ? Buffer.concat([archiveHeader(job.meta, content.length), zlib.deflateRawSync(content, { level: ctx.level })])
    : content;
  writeStaged(ctx, checksum, body, job.meta);
  return { checksum, written: true, storedBytes: body.length };
}

function tempName(ctx: StageContext): string {
  return path.join(ctx.stagingDir, `.tmp-${threadId}-${Math.random().toString(36).slice(2)}`);
}

function writeStaged(ctx: StageContext, checksum: Checksum, body: Buffer, meta: FileMeta): void {
  const tmp = tempName(ctx);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeSync(fd, body);
      if (!ctx.archive) finishBareUser(fd, tmp, meta);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(ctx.stagingDir, stagedName(checksum, ctx.archive ? 'filez' : 'file')));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err instanceof StrataError ? err : ioError(err, 'stage object', checksum);
  }
}

/**
 * bare-user objects keep their real metadata in user.ostreemeta; the file's
 * own mode keeps only safe bits (no setuid/setgid/sticky, no world write),
 * and mtime is 0, exactly as libostree writes them.
 */
function finishBareUser(fd: number, file: string, meta: FileMeta): void {
  setAttributeSync(file, 'user.ostreemeta', serializeBareUserMeta(meta));
  if ((meta.mode & S_IFMT) !== S_IFLNK) fs.fchmodSync(fd, (meta.mode & 0o775) | 0o400);
  fs.futimesSync(fd, 0, 0);
}

async function stageLargeFile(ctx: StageContext, job: ContentJob, header: Buffer): Promise<ContentResult> {
  const source = job.source as string;
  const hash = createHash('sha256').update(header);
  let seen = 0;
  try {
    for await (const chunk of fs.createReadStream(source, { highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      seen += (chunk as Buffer).length;
    }
  } catch (err) {
    throw ioError(err, 'read', source);
  }
  if (seen !== job.size) throw new StrataError('IO', `${source} changed size while being committed`, { path: source });
  const checksum = hash.digest('hex') as Checksum;
  if (objectExists(ctx, checksum)) return { checksum, written: false, storedBytes: 0 };
  const tmp = tempName(ctx);
  try {
    if (ctx.archive) {
      fs.writeFileSync(tmp, archiveHeader(job.meta, job.size), { mode: 0o644, flag: 'wx' });
      await pipeline(fs.createReadStream(source), zlib.createDeflateRaw({ level: ctx.level }), fs.createWriteStream(tmp, { flags: 'a' }));
    } else {
      fs.copyFileSync(source, tmp, fs.constants.COPYFILE_EXCL);
      const fd = fs.openSync(tmp, 'r+');
      try {
        finishBareUser(fd, tmp, job.meta);
      } finally {
        fs.closeSync(fd);
      }
    }
    const stored = fs.statSync(tmp).size;
    fs.renameSync(tmp, path.join(ctx.stagingDir, stagedName(checksum, ctx.archive ? 'filez' : 'file')));
    return { checksum, written: true, storedBytes: stored };
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err instanceof StrataError ? err : ioError(err, 'stage object from', source);
  }
}
