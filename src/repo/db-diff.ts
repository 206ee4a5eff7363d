// `strata db diff A B`: the Debian packages that changed between two commits
// (like `rpm-ostree db diff`), read from each tree's dpkg status database.

import { StrataError } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { Repo } from './repo.js';
import { resolveRev } from './refs.js';
import { resolveTreePath } from './walk.js';
import { compareDebVersions } from './deb-version.js';

/** Where a tree keeps its dpkg status, most specific first: composed trees move /var's content under /usr. */
export const DPKG_STATUS_PATHS = ['/usr/lib/dpkg/status', '/usr/share/factory/var/lib/dpkg/status', '/var/lib/dpkg/status'] as const;

export interface DebPackage {
  name: string;
  version: string;
  architecture: string;
}

export interface PackageChange {
  name: string;
  architecture: string;
  from: string;
  to: string;
}

export interface DbDiffResult {
  from: Checksum;
  to: Checksum;
  /** Where each tree's database was read. */
  fromDb: string;
  toDb: string;
  added: DebPackage[];
  removed: DebPackage[];
  upgraded: PackageChange[];
  downgraded: PackageChange[];
  /** Packages in both trees at the same version. */
  unchanged: number;
}

/**
 * Parses a deb822 dpkg status file into the packages that are installed
 * (Status ends in `installed`, or there is no Status field, as in a plain
 * package list). Continuation lines and unknown fields are ignored.
 */
export function parseDpkgStatus(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const stanza of text.split(/\r?\n(?:[ \t]*\r?\n)+/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split(/\r?\n/)) {
      if (line === '' || line.startsWith(' ') || line.startsWith('\t') || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const name = fields.get('package');
    const version = fields.get('version');
    if (!name || !version) continue;
    const status = fields.get('status');
    if (status !== undefined && status.split(/\s+/).pop() !== 'installed') continue;
    out.push({ name, version, architecture: fields.get('architecture') ?? '' });
  }
  return out;
}

/** Compares two package lists: a package is matched by name, or by name and architecture when it has several. */
export function diffPackages(from: DebPackage[], to: DebPackage[]): Omit<DbDiffResult, 'from' | 'to' | 'fromDb' | 'toDb'> {
  const count = (list: DebPackage[]) => {
    const m = new Map<string, number>();
    for (const p of list) m.set(p.name, (m.get(p.name) ?? 0) + 1);
    return m;
  };
  const ca = count(from);
  const cb = count(to);
  const key = (p: DebPackage) => ((ca.get(p.name) ?? 0) > 1 || (cb.get(p.name) ?? 0) > 1 ? `${p.name}:${p.architecture}` : p.name);
  const a = new Map(from.map((p) => [key(p), p]));
  const b = new Map(to.map((p) => [key(p), p]));
  const res: Omit<DbDiffResult, 'from' | 'to' | 'fromDb' | 'toDb'> = { added: [], removed: [], upgraded: [], downgraded: [], unchanged: 0 };
  for (const [k, pa] of a) {
    const pb = b.get(k);
    if (!pb) {
      res.removed.push(pa);
      continue;
    }
    const c = compareDebVersions(pa.version, pb.version);
    if (c === 0) res.unchanged++;
    else (c < 0 ? res.upgraded : res.downgraded).push({ name: pb.name, architecture: pb.architecture, from: pa.version, to: pb.version });
  }
  for (const [k, pb] of b) if (!a.has(k)) res.added.push(pb);
  const byName = (x: { name: string; architecture: string }, y: { name: string; architecture: string }) =>
    x.name < y.name ? -1 : x.name > y.name ? 1 : x.architecture < y.architecture ? -1 : x.architecture > y.architecture ? 1 : 0;
  for (const list of [res.added, res.removed, res.upgraded, res.downgraded] as { name: string; architecture: string }[][]) list.sort(byName);
  return res;
}

/** Reads a commit's dpkg status from the first place it exists. */
export function readDpkgStatus(repo: Repo, commit: Checksum): { path: string; packages: DebPackage[] } {
  for (const p of DPKG_STATUS_PATHS) {
    let node;
    try {
      node = resolveTreePath(repo, commit, p);
    } catch (err) {
      if (err instanceof StrataError && (err.code === 'PATH_NOT_FOUND' || err.code === 'NOT_A_DIRECTORY')) continue;
      throw err;
    }
    if (node.kind !== 'file') continue;
    const { content } = repo.loadFile(node.checksum);
    if (!content) continue; // a symlink: composed trees keep the real file in one of the other places
    return { path: p, packages: parseDpkgStatus(content.toString('utf8')) };
  }
  throw new StrataError('PATH_NOT_FOUND', `commit ${commit} has no dpkg status database (looked in ${DPKG_STATUS_PATHS.join(', ')}); is it a Debian tree?`, { commit });
}

export function dbDiffCommits(repo: Repo, from: Checksum, to: Checksum): DbDiffResult {
  const a = readDpkgStatus(repo, from);
  const b = readDpkgStatus(repo, to);
  return { from, to, fromDb: a.path, toDb: b.path, ...diffPackages(a.packages, b.packages) };
}

export function dbDiff(opts: { repo: string; from: string; to: string }): DbDiffResult {
  const repo = Repo.open(opts.repo);
  return dbDiffCommits(repo, resolveRev(repo, opts.from), resolveRev(repo, opts.to));
}
