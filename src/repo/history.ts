// `strata log` and `strata show`: commits as people read them.

import type { Variant } from '../core/gvariant.js';
import { type Checksum, metadataLookup } from '../core/objects.js';
import { Repo } from './repo.js';
import { resolveRev } from './refs.js';

export interface CommitInfo {
  checksum: Checksum;
  subject: string;
  body: string;
  /** ISO 8601, UTC. */
  date: string;
  timestamp: number;
  version: string | null;
  parent: Checksum | null;
  /** Whether the parent is in this repository (false for shallow history). */
  parentPresent: boolean;
  rootTree: Checksum;
  rootMeta: Checksum;
  metadata: Record<string, unknown>;
  /** Keys of the detached metadata (signatures live there). */
  detachedMetadata: Record<string, unknown>;
}

/** GVariant values as JSON-friendly data: bigints become strings, bytes hex. */
export function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map(plainValue);
  if (v && typeof v === 'object' && 'type' in v && 'value' in v) return plainValue((v as Variant).value);
  return v;
}

export function describeCommit(repo: Repo, checksum: Checksum): CommitInfo {
  const c = repo.loadCommit(checksum);
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of c.metadata) metadata[k] = plainValue(v.value);
  const detached: Record<string, unknown> = {};
  for (const [k, v] of repo.loadCommitMeta(checksum) ?? []) detached[k] = plainValue(v.value);
  const version = metadataLookup(c.metadata, 'version');
  return {
    checksum,
    subject: c.subject,
    body: c.body,
    date: new Date(c.timestamp * 1000).toISOString().replace('.000Z', 'Z'),
    timestamp: c.timestamp,
    version: typeof version === 'string' ? version : null,
    parent: c.parent,
    parentPresent: c.parent ? repo.hasObject(c.parent, 'commit') : false,
    rootTree: c.rootTree,
    rootMeta: c.rootMeta,
    metadata,
    detachedMetadata: detached,
  };
}

export function show(opts: { repo: string; rev: string }): CommitInfo {
  const repo = Repo.open(opts.repo);
  return describeCommit(repo, resolveRev(repo, opts.rev));
}

export function log(opts: { repo: string; rev: string; max?: number }): CommitInfo[] {
  const repo = Repo.open(opts.repo);
  const out: CommitInfo[] = [];
  let cur: Checksum | null = resolveRev(repo, opts.rev);
  while (cur && (opts.max === undefined || out.length < opts.max)) {
    const info = describeCommit(repo, cur);
    out.push(info);
    cur = info.parentPresent ? info.parent : null;
  }
  return out;
}
