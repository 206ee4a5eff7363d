// Verifying and staging one fetched `.filez` (a pull's heavy step), run in
// worker threads so that both cores inflate and hash while the main thread
// keeps the network busy. The object is hashed as OSTree does (file header,
// then the inflated content) and written under its staged name only when it
// matches: as fetched for an archive repository, inflated with
// user.ostreemeta for bare-user. A kill during that write can leave a torn
// file under the name; the pull re-hashes every staged object it resumes
// (decision 0007), so that costs a refetch, never a wrong object.

import fs from 'node:fs';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { StrataError, ioError } from '../errors.js';
import { type Checksum, type FileMeta, S_IFLNK, S_IFMT, archiveInflateOptions, fileHeader, parseArchiveHeader } from '../core/objects.js';
import { bareUserMode, finishBareUser } from './stage-content.js';

export interface PulledObject {
  checksum: Checksum;
  /** The fetched `.filez`, in memory (small objects)… */
  body?: Uint8Array;
  /** …or a download on disk (large ones); removed once staged. */
  file?: string;
  /** The staged name to write. */
  staged: string;
  archive: boolean;
}

/** Bodies inflated in one call; larger content is streamed to bound memory. */
const INFLATE_IN_MEMORY = 64 * 1024 * 1024;
/** Largest archive header read from a download on disk (OSTREE_MAX_METADATA_SIZE). */
const MAX_HEADER = 10 * 1024 * 1024;

type Header = { meta: FileMeta; size: number; bodyOffset: number };

function readHeader(job: PulledObject): Header | string {
  let head: Uint8Array;
  if (job.body) head = job.body;
  else {
    const fd = fs.openSync(job.file as string, 'r');
    try {
      const len = Buffer.alloc(4);
      if (fs.readSync(fd, len, 0, 4, 0) < 4) return '(unreadable: truncated header)';
      const need = len.readUInt32BE(0) + 8;
      if (need > MAX_HEADER) return `(unreadable: a ${need}-byte header)`;
      head = Buffer.alloc(need);
      if (fs.readSync(fd, head, 0, need, 0) < need) return '(unreadable: truncated header)';
    } finally {
      fs.closeSync(fd);
    }
  }
  try {
    return parseArchiveHeader(head);
  } catch (err) {
    if (err instanceof StrataError) return `(unreadable: ${err.message})`;
    throw err;
  }
}

/** The inflated content, or a description of why it cannot be read. */
function inflateAll(compressed: Uint8Array, size: number): Buffer | string {
  if (compressed.length === 0 && size === 0) return Buffer.alloc(0);
  let out: Buffer;
  try {
    out = zlib.inflateRawSync(compressed, archiveInflateOptions(size));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return `(unreadable: more than the ${size} bytes its header declares)`;
    return `(unreadable: ${(err as Error).message})`;
  }
  if (out.length !== size) return `(unreadable: ${out.length} bytes of content, header says ${size})`;
  return out;
}

/** A bare-user object as libostree writes it (see finishBareUser). */
function writeBareUser(file: string, meta: FileMeta, data: Uint8Array): void {
  const mode = bareUserMode(meta);
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    fs.rmSync(file, { force: true });
    fd = fs.openSync(file, 'wx', mode);
  }
  try {
    writeAll(fd, data);
    finishBareUser(fd, file, meta, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Verifies a fetched content object and stages it. Returns the checksum the
 * bytes actually have (equal to `job.checksum` when staged), or a description
 * of why they are unreadable; nothing is written unless they match.
 */
export async function stagePulled(job: PulledObject): Promise<string> {
  try {
    const header = readHeader(job);
    if (typeof header === 'string') return header;
    const { meta, size, bodyOffset } = header;
    const hash = createHash('sha256').update(fileHeader(meta));
    if ((meta.mode & S_IFMT) === S_IFLNK) {
      const actual = hash.digest('hex');
      if (actual !== job.checksum) return actual;
      if (job.archive) placeArchive(job);
      else writeBareUser(job.staged, meta, Buffer.from(meta.symlinkTarget + '\0', 'utf8'));
      dropDownload(job);
      return actual;
    }
    if (job.body || size <= INFLATE_IN_MEMORY) {
      const compressed = job.body ? job.body.subarray(bodyOffset) : fs.readFileSync(job.file as string).subarray(bodyOffset);
      const content = inflateAll(compressed, size);
      if (typeof content === 'string') return content;
      const actual = hash.update(content).digest('hex');
      if (actual !== job.checksum) return actual;
      if (job.archive) placeArchive(job);
      else writeBareUser(job.staged, meta, content);
      dropDownload(job);
      return actual;
    }
    return await stageStreamed(job, meta, size, bodyOffset, hash);
  } catch (err) {
    throw err instanceof StrataError ? err : ioError(err, 'stage pulled object', job.checksum);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

/** An archive repository keeps the `.filez` as fetched. */
function placeArchive(job: PulledObject): void {
  if (job.body) {
    const fd = fs.openSync(job.staged, 'w', 0o644);
    try {
      writeAll(fd, job.body);
    } finally {
      fs.closeSync(fd);
    }
  } else fs.renameSync(job.file as string, job.staged);
}

function dropDownload(job: PulledObject): void {
  if (!job.file) return;
  fs.rmSync(job.file, { force: true });
  fs.rmSync(`${job.file}.etag`, { force: true });
}

/** A very large object: inflated and hashed in a stream, written to a temp name and renamed only when it matches. */
async function stageStreamed(job: PulledObject, meta: FileMeta, size: number, bodyOffset: number, hash: ReturnType<typeof createHash>): Promise<string> {
  const tmp = `${job.staged}.tmp`;
  const bare = !job.archive;
  const mode = bareUserMode(meta);
  const fd = bare ? fs.openSync(tmp, 'w', mode) : null;
  try {
    let seen = 0;
    try {
      await pipeline(fs.createReadStream(job.file as string, { start: bodyOffset, highWaterMark: 1 << 20 }), zlib.createInflateRaw(), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          seen += chunk.length;
          if (seen > size) throw new Error(`more than the ${size} bytes its header declares`);
          hash.update(chunk);
          if (fd !== null) writeAll(fd, chunk);
        }
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).syscall) throw err;
      return `(unreadable: ${(err as Error).message})`;
    }
    if (seen !== size) return `(unreadable: ${seen} bytes of content, header says ${size})`;
    const actual = hash.digest('hex');
    if (actual !== job.checksum) return actual;
    if (fd !== null) {
      finishBareUser(fd, tmp, meta);
      fs.renameSync(tmp, job.staged);
    } else placeArchive(job);
    dropDownload(job);
    return actual;
  } finally {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
  }
}
