// The SHA-256 of a file, read in 1 MiB chunks: OCI blob digests and the
// compose cache's input digests.

import fs from 'node:fs';
import { createHash } from 'node:crypto';

/** Hex SHA-256 of a file's bytes. */
export async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
