// The SHA-256 of a file, read in 1 MiB chunks: OCI blob digests, the
// compose cache's input digests and the names of layered .deb files.

import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { ioError } from '../errors.js';

/** Hex SHA-256 of a file's bytes; a file that cannot be read is an IO error naming it. */
export async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  } catch (err) {
    throw ioError(err, 'read', file);
  }
  return h.digest('hex');
}
