// Hashing and storing one content object: the CPU-heavy step of a commit,
// run in worker threads so that both cores hash and compress at once.
// Objects go to the transaction's staging directory; the transaction moves
// them into objects/ only after they are durable (see transaction.ts).

import fs from 'node:fs';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { setAttributeSync } from './xattr.js';
import { pipeline } from 'node:stream/promises';
import { StrataError, ioError } from '../errors.js';
import { BAREUSER_XATTR } from './repo.js';
import {
  type Checksum, type FileMeta, type ObjectType, S_IFLNK, S_IFMT, archiveHeader, fileHeader, objectExtension, objectPath, serializeBareUserMeta,
} from '../core/objects.js';

export interface StageContext {
  repoPath: string;
  stagingDir: string;
  archive: boolean;
  /** zlib level for archive objects; OSTree's default is 6. */
  level: number;
  /** Whether the repository has a file object, when the caller knows it cheaper (this thread only: not for workers). */
  hasFile?: (checksum: Checksum) => boolean;
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

/** An object's name inside a transaction's staging directory. */
export function stagedName(checksum: Checksum, type: ObjectType, archive: boolean): string {
  return `${checksum}.${objectExtension(type, archive)}`;
}

/**
 * Only the repository is asked: two workers may stage the same new object
 * in one commit; the second rename replaces the first with identical bytes
 * and the transaction records it once.
 */
function objectExists(ctx: StageContext, checksum: Checksum): boolean {
  if (ctx.hasFile) return ctx.hasFile(checksum);
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
    const written = writeStaged(ctx, checksum, body, job.meta);
    return { checksum, written, storedBytes: written ? body.length : 0 };
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
  const written = writeStaged(ctx, checksum, body, job.meta);
  return { checksum, written, storedBytes: written ? body.length : 0 };
}

function stagedPath(ctx: StageContext, checksum: Checksum): string {
  return `${ctx.stagingDir}/${stagedName(checksum, 'file', ctx.archive)}`;
}

/**
 * Creates the staged object under its final staged name: the staging
 * directory is private to the transaction and published only after a sync,
 * so no temp name is needed. EEXIST means another worker staged the same
 * object in this commit: nothing to do.
 */
function createStaged(ctx: StageContext, checksum: Checksum, mode: number): number | null {
  try {
    return fs.openSync(stagedPath(ctx, checksum), 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw ioError(err, 'stage object', checksum);
  }
}

function writeStaged(ctx: StageContext, checksum: Checksum, body: Buffer, meta: FileMeta): boolean {
  const mode = ctx.archive ? 0o644 : bareUserMode(meta);
  const fd = createStaged(ctx, checksum, mode);
  if (fd === null) return false;
  const file = stagedPath(ctx, checksum);
  try {
    try {
      fs.writeSync(fd, body);
      if (!ctx.archive) finishBareUser(fd, file, meta, mode);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err instanceof StrataError ? err : ioError(err, 'stage object', checksum);
  }
  return true;
}

/**
 * The mode of a bare-user object file, as libostree writes them: only safe
 * bits of the real mode (no setuid/setgid/sticky, no world write), always
 * owner-readable; 0644 for a symlink's object.
 */
export function bareUserMode(meta: FileMeta): number {
  return (meta.mode & S_IFMT) === S_IFLNK ? 0o644 : (meta.mode & 0o775) | 0o400;
}

/** The process umask, read once per thread (workers cannot change it). */
const umask = process.umask();

/**
 * Completes a bare-user object: the real metadata in user.ostreemeta, the
 * mode of bareUserMode, mtime 0. `createdWith`: the mode the file was
 * created with, when nothing changed it since; the fchmod is then skipped
 * unless the umask took bits away (an extra inode update per file is
 * measurable in a pull).
 */
export function finishBareUser(fd: number, file: string, meta: FileMeta, createdWith?: number): void {
  setAttributeSync(file, BAREUSER_XATTR, serializeBareUserMeta(meta));
  const mode = bareUserMode(meta);
  if (createdWith !== mode || (mode & umask) !== 0) fs.fchmodSync(fd, mode);
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
  const fd = createStaged(ctx, checksum, 0o644);
  if (fd === null) return { checksum, written: false, storedBytes: 0 };
  const file = stagedPath(ctx, checksum);
  try {
    if (ctx.archive) {
      fs.writeSync(fd, archiveHeader(job.meta, job.size));
      await pipeline(fs.createReadStream(source), zlib.createDeflateRaw({ level: ctx.level }), fs.createWriteStream('', { fd, autoClose: false }));
    } else {
      fs.copyFileSync(source, file);
      finishBareUser(fd, file, job.meta);
    }
    return { checksum, written: true, storedBytes: fs.fstatSync(fd).size };
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err instanceof StrataError ? err : ioError(err, 'stage object from', source);
  } finally {
    fs.closeSync(fd);
  }
}
