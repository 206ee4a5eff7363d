// Re-hashing one content object (fsck's heavy step), run in worker threads.

import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { StrataError } from '../errors.js';
import {
  type Checksum, S_IFLNK, S_IFMT, fileHeader, objectPath, parseArchiveHeader, parseBareUserMeta,
} from '../core/objects.js';
import { inflateBody, readBareUserXattr, symlinkFromContent } from './repo.js';

export interface VerifyContext {
  repoPath: string;
  archive: boolean;
}

export type VerifyOutcome =
  | { status: 'ok'; size: number }
  | { status: 'missing' | 'corrupt'; message: string };

/** One read buffer per thread, reused: objects up to this size cost no allocation. */
let scratch = Buffer.allocUnsafe(4 * 1024 * 1024);

function readObject(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size > scratch.length) {
      if (size > 64 * 1024 * 1024) return fs.readFileSync(fd);
      scratch = Buffer.allocUnsafe(size);
    }
    let n = 0;
    while (n < size) {
      const r = fs.readSync(fd, scratch, n, size - n, n);
      if (r === 0) break;
      n += r;
    }
    return scratch.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Verifies several objects (one worker message for many small files). */
export function verifyContents(ctx: VerifyContext, checksums: Checksum[]): VerifyOutcome[] {
  return checksums.map((c) => verifyContent(ctx, c));
}

export function verifyContent(ctx: VerifyContext, checksum: Checksum): VerifyOutcome {
  return verifyContentFile(`${ctx.repoPath}/${objectPath(checksum, 'file', ctx.archive)}`, checksum, ctx.archive);
}

/** Re-hashes one content object stored at `file` (in a repository or a staging area). */
export function verifyContentFile(file: string, checksum: Checksum, archive: boolean): VerifyOutcome {
  try {
    let data: Buffer;
    try {
      data = readObject(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing', message: `file object ${checksum} is missing` };
      throw err;
    }
    let actual: string;
    let size = 0;
    if (archive) {
      const h = parseArchiveHeader(data);
      const hash = createHash('sha256').update(fileHeader(h.meta));
      if ((h.meta.mode & S_IFMT) !== S_IFLNK) {
        hash.update(inflateBody(data.subarray(h.bodyOffset), h.size, checksum));
        size = h.size;
      }
      actual = hash.digest('hex');
    } else {
      const meta = parseBareUserMeta(readBareUserXattr(file, checksum));
      if ((meta.mode & S_IFMT) === S_IFLNK) {
        actual = createHash('sha256').update(fileHeader({ ...meta, symlinkTarget: symlinkFromContent(data, checksum) })).digest('hex');
      } else {
        actual = createHash('sha256').update(fileHeader({ ...meta, symlinkTarget: '' })).update(data).digest('hex');
        size = data.length;
      }
    }
    if (actual !== checksum) return { status: 'corrupt', message: `file object ${checksum} hashes to ${actual}` };
    return { status: 'ok', size };
  } catch (err) {
    const message = err instanceof StrataError ? err.message : `file object ${checksum}: ${(err as Error).message}`;
    return { status: 'corrupt', message };
  }
}
