// Reading and rewriting a repository's `config` (remotes live there, as in
// libostree). A rewrite holds the writer lock, starts from the file as it is
// now, keeps every line it does not change, and lands by an atomic rename.

import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../errors.js';
import { KeyFile } from './keyfile.js';
import { type Repo, writeFileAtomic } from './repo.js';
import { lockRepo } from './transaction.js';

export function readRepoConfig(repo: Repo): KeyFile {
  const file = path.join(repo.path, 'config');
  try {
    return KeyFile.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw ioError(err, 'read', file);
  }
}

/** Applies `edit` to the config under the writer lock and writes it back when it changed; returns what `edit` returned. */
export function editRepoConfig<T>(repo: Repo, edit: (config: KeyFile) => T): T {
  const unlock = lockRepo(repo);
  try {
    return rewriteRepoConfig(repo, edit);
  } finally {
    unlock();
  }
}

/** editRepoConfig for a caller that already holds the writer lock. */
export function rewriteRepoConfig<T>(repo: Repo, edit: (config: KeyFile) => T): T {
  const config = readRepoConfig(repo);
  const before = config.toString();
  const result = edit(config);
  const after = config.toString();
  if (after !== before) {
    const file = path.join(repo.path, 'config');
    try {
      writeFileAtomic(file, after, 0o644, path.join(repo.path, 'tmp'));
    } catch (err) {
      throw ioError(err, 'write', file);
    }
  }
  return result;
}
