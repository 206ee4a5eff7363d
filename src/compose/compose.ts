// `strata compose MANIFEST --repo R`: builds the tree a manifest describes in
// a staging directory (base, layers in order, then remove, files, symlinks,
// groups, users, units, postprocess), gives it the OSTree layout (/usr/etc,
// /var as tmpfiles.d) and commits it to the manifest's ref. Nothing reaches
// the repository before the whole tree is built and checked; the commit
// itself is one transaction. `dryRun` writes nothing and reports the diff.

import fs from 'node:fs';
import { setAttributeSync } from '../repo/xattr.js';
import os from 'node:os';
import path from 'node:path';
import { StrataError, ioError } from '../errors.js';
import type { Checksum } from '../core/objects.js';
import { type CommitResult, buildCommit, commit } from '../repo/commit.js';
import type { DiffResult } from '../repo/diff.js';
import { checkRefWritable, readRef, validateRefName } from '../repo/refs.js';
import { Repo } from '../repo/repo.js';
import { applyDir, applyTarball } from './apply.js';
import { type AssembleStats, assemble, checkSpecialFiles } from './assemble.js';
import { isRoot, loadBase, run } from './base.js';
import { addAccounts, applyUnits, removeGlobs, writeFiles, writeSymlinks } from './customize.js';
import { type DebInfo, type DebLayerState, aptDownload, applyDeb, installDebsWithScripts } from './deb.js';
import { commitChecksum, diffAgainst, hashDirectory, treeChecksums } from './dry-run.js';
import { cachedCompose, inputDigest, recordCompose } from './inputs.js';
import { type Manifest, loadManifest } from './manifest.js';
import { applyOci } from './oci.js';

export interface ComposeOptions {
  /** Path of the manifest (YAML). */
  manifest: string;
  repo: string;
  /** Build and diff, write nothing to the repository. */
  dryRun?: boolean;
  /** Build the tree even when the inputs equal those of the ref's last compose (see inputs.ts). */
  noCache?: boolean;
  /** Where the staging tree is built (default: /dev/shm when roomy, else the system temp directory). */
  workdir?: string;
  /** Environment for SOURCE_DATE_EPOCH (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Told each step as it starts (for a terminal). */
  onStep?: (text: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface ComposeLayerReport {
  kind: 'dir' | 'tar' | 'deb' | 'oci';
  source: string;
  entries?: number;
  packages?: { package: string; version: string; architecture: string }[];
  manifest?: string;
}

export interface ComposeResult {
  ref: string;
  /** The new commit; the current one when `unchanged`; with dryRun, the one that would be written. */
  commit: Checksum;
  parent: Checksum | null;
  unchanged: boolean;
  dryRun: boolean;
  timestamp: number;
  timestampSource: Manifest['timestampSource'];
  version: string | null;
  base: { kind: string; commit?: string } | null;
  layers: ComposeLayerReport[];
  removed: string[];
  units: string[];
  var: AssembleStats;
  metadata: Record<string, string>;
  stats?: CommitResult['stats'];
  diff?: Omit<DiffResult, 'from' | 'to'> & { from: Checksum | null };
  /**
   * The compose cache: `hit` when the inputs were those of the compose that
   * made the ref's commit (nothing built; the report is that compose's),
   * `miss` when the tree was built, `off` for --no-cache and dry runs,
   * `uncacheable` with the reason.
   */
  cache: { state: 'hit' | 'miss' | 'off' | 'uncacheable'; inputs?: string; reason?: string };
}

/** What the cache keeps of a compose: its report without the parts that depend on the run. */
type CachedReport = Omit<ComposeResult, 'commit' | 'parent' | 'unchanged' | 'dryRun' | 'diff' | 'cache'>;

type KeyPath = (string | number)[];

/** Prefixes an error with the manifest key it came from (FILE:LINE:COL: key), once. */
async function under<T>(m: Manifest, at: KeyPath, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StrataError && err.data.manifestKey === undefined) {
      const where = Array.isArray(err.data.manifestAt) ? (err.data.manifestAt as KeyPath) : at;
      err.message = `${m.where(where)}: ${err.message}`;
      err.data.manifestKey = where.join('.');
      delete err.data.manifestAt;
    }
    throw err;
  }
}

/** Fails fast, before any work, on inputs that are missing or that this process cannot use. */
function checkInputs(m: Manifest): void {
  const mustExist = (p: string, at: KeyPath, kind: 'dir' | 'file' | 'any') => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw new StrataError('SOURCE_NOT_FOUND', `${m.where(at)}: ${p} does not exist`, { path: p, manifestKey: at.join('.') });
    }
    if (kind === 'dir' && !st.isDirectory()) throw new StrataError('SOURCE_NOT_FOUND', `${m.where(at)}: ${p} is not a directory`, { path: p, manifestKey: at.join('.') });
    if (kind === 'file' && !st.isFile()) throw new StrataError('SOURCE_NOT_FOUND', `${m.where(at)}: ${p} is not a file`, { path: p, manifestKey: at.join('.') });
  };
  if (m.base?.kind === 'dir') mustExist(m.base.path, ['base', 'dir'], 'dir');
  if (m.base?.kind === 'tar') mustExist(m.base.path, ['base', 'tar'], 'file');
  if (m.base?.kind === 'debootstrap' && !isRoot) throw new StrataError('NEEDS_ROOT', `${m.where(['base', 'debootstrap'])}: debootstrap needs root; run compose as root`, {});
  for (const l of m.layers) {
    if (l.kind === 'dir') mustExist(l.path, l.at, 'dir');
    else if (l.kind === 'tar') mustExist(l.path, l.at, 'file');
    else if (l.kind === 'oci') mustExist(l.path, l.at, 'any');
    else for (const it of l.items) if (it.file !== undefined) mustExist(it.file, l.at, 'file');
  }
  m.files.forEach((f, i) => f.source !== undefined && mustExist(f.source, ['files', i, 'source'], 'file'));
  for (const l of m.layers) {
    if (l.kind === 'deb' && l.scripts && !isRoot) throw new StrataError('NEEDS_ROOT', `${m.where([...l.at.slice(0, -1), 'scripts'])}: installing packages with their scripts runs dpkg in a chroot, which needs root`, {});
  }
  if (m.postprocess.length > 0 && !isRoot) {
    throw new StrataError('NEEDS_ROOT', `${m.where(['postprocess'])}: postprocess commands run in a chroot of the tree, which needs root; run compose as root or move the work into layers`, {});
  }
}

const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A memory filesystem is used for the staging tree when it has this much free space. */
const SHM_MIN_FREE = 4 * 1024 ** 3;

/**
 * Where the staging tree goes by default: /dev/shm when it is roomy and keeps
 * user xattrs (Linux 6.6 and later), since the tree is written once, read
 * once and thrown away; else the system temp directory. A tree that runs
 * programs in a chroot (debootstrap, postprocess, dpkg scripts) needs its
 * /dev/null to open, so a `nodev` /dev/shm is not used for it.
 */
export function defaultWorkdir(chroot = false): string {
  const shm = '/dev/shm';
  try {
    if (chroot) {
      const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === shm);
      if (!line || line.split(' ')[3].split(',').includes('nodev')) return os.tmpdir();
    }
    const st = fs.statfsSync(shm);
    if (st.bavail * st.bsize < SHM_MIN_FREE) return os.tmpdir();
    const probe = fs.mkdtempSync(path.join(shm, 'strata-probe-'));
    try {
      setAttributeSync(probe, 'user.strata.probe', '1');
      return shm;
    } finally {
      fs.rmSync(probe, { recursive: true, force: true });
    }
  } catch {
    return os.tmpdir();
  }
}

export async function compose(opts: ComposeOptions): Promise<ComposeResult> {
  const m = loadManifest(opts.manifest, opts.env);
  validateRefName(m.ref);
  const repo = Repo.open(opts.repo);
  checkRefWritable(repo, m.ref);
  const parent = readRef(repo, m.ref);
  checkInputs(m);
  const step = opts.onStep ?? (() => undefined);

  let cache: ComposeResult['cache'] = { state: 'off' };
  if (!opts.dryRun && !opts.noCache) {
    step('hashing the inputs');
    const d = await inputDigest(m, repo);
    if ('uncacheable' in d) cache = { state: 'uncacheable', reason: d.uncacheable };
    else {
      const hit = parent ? cachedCompose<CachedReport>(repo, m.ref, d.digest) : null;
      if (hit) {
        const stats = hit.report.stats ? { ...hit.report.stats, objectsWritten: 0, storedBytes: 0 } : undefined;
        return { ...hit.report, stats, commit: hit.commit, parent, unchanged: true, dryRun: false, cache: { state: 'hit', inputs: d.digest } };
      }
      cache = { state: 'miss', inputs: d.digest };
    }
  }

  const chroot = m.postprocess.length > 0 || m.base?.kind === 'debootstrap' || m.layers.some((l) => l.kind === 'deb' && l.scripts);
  const workParent = opts.workdir ?? defaultWorkdir(chroot);
  let work: string;
  try {
    fs.mkdirSync(workParent, { recursive: true });
    work = fs.mkdtempSync(path.join(workParent, 'strata-compose-'));
  } catch (err) {
    throw ioError(err, 'create a work directory in', workParent);
  }
  try {
    const root = path.join(work, 'tree');
    step(m.base ? `base: ${m.base.kind}` : 'base: empty tree');
    const { tree, result: baseResult } = await under(m, ['base'], () => loadBase(m.base, root, repo.path));

    const layers: ComposeLayerReport[] = [];
    const debState: DebLayerState = { owners: new Map(), work };
    for (const l of m.layers) {
      step(`layer ${l.kind}: ${l.kind === 'deb' ? l.items.map((i) => i.file ?? i.name).join(', ') : l.path}`);
      await under(m, l.at, async () => {
        if (l.kind === 'dir') layers.push({ kind: 'dir', source: l.path, entries: applyDir(tree, l.path).entries });
        else if (l.kind === 'tar') layers.push({ kind: 'tar', source: l.path, entries: (await applyTarball(tree, l.path)).entries });
        else if (l.kind === 'oci') {
          const r = await applyOci(tree, l.path, l.platform, work);
          layers.push({ kind: 'oci', source: l.path, manifest: r.manifest });
        } else {
          const names = l.items.filter((i) => i.name !== undefined).map((i) => i.name as string);
          const fetched = names.length > 0 ? aptDownload(names, path.join(work, 'apt')) : [];
          const files = l.items.map((i) => i.file ?? (fetched.shift() as string));
          const infos: DebInfo[] = [];
          if (l.scripts) infos.push(...(await installDebsWithScripts(tree, files, m.timestamp)));
          else for (const f of files) infos.push(await applyDeb(tree, f, debState));
          layers.push({ kind: 'deb', source: files.map((f) => path.basename(f)).join(' '), packages: infos.map(({ package: p, version, architecture }) => ({ package: p, version, architecture })) });
        }
      });
    }

    const removed = await under(m, ['remove'], () => removeGlobs(tree, m.remove));
    for (const [i, f] of m.files.entries()) await under(m, ['files', i], () => writeFiles(tree, [f]));
    for (const [i, s] of m.symlinks.entries()) await under(m, ['symlinks', i], () => writeSymlinks(tree, [s]));
    await under(m, m.users.length > 0 ? ['users'] : ['groups'], () => addAccounts(tree, m.groups, m.users, m.timestamp));
    const units = await under(m, ['units'], () => applyUnits(tree, m.units.enable, m.units.mask));

    for (const [i, cmd] of m.postprocess.entries()) {
      step(`postprocess: ${cmd}`);
      await under(m, ['postprocess', i], async () => {
        if (tree.realPath(['bin', 'sh']) === null || !fs.existsSync(tree.realPath(['bin', 'sh']) as string)) {
          throw new StrataError('COMMAND_FAILED', 'the tree has no /bin/sh to run postprocess commands with', {});
        }
        const env = { PATH: CHROOT_PATH, LANG: 'C.UTF-8', HOME: '/root', SOURCE_DATE_EPOCH: String(m.timestamp) };
        await run('chroot', [root, '/bin/sh', '-c', cmd], `postprocess command ${JSON.stringify(cmd)}`, { env, debianPackage: 'coreutils' });
      });
    }

    step('assemble: /etc to /usr/etc, /var to tmpfiles.d');
    checkSpecialFiles(root);
    const varStats = assemble(tree);

    const metadata: Record<string, string> = { ...m.metadata };
    if (m.kargs.length > 0) metadata['strata.kargs'] = m.kargs.join(' ');
    if (baseResult.commit) metadata['strata.compose.base'] = baseResult.commit;
    const sortedMeta = Object.keys(metadata).sort().map((k): [string, string] => [k, metadata[k]]);
    const report = {
      ref: m.ref,
      timestamp: m.timestamp,
      timestampSource: m.timestampSource,
      version: m.version ?? null,
      base: m.base ? { kind: m.base.kind, commit: baseResult.commit } : null,
      layers,
      removed,
      units,
      var: varStats,
      metadata: Object.fromEntries(sortedMeta),
    };
    const commitOpts = { branch: m.ref, subject: m.subject, body: m.body, timestamp: m.timestamp, metadata: sortedMeta };

    if (opts.dryRun) {
      step('dry run: hashing the tree');
      const mtree = await hashDirectory(root);
      const { tree: rootTree, meta: rootMeta } = await treeChecksums(mtree);
      const c = buildCommit(commitOpts, parent, rootTree, rootMeta);
      let unchanged = false;
      if (parent) {
        const p = repo.loadCommit(parent);
        unchanged = p.rootTree === rootTree && p.rootMeta === rootMeta && p.subject === c.subject && p.body === c.body &&
          JSON.stringify(p.metadata) === JSON.stringify(c.metadata);
      }
      const diff = await diffAgainst(repo, parent, mtree);
      return { ...report, commit: unchanged && parent ? parent : commitChecksum(c), parent, unchanged, dryRun: true, diff: { from: parent, ...diff }, cache };
    }

    step('commit');
    const r = await commit({
      repo: repo.path, source: root, ...commitOpts, skipIfUnchanged: true, onProgress: opts.onProgress,
      sourceDone: () => fs.rmSync(root, { recursive: true, force: true }),
    });
    if (cache.inputs !== undefined && !recordCompose<CachedReport>(repo, m.ref, cache.inputs, r.commit, { ...report, stats: r.stats })) {
      cache = { ...cache, reason: 'the compose record could not be written; the next compose builds again' };
    }
    return { ...report, commit: r.commit, parent, unchanged: !!r.unchanged, dryRun: false, stats: r.stats, cache };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
