// The in-memory tree a commit is built from: directories with their metadata,
// files as pending checksums (their hashing runs in workers meanwhile).

import type { Checksum, DirMeta, FileMeta } from '../core/objects.js';
import type { ContentJob } from './stage-content.js';

export interface MDir {
  kind: 'dir';
  meta: DirMeta;
  entries: Map<string, MNode>;
}

export interface MFile {
  kind: 'file';
  checksum: Promise<Checksum>;
  meta: FileMeta;
  size: number;
}

export type MNode = MDir | MFile;

/** Hands a file to the object writer and returns its future checksum. */
export type StageFn = (job: ContentJob, transfer?: ArrayBuffer[]) => Promise<Checksum>;

export interface SourceOptions {
  /** Override every entry's owner, as `ostree commit --owner-uid/--owner-gid`. */
  ownerUid?: number;
  ownerGid?: number;
  /** Leave out sockets, fifos and device nodes instead of failing. */
  skipSpecial?: boolean;
  /** Do not record extended attributes. */
  noXattrs?: boolean;
}

export interface SourceStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  skipped: string[];
}

export function newStats(): SourceStats {
  return { files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: [] };
}

export function applyOwner<T extends { uid: number; gid: number }>(m: T, opts: SourceOptions): T {
  if (opts.ownerUid !== undefined) m.uid = opts.ownerUid;
  if (opts.ownerGid !== undefined) m.gid = opts.ownerGid;
  return m;
}
